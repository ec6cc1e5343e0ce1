"""
train.py end to end, as users run it: every config trains, seeded runs reproduce and resume, sample.py at
several depths, the image tasks log accuracy. Tiny models on tiny data, on the CPU.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_train.py -v
"""

import json
import math
import os

import numpy as np
import pytest

from conftest import HERE, TINY_TRAIN, cli, read_log, train
from vision import CAPTION_LEN, FASHION_CLASSES


def test_seeded_runs_are_bitwise_reproducible_and_resume_continues(char_data, tmp_path):
    args = ["--flop_budget=0", "--max_iters=30", "--eval_interval=10", "--signature=A^rB", "--r=3",
            "--round_sampler=binomial", "--dropout=0.1", "--eval_r=[1,2,3]"]
    train(char_data, tmp_path / "a", *args)
    train(char_data, tmp_path / "b", *args)
    keys = ("iter", "tokens", "flops", "train_loss", "val_loss", "val_loss_r")
    a, b = ([{k: rec.get(k) for k in keys} for rec in read_log(tmp_path / d)[1:]] for d in "ab")
    assert a == b and len(a) == 4
    # resume: a run stopped at iteration 30 goes on to 40 from its checkpoint
    train(char_data, tmp_path / "a", *args[:1], "--max_iters=40", *args[2:], "--init_from=resume")
    log = read_log(tmp_path / "a")
    starts = [rec for rec in log if rec["event"] == "start"]
    assert starts[-1]["resumed_from"] == 30 and log[-1]["iter"] == 40 and log[-1]["event"] == "done"
    assert [rec["iter"] for rec in log if rec["event"] != "start"] == [0, 10, 20, 30, 40]


def test_sample_at_several_depths(rins_run):
    for r in ("0", "1", "3"):
        proc = cli("sample.py", f"--out_dir={rins_run}", f"--r={r}", "--num_samples=1", "--max_new_tokens=30",
                   "--start=def ")
        assert proc.returncode == 0, proc.stderr
        assert "def " in proc.stdout and f"r={r if r != '0' else 2}" in proc.stdout


LM_CONFIGS = sorted(p for p in os.listdir(os.path.join(HERE, "config"))
                    if p.endswith("_small.py") or p.startswith(("shakespeare", "class_", "gpu_")))


@pytest.mark.parametrize("path", LM_CONFIGS)
def test_every_config_trains_a_few_iterations(char_data, tmp_path, path):
    """python train.py config/X.py works for every LM config (shrunk to the tiny data and width)."""
    proc = train(char_data, tmp_path, f"config/{path}", *TINY_TRAIN, "--flop_budget=0", "--max_iters=3",
                 "--data_dir=" + str(char_data), "--dataset=tiny", f"--out_dir={tmp_path}")
    log = read_log(tmp_path)
    assert log[-1]["event"] == "done" and math.isfinite(log[-1]["val_loss"]), proc.stdout[-1000:]


@pytest.mark.parametrize("config, task, extra", [("vit_fashion_rins.py", "vit", []), ("vit_fashion.py", "vit", []),
                                                 ("siglip_fashion_rins.py", "siglip", ["--rins_tower=text"]),
                                                 ("siglip_fashion.py", "siglip", [])])
def test_train_py_image_task_logs_accuracy(tmp_path, config, task, extra):
    """Each vision config, shrunk to tiny synthetic images, trains and logs accuracy at every eval depth."""
    d = tmp_path / "fashion_mnist"
    d.mkdir()
    g = np.random.default_rng(0)
    for split, n in (("train", 64), ("val", 20)):
        np.save(d / f"{split}_images.npy", g.integers(0, 256, (n, 8, 8), dtype=np.uint8))
        np.save(d / f"{split}_labels.npy", g.integers(0, 10, n).astype(np.uint8))
    (d / "meta.json").write_text(json.dumps({"name": "fashion_mnist", "classes": FASHION_CLASSES}))
    out = tmp_path / "out"
    proc = cli("train.py", f"config/{config}", "--dataset=fashion_mnist", f"--data_dir={tmp_path}", f"--out_dir={out}",
               "--device=cpu", "--n_layer=2", "--n_head=2", "--n_embd=16", "--patch_size=4", "--batch_size=8",
               "--eval_iters=2", "--eval_interval=2", "--flop_budget=0", "--max_iters=4", "--warmup_iters=0",
               "--signature=A^rB", "--r=2", "--eval_r=[1,2]", *extra)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    start, done = lines[0], lines[-1]
    assert done["event"] == "done" and done["iter"] == 4
    assert {"task", "patch_size", "rins_tower"} <= set(start["config"])
    assert all(k.islower() for k in start["config"])  # no stray globals
    assert start["tokens_per_iter"] == 8 * (4 + (CAPTION_LEN if task == "siglip" else 0))  # patches (+ caption tokens)
    assert done["flops"] == pytest.approx(4 * start["tokens_per_iter"] * start["flops_per_token"])
    acc = "val_acc" if task == "vit" else "zeroshot_acc"
    assert set(done[f"{acc}_r"]) == set(done["val_loss_r"]) == {"1", "2"}
    assert done[acc] == done[f"{acc}_r"]["2"] and 0.0 <= done[acc] <= 1.0
    assert all(math.isfinite(v) for v in done["val_loss_r"].values())


def test_fixed_train_windows_and_the_warmup_cap(char_data, tmp_path):
    """fixed_train_loss scores the same training windows at every eval: with a learning rate of 0 nothing moves, so
    it repeats exactly while the running batch loss (new windows each step) does not. The warmup cap (a tenth of the
    iterations) applies to a length set by max_iters too."""
    proc = train(char_data, tmp_path, "--flop_budget=0", "--max_iters=20", "--eval_interval=5", "--warmup_iters=100",
                 "--learning_rate=0.0", "--min_lr=0.0", "--signature=A^rB", "--r=2", "--eval_r=[1]")
    assert "(warmup 2," in proc.stdout
    evals = [rec for rec in read_log(tmp_path) if rec["event"] != "start"]
    fixed = {rec["fixed_train_loss"] for rec in evals}
    assert len(evals) == 5 and len(fixed) == 1 and math.isfinite(fixed.pop())
    assert len({rec["train_loss"] for rec in evals[1:]}) > 1


def test_a_gpu_dry_run_plans_before_the_data_is_prepared(tmp_path):
    """On a fresh GPU machine, --dry_run=True plans a GPT-2 BPE config (iterations, tokens, predicted hours) before
    the download; a real run, or a dataset whose vocabulary only its meta.json knows, still asks for prepare.py."""
    dry = cli("train.py", "config/gpu_rins.py", "--flop_budget=1e18", "--dry_run=True", f"--data_dir={tmp_path}",
              "--device=cpu")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "iterations: 1,636" in dry.stdout and "tokens to see: 857,735,168" in dry.stdout
    assert "predicted time: 0.759 h on an H100" in dry.stdout and "not prepared yet" in dry.stdout
    assert not list(tmp_path.iterdir())
    for args in (["config/gpu_rins.py", "--flop_budget=1e18"], ["--dataset=english_char", "--dry_run=True"]):
        proc = cli("train.py", *args, f"--data_dir={tmp_path}", "--device=cpu", f"--out_dir={tmp_path / 'out'}")
        assert proc.returncode != 0 and "no prepared dataset" in proc.stderr and "run: python prepare.py" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
