"""
Shared by the test files: the tiny char dataset, the script runner, the log reader and tiny model builders.
Helpers are imported (`from conftest import cli, tiny_gpt`); the dataset is the `char_data` fixture and a trained
tiny A^2B run the `rins_run` fixture.

`cli` runs each script in a new process forked from a warm one that has already imported torch (a multiprocessing
fork server), so a run skips Python and torch start-up (1-2 s each, and the suite makes 190 such runs) but
otherwise lives and dies like `python script.py`: its own globals, environment, exit code, stdout and stderr.
NANORINS_FRESH_PROCESSES=1 starts every script as a plain subprocess instead.
"""

import io
import json
import locale
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import random
import runpy
import subprocess
import sys
import tempfile
import threading
import traceback

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
torch.set_num_threads(1)  # tiny models: a team of threads spins and waits more than it computes (and so do workers)


def cli(script: str, *args, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a Python script of the repository (or any script path) as a user would, from the repository root."""
    argv, env = [sys.executable, script, *map(str, args)], ENV | (env or {})
    if os.environ.get("NANORINS_FRESH_PROCESSES") or "forkserver" not in multiprocessing.get_all_start_methods():
        return subprocess.run(argv, cwd=HERE, capture_output=True, text=True, env=env, timeout=timeout)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        for f in (out, err):
            open(f, "w").close()
        proc = warm_context().Process(target=run_script, args=(argv[1:], env, HERE, out, err))
        with _reaping:
            proc.start()
        timed_out = not multiprocessing.connection.wait([proc.sentinel], timeout)  # waits, reads nothing
        if timed_out:
            proc.kill()
        with _reaping:
            proc.join()
        text = [open(f, encoding=locale.getpreferredencoding(False)).read() for f in (out, err)]
        if timed_out:
            raise subprocess.TimeoutExpired(argv, timeout, *text)
        return subprocess.CompletedProcess(argv, proc.exitcode, *text)


_warm = {"lock": threading.Lock(), "started": False}
# A fork server child's exit status is 8 bytes on a pipe, read once. Process.start() polls every live child
# (multiprocessing.process._cleanup) while another thread's join may poll the same one: the loser reads EOF and
# multiprocessing reports 255 for a run that exited 0. Starts and joins therefore take turns.
_reaping = threading.Lock()


def warm_context():
    """The fork server, started once per test process with ENV (torch reads OMP_NUM_THREADS at import) and the
    modules the scripts import loaded, none of them run: forking it is as good as a fresh interpreter."""
    ctx = multiprocessing.get_context("forkserver")
    with _warm["lock"]:
        if not _warm["started"]:
            ctx.set_forkserver_preload(["conftest", "checkpoint", "configurator", "tokenizer", "matplotlib.pyplot",
                                        "torch._dynamo"])  # the optimizer imports dynamo: 1 s a run
            saved = dict(os.environ)
            os.environ.update(ENV)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            _warm["started"] = True
    return ctx


@pytest.fixture(scope="session", autouse=True)
def stop_the_fork_server():
    """Stop and wait for the fork server at the end: its runs' CPU time then counts as the test process's own
    children's (what `time make test` reports), and nothing outlives the session."""
    yield
    if _warm["started"]:
        multiprocessing.forkserver._forkserver._stop()  # how CPython's own tests stop it


def run_script(argv: list[str], env: dict, cwd: str, out: str, err: str) -> None:
    """In the forked process: become `python *argv` with this environment and stdout/stderr in files."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=False)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), errors="backslashreplace", line_buffering=True)
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
    code = 0
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:  # as the interpreter does: None is 0, a number is the code, anything else is printed
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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


@pytest.fixture(scope="session")
def rins_run(char_data, tmp_path_factory) -> str:
    """A finished tiny A^2B run, 20 iterations, shared by the tests that read a checkpoint (copy it to write beside
    it)."""
    out = str(tmp_path_factory.mktemp("rins_run"))
    train(char_data, out, "--flop_budget=0", "--max_iters=20", "--signature=A^rB", "--r=2")
    return out


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
