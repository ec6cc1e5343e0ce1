"""
Shared by the test files: the tiny char dataset, the script runner, the log reader and tiny model builders.
Helpers are imported (`from conftest import cli, tiny_gpt`); the dataset is the `char_data` fixture.
"""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from model import GPT, GPTConfig, ViT, ViTConfig
from siglip import SigLIP, SigLIPConfig
from vision import CAPTION_LEN, CAPTION_VOCAB, captions, encode_captions

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(HERE, "tests", "support")  # programs the tests run in place of real ones
# offline, one thread per process so subprocesses can run side by side, and a fixed hash seed
ENV = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
CHARS = "\n abcdefghijklmn"  # 16 symbols; "\n" is sample.py's default prompt


def cli(script: str, *args, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a repository script (or any program path) as a user would, from the repository root."""
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=HERE, capture_output=True, text=True,
                          env=ENV | (env or {}), timeout=timeout)


# -----------------------------------------------------------------------------
# the tiny char dataset


def write_char_dataset(root, name="tiny", n_train=4000, n_val=1000, meta=None) -> str:
    """root/name/{train,val}.bin of random CHARS ids and a char meta.json, as prepare.py writes them.
    `meta` replaces meta.json's content (a dict, or a string written as is)."""
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    rng.integers(0, len(CHARS), n_train).astype(np.uint16).tofile(os.path.join(d, "train.bin"))
    rng.integers(0, len(CHARS), n_val).astype(np.uint16).tofile(os.path.join(d, "val.bin"))
    meta = {"name": name, "tokenizer": "char", "vocab_size": len(CHARS), "chars": CHARS} if meta is None else meta
    with open(os.path.join(d, "meta.json"), "w") as f:
        f.write(meta if isinstance(meta, str) else json.dumps(meta))
    return d


@pytest.fixture(scope="session")
def char_data(tmp_path_factory) -> str:
    """A data_dir holding the tiny char dataset 'tiny' (read only: tests that break data make their own)."""
    root = str(tmp_path_factory.mktemp("data"))
    write_char_dataset(root)
    return root


def data_args(root, name="tiny") -> list[str]:
    return [f"--data_dir={root}", f"--dataset={name}"]


# -----------------------------------------------------------------------------
# train.py on the tiny dataset, and what it logs

TINY_TRAIN = ["--n_layer=4", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=4", "--eval_iters=2",
              "--eval_interval=50", "--log_interval=50", "--warmup_iters=5", "--learning_rate=3e-3", "--min_lr=3e-4"]


def train(data_dir, out_dir, *args, check=True) -> subprocess.CompletedProcess:
    """train.py with the TINY_TRAIN model on the 'tiny' dataset; later arguments override earlier ones."""
    proc = cli("train.py", *data_args(data_dir), f"--out_dir={out_dir}", *TINY_TRAIN, *args, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def read_log(out_dir) -> list[dict]:
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def read_log_by_iter(out_dir) -> tuple[list[dict], dict[int, dict]]:
    """log.jsonl -> (start lines, {iter: eval line}); a resume re-logs some iters, the last one wins (as compare.py)."""
    starts, evals = [], {}
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a run killed mid-write can leave a partial last line
            if rec["event"] == "start":
                starts.append(rec)
            else:
                evals[rec["iter"]] = rec
    return starts, evals


def write_log(d, lines) -> None:
    """A log.jsonl of the given records (synthetic runs for compare.py and sweep.py)."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "log.jsonl"), "w") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in lines)


def exec_config(path) -> dict:
    """A config file's assignments."""
    scope = {}
    exec(open(path).read(), {}, scope)
    return scope


# -----------------------------------------------------------------------------
# tiny models

TINY = dict(n_layer=4, n_head=2, n_embd=32, block_size=16, vocab_size=64)


def tiny_gpt(seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**(TINY | kw)))


def batch(seed=0, B=3, T=16, V=64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(V, (B, T), generator=g), torch.randint(V, (B, T), generator=g)


TINY_VIT = dict(image_size=8, patch_size=4, n_layer=4, n_head=2, n_embd=16, num_classes=10)  # 4 patches of 4x4

TINY_SIGLIP = TINY_VIT | dict(num_classes=8, vocab_size=len(CAPTION_VOCAB), text_len=CAPTION_LEN)


def tiny_vit(seed=0, **kw):
    torch.manual_seed(seed)
    return ViT(ViTConfig(**(TINY_VIT | kw)))


def tiny_siglip(seed=0, **kw):
    torch.manual_seed(seed)
    return SigLIP(SigLIPConfig(**(TINY_SIGLIP | kw)))


def image_batch(seed=0, B=3, size=8):
    """Random uint8 images (B, size, size), their labels, and the model input (B, 1, size, size) in [0, 1]."""
    g = np.random.default_rng(seed)
    images, labels = g.integers(0, 256, (B, size, size), dtype=np.uint8), g.integers(0, 10, B)
    return images, labels, torch.from_numpy(images).unsqueeze(1).float() / 255


def caption_batch(seed=0, B=3, size=8):
    images, labels, x = image_batch(seed, B, size)
    return x, torch.from_numpy(encode_captions(captions(labels, images, random.Random(seed))))
