"""
Tests of inference as bench_inference.py measures it: the teacher-forced loss through the KV caches, KV sharing, and the
--kv and --generate modes run end to end on tiny models.

    OMP_NUM_THREADS=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_inference.py -v
"""

import json
import re

import numpy as np
import pytest
import torch

from bench_inference import teacher_forced_loss
from checkpoint import save_checkpoint
from conftest import TINY, cli, tiny_gpt

V = 11  # a small vocabulary: the bench tables stay fast


def windows(seed=1, B=3, T=16):
    tokens = torch.randint(V, (B, T + 1), generator=torch.Generator().manual_seed(seed))
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def table(stdout: str) -> list[dict[str, str]]:
    """The Markdown table's rows as dicts keyed by its header."""
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]


@pytest.mark.parametrize("kw", [dict(signature="A^rB", r=2), dict(signature="(AB)^r", r=3), {}],
                         ids=["rins", "rao", "base"])
def test_cached_loss_equals_the_parallel_forward(kw):
    model, (x, y) = tiny_gpt(vocab_size=V, **kw), windows()
    with torch.no_grad():
        _, parallel = model(x, y)
    cached, stored = teacher_forced_loss(model, x, y)
    assert cached == pytest.approx(parallel.item(), abs=1e-6)
    assert stored == model.kv_cache_bytes_per_token()


def test_shared_kv_changes_the_loss_at_r2_and_saves_memory():
    model, (x, y) = tiny_gpt(vocab_size=V, signature="A^rB", r=2), windows()
    (none, full), (first, first_b), (last, last_b) = (teacher_forced_loss(model, x, y, 2, s)
                                                      for s in ("none", "first", "last"))
    assert abs(first - none) > 1e-4 and abs(last - none) > 1e-4 and abs(first - last) > 1e-4
    # A^2B with 4 layers: 6 applications store keys and values without sharing, 4 with it
    assert first_b == last_b == full * 4 / 6 == model.kv_cache_bytes_per_token("first", 2)


@pytest.mark.parametrize("share", ["first", "last"])
def test_shared_kv_is_exact_at_r1(share):
    model, (x, y) = tiny_gpt(vocab_size=V, signature="A^rB", r=2), windows()
    assert teacher_forced_loss(model, x, y, 1, share) == teacher_forced_loss(model, x, y, 1, "none")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory with a ckpt.pt of a tiny A^2B model, and the val.bin its config names."""
    root = tmp_path_factory.mktemp("kv")
    data = root / "data" / "tiny"
    data.mkdir(parents=True)
    np.random.default_rng(0).integers(V, size=500).astype(np.uint16).tofile(data / "val.bin")
    (data / "meta.json").write_text(json.dumps(dict(tokenizer="char", vocab_size=V)))
    model, run = tiny_gpt(vocab_size=V, signature="A^rB", r=2), root / "rins"
    run.mkdir()
    args = TINY | dict(vocab_size=V, signature="A^rB", r=2)
    save_checkpoint(dict(model=model.state_dict(), model_args=args, iter_num=0,
                         config=dict(dataset="tiny", data_dir=str(root / "data"))), str(run / "ckpt.pt"))
    return run


def test_bench_kv_prints_the_table(tiny_run):
    out = cli("bench_inference.py", "--kv", str(tiny_run), "--eval_r=[1,2]", "--windows=2", "--new_tokens=8",
              "--repeats=1")
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)
    assert [(row["r"], row["kv_share"]) for row in rows] == [(r, s) for r in "12" for s in ("none", "first", "last")]
    for row in rows:
        none = next(n for n in rows if n["r"] == row["r"] and n["kv_share"] == "none")
        if row["kv_share"] == "none":
            assert row["val loss"] == row["parallel"]
        elif row["r"] == "1":
            assert row["val loss"] == none["val loss"] and row["note"] == "same as none (r=1)"
        else:
            assert row["val loss"] != none["val loss"] and row["note"] == "train/test mismatch"
            assert row["KV x"] == "0.67"
    assert "TRAIN/TEST MISMATCH" in out.stdout
    assert re.search(r"max \|loss difference\| \S+ over 2 rows \(float rounding\)", out.stdout)
    assert "= kv_cache_bytes_per_token() in every row" in out.stdout


def test_bench_generate_prints_cache_against_recompute():
    out = cli("bench_inference.py", "--generate", "--n_layer=2", "--n_head=2", "--n_embd=16", "--block_size=16",
              f"--vocab_size={V}", "--new_tokens=8", "--repeats=1")
    assert out.returncode == 0, out.stderr
    rows = table(out.stdout)
    assert [(row["model"], row["method"]) for row in rows] == [
        (m, c) for m in ("arena_baseline.py", "arena_rins.py") for c in ("KV cache", "no cache")]
    assert rows[0]["time x"] == "1.000"
    # per application: 16 wide x (k, v) x 4 bytes x 8 tokens held at the end; AB applies 2 blocks, A^2B 3
    assert [float(row["cache KB"]) for row in rows] == [16 * 2 * 4 * 8 / 1024 * n for n in (2, 0, 3, 0)]
    assert out.stdout.count("greedy tokens with the cache == without") == 2


@pytest.mark.parametrize("argv, message", [
    (["--kv"], "--kv needs trained run directories"),
    (["--kv", "--generate"], "choose one mode"),
    (["--generate", "--block_size=16", "--new_tokens=17"], "new_tokens=17 exceeds"),
    (["--generate", "--compile=True"], "compile=True applies to bench.py's training steps only"),
    (["--generate", "--compile=model"], "compile=model applies to bench.py's training steps only"),
    (["--generate", "--compile=fast"], "compile='fast' is not allowed; need one of auto, True, False, model"),
    (["--kv", "no_such_dir"], "'no_such_dir' is not a run directory"),
])
def test_bad_input_is_one_line(argv, message):
    out = cli("bench_inference.py", *argv)
    assert out.returncode != 0 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
