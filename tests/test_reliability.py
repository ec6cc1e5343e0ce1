"""
Reliability: checkpoints survive SIGKILL, resume is bit-exact, checkpoints load with weights_only, divergence
stops cleanly, every user mistake is one clear line, torchrun on CPU matches one process. Real scripts run as
subprocesses; tests/support/faults.py injects the faults.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_reliability.py -v
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from checkpoint import load_checkpoint, load_model_state, save_checkpoint
from conftest import ENV, HERE, SUPPORT, batch, cli, data_args, read_log_by_iter, tiny_gpt, write_char_dataset
from model import GPT, GPTConfig

TINY_CLI = ["--n_layer=2", "--n_embd=16", "--n_head=2", "--block_size=8", "--batch_size=2", "--eval_iters=1",
            "--flop_budget=0", "--max_iters=2"]
RESUME_KEYS = ("optimizer", "flops", "best_val_loss", "rng")
FAULTS = os.path.join(SUPPORT, "faults.py")


def faults(script, *args, **hook):
    """Run a script under tests/support/faults.py with the hook's settings: faults(..., mode="die_after_save", n=2)
    sets FAULT_MODE and FAULT_N (see faults.py)."""
    return cli(FAULTS, script, *args, env={f"FAULT_{k.upper()}": str(v) for k, v in hook.items()}, timeout=120)


METRICS = ("tokens", "flops", "lr", "train_loss", "val_loss", "val_loss_r")


def metrics(evals):
    return {it: {k: rec.get(k) for k in METRICS} for it, rec in sorted(evals.items())}


def tmp_files(out_dir):
    return [f for f in os.listdir(out_dir) if ".tmp" in f]


def check_complete(path):
    """The checkpoint loads with weights_only, rebuilds its model and holds everything a resume needs."""
    ckpt = load_checkpoint(path, need=RESUME_KEYS)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    load_model_state(model, ckpt["model"], path)
    assert len(ckpt["optimizer"]["state"]) == (len(list(model.parameters())) if ckpt["iter_num"] else 0)
    return ckpt


# -----------------------------------------------------------------------------
# 1. Atomic checkpoints


def test_checkpoint_roundtrip_gives_identical_logits(tmp_path):
    model = tiny_gpt(signature="A^rB", r=2, adapter="per_round", adapter_rank=2)
    with torch.no_grad():
        for p in model.extras.parameters():
            p.normal_()  # make the adapters matter
    ckpt = {"model": model.state_dict(), "model_args": model.config.__dict__, "iter_num": 7}
    save_checkpoint(ckpt, str(tmp_path / "ckpt.pt"))
    ckpt = load_checkpoint(str(tmp_path / "ckpt.pt"))
    clone = GPT(GPTConfig(**ckpt["model_args"]))
    load_model_state(clone, ckpt["model"], "ckpt.pt")
    x, y = batch()
    assert torch.equal(model(x, y)[0], clone(x, y)[0]) and ckpt["iter_num"] == 7
    assert not [p for p in os.listdir(tmp_path) if p != "ckpt.pt"]  # no temporary file left behind


@pytest.mark.parametrize("frac", [0.0, 0.5, 1.0])
def test_sigkill_inside_torch_save_keeps_the_previous_checkpoint(tmp_path, char_data, frac):
    """SIGKILL while the 3rd checkpoint (iter 2) is being written: nothing, half, or all of its bytes
    are out but not yet renamed. ckpt.pt is still the complete iter-1 checkpoint and one stray
    tmp file is left (the next test resumes next to such strays)."""
    out = tmp_path / "out"
    args = [*TINY_CLI[:-1], "--max_iters=4", "--eval_interval=1", *data_args(char_data), f"--out_dir={out}"]
    p = faults("train.py", *args, mode="die_in_save", n=2, frac=frac)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert check_complete(str(out / "ckpt.pt"))["iter_num"] == 1
    assert len(tmp_files(out)) == 1


def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint(tmp_path, char_data):
    """A model big enough that saving (~10 MB, fsync'd at every iteration) is most of the time,
    killed at random moments and resumed each time: ckpt.pt is always a complete checkpoint of a
    logged eval, never older than the one before, and each kill leaves at most one tmp file."""
    out = tmp_path / "out"
    args = ["--n_layer=4", "--n_embd=128", "--n_head=4", "--block_size=8", "--batch_size=2", "--eval_iters=1",
            "--flop_budget=0", "--max_iters=100000", "--eval_interval=1", *data_args(char_data), f"--out_dir={out}"]
    rng, last_iter = random.Random(0), -1
    for kill in range(4):
        ckpt = out / "ckpt.pt"
        before = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        p = subprocess.Popen([sys.executable, "train.py", *args] + (["--init_from=resume"] if kill else []), cwd=HERE,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not (ckpt.exists() and ckpt.stat().st_mtime_ns != before):  # this process has saved once
            assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.poll() is not None else "timeout"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait()
        state = check_complete(str(ckpt))
        assert state["iter_num"] in read_log_by_iter(out)[1] and state["iter_num"] > last_iter
        assert len(tmp_files(out)) <= kill + 1
        last_iter = state["iter_num"]


# -----------------------------------------------------------------------------
# 2. Bit-exact resume


RESUME_CONFIGS = {
    # stochastic depth + dropout + gradient accumulation: data, rounds and dropout RNGs must all resume
    "stoch_dropout_accum": ["--signature=A^rB", "--r=3", "--round_sampler=binomial", "--dropout=0.1",
                            "--gradient_accumulation_steps=2", "--eval_r=[1,2]"],
    # latent recurrence: a noise first state drawn from the global RNG, also during eval
    "latent_noise": ["--n_layer=4", "--signature=AB^rC", "--partition=1:2:1", "--r=2", "--round_sampler=poisson",
                     "--injection=concat", "--state_init=noise", "--bptt_rounds=2", "--dropout=0.1"],
}


@pytest.mark.parametrize("name", list(RESUME_CONFIGS))
def test_interrupted_run_resumes_bit_for_bit(tmp_path, char_data, name):
    """One run straight through vs the same run SIGKILLed right after its 2nd checkpoint (iter 2),
    resumed, SIGKILLed again after the 2nd checkpoint of the resumed process (iter 6), resumed to
    the end: identical log.jsonl metrics and identical final weights and optimizer state."""
    base = [*TINY_CLI[:-1], "--max_iters=8", "--eval_interval=2", "--eval_iters=2", *data_args(char_data),
            *RESUME_CONFIGS[name]]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    with ThreadPoolExecutor(2) as pool:
        straight = pool.submit(cli, "train.py", *base, f"--out_dir={whole}")
        p = faults("train.py", *base, f"--out_dir={parts}", mode="die_after_save", n=2)
        assert p.returncode == -signal.SIGKILL, p.stderr
        assert load_checkpoint(str(parts / "ckpt.pt"))["iter_num"] == 2
        p = faults("train.py", *base, f"--out_dir={parts}", "--init_from=resume", mode="die_after_save", n=2)
        assert p.returncode == -signal.SIGKILL, p.stderr
        assert load_checkpoint(str(parts / "ckpt.pt"))["iter_num"] == 6
        p = cli("train.py", *base, f"--out_dir={parts}", "--init_from=resume")
        assert p.returncode == 0, p.stderr
        assert straight.result().returncode == 0, straight.result().stderr
    starts, evals = read_log_by_iter(parts)
    assert [s["resumed_from"] for s in starts] == [None, 2, 6]
    expected = metrics(read_log_by_iter(whole)[1])
    assert list(expected) == [0, 2, 4, 6, 8] and metrics(evals) == expected
    flops = [expected[i]["flops"] - expected[i - 2]["flops"] for i in (2, 4, 6, 8)]
    assert len(set(flops)) > 1  # the rounds really were sampled: steps cost different FLOPs
    a, b = (torch.load(d / "ckpt.pt", weights_only=True) for d in (whole, parts))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, s in a["optimizer"]["state"].items():
        assert all(torch.equal(v, b["optimizer"]["state"][i][k]) for k, v in s.items())
    assert a["best_val_loss"] == b["best_val_loss"] and a["flops"] == b["flops"]


# -----------------------------------------------------------------------------
# 3. weights_only checkpoints; 4. the NaN guard


@pytest.fixture(scope="module")
def trained(tmp_path_factory, char_data):
    """A finished tiny baseline run: its out_dir."""
    out = str(tmp_path_factory.mktemp("run") / "out")
    p = cli("train.py", *TINY_CLI, *data_args(char_data), f"--out_dir={out}")
    assert p.returncode == 0, p.stderr
    return out


def test_checkpoint_is_plain_data_for_weights_only_load(trained):
    path = os.path.join(trained, "ckpt.pt")
    ckpt = torch.load(path, weights_only=True)  # raises if anything in it needs arbitrary unpickling
    keys = {"model", "optimizer", "scaler", "model_args", "config", "iter_num", "flops", "best_val_loss", "rng"}
    assert keys <= set(ckpt)
    assert ckpt["iter_num"] == 2 and ckpt["model_args"]["n_layer"] == 2
    check_complete(path)
    p = cli("sample.py", f"--out_dir={trained}", "--num_samples=1", "--max_new_tokens=5")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stdout.splitlines()) >= 2


@pytest.mark.parametrize("eval_interval, what", [(100, "training loss"), (1, "validation loss")])
def test_non_finite_loss_stops_naming_iteration_and_last_good_checkpoint(tmp_path, char_data, eval_interval, what):
    """learning_rate=1e30 with no warmup: one AdamW step moves every weight by ~1e30, so the next
    forward overflows float32. The run stops at iter 1 with one line naming the iter-0 checkpoint,
    which stays finite and loadable, and nothing non-finite reaches log.jsonl."""
    out = tmp_path / "out"
    p = cli("train.py", *TINY_CLI[:-1], "--max_iters=5", f"--eval_interval={eval_interval}", "--learning_rate=1e30",
            "--warmup_iters=0", *data_args(char_data), f"--out_dir={out}")
    err = p.stderr.strip()
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(err.splitlines()) == 1, err
    assert f"{what} is not finite at iter 1" in err and f"{out / 'ckpt.pt'} (iter 0)" in err and "learning_rate" in err
    ckpt = check_complete(str(out / "ckpt.pt"))
    assert ckpt["iter_num"] == 0 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert sorted(read_log_by_iter(out)[1]) == [0]


# -----------------------------------------------------------------------------
# 5. Bad input: one clear line, no traceback


def bad_world(root, trained):
    """Data sets, config files and checkpoints, each broken in one way; returns the paths by name."""
    w = {"root": root, "trained": trained, "empty": os.path.join(root, "empty_run")}
    write_char_dataset(root)
    write_char_dataset(root, "nometa")
    os.remove(os.path.join(root, "nometa", "meta.json"))
    write_char_dataset(root, "badmeta", meta="{not json")
    write_char_dataset(root, "notok", meta={"name": "notok"})
    write_char_dataset(root, "novocab", meta={"name": "novocab", "tokenizer": "char"})
    write_char_dataset(root, "odd")
    with open(os.path.join(root, "odd", "train.bin"), "ab") as f:
        f.write(b"\0")
    write_char_dataset(root, "noval")
    os.remove(os.path.join(root, "noval", "val.bin"))
    write_char_dataset(root, "bigid")
    np.full(100, 40, np.uint16).tofile(os.path.join(root, "bigid", "val.bin"))
    write_char_dataset(root, "short", n_val=5)
    w["gone"] = os.path.join(root, "gone")  # a data dir whose meta.json was deleted after training
    write_char_dataset(w["gone"])
    os.remove(os.path.join(w["gone"], "tiny", "meta.json"))
    w["file"] = os.path.join(root, "a_file")
    open(w["file"], "w").close()
    with open(os.path.join(root, "cfg_syntax.py"), "w") as f:
        f.write("n_layer = = 2\n")
    good_path = os.path.join(trained, "ckpt.pt")
    good = torch.load(good_path, weights_only=True)

    def ckpt(name, obj=None, raw=None):
        d = os.path.join(root, name)
        os.makedirs(d)
        if raw is not None:
            with open(os.path.join(d, "ckpt.pt"), "wb") as f:
                f.write(raw)
        else:
            torch.save(obj, os.path.join(d, "ckpt.pt"))
        w[name] = d

    ckpt("corrupt", raw=random.Random(0).randbytes(5000))
    ckpt("truncated", raw=open(good_path, "rb").read()[:os.path.getsize(good_path) // 2])
    ckpt("no_args", {k: v for k, v in good.items() if k != "model_args"})
    ckpt("no_optimizer", {k: v for k, v in good.items() if k != "optimizer"})
    ckpt("same", good)
    ckpt("args_4_layers", good | {"model_args": good["model_args"] | {"n_layer": 4}})
    ckpt("args_wide", good | {"model_args": good["model_args"] | {"n_embd": 32}})
    ckpt("meta_gone", good | {"config": good["config"] | {"data_dir": w["gone"]}})
    return w


def T(w, *extra, dataset="tiny", out="out"):
    """train.py arguments: the tiny config on a data set of the bad world, then the case's own."""
    return ["train.py", *TINY_CLI, *data_args(w["root"], dataset), f"--out_dir={os.path.join(w['root'], out)}", *extra]


BAD_INPUTS = {
    "unknown_key": (lambda w: T(w, "--foo=1"), ["unknown config key 'foo'", "allowed keys:", "batch_size"]),
    "wrong_type": (lambda w: T(w, "--n_layer=2.5"), ["n_layer=2.5", "must be of type int"]),
    "bad_bool": (lambda w: T(w, "--bias=yes"), ["bias='yes'", "True or False"]),
    "no_equals": (lambda w: T(w, "--n_layer"), ["'--n_layer'", "--key=value"]),
    "missing_config_file": (lambda w: ["train.py", "config/nope.py"], ["config/nope.py", "existing file"]),
    "config_syntax": (lambda w: ["train.py", os.path.join(w["root"], "cfg_syntax.py")],
                      ["line 1", "plain assignments"]),
    "negative_budget": (lambda w: T(w, "--flop_budget=-1"), ["flop_budget=-1", ">= 0"]),
    "max_iters_and_budget": (lambda w: T(w, "--flop_budget=1e9", "--max_iters=3"),
                             ["both set the run length", "--flop_budget=0"]),
    "bad_dtype": (lambda w: T(w, "--dtype=fp8"), ["dtype='fp8'", "float32, bfloat16"]),
    "bad_init_from": (lambda w: T(w, "--init_from=gpt2"), ["init_from='gpt2'", "scratch, resume"]),
    "bad_device": (lambda w: T(w, "--device=tpu"), ["device='tpu'", "cpu, cuda"]),
    "zero_batch": (lambda w: T(w, "--batch_size=0"), ["batch_size=0", ">= 1"]),
    "heads_not_dividing": (lambda w: T(w, "--n_embd=15"), ["n_embd=15", "divisible by n_head=2"]),
    "negative_lr": (lambda w: T(w, "--learning_rate=-1"), ["learning_rate=-1", "learning_rate >= 0"]),
    "zero_eval_interval": (lambda w: T(w, "--eval_interval=0"), ["eval_interval", ">= 1"]),
    "signature_order": (lambda w: T(w, "--signature=A^rX"), ["bad signature 'A^rX'", "alphabetical", "e.g. AB, A^rB"]),
    "signature_unclosed": (lambda w: T(w, "--signature=(AB"), ["unclosed '('", "e.g. AB, A^rB"]),
    "layers_not_divisible": (lambda w: T(w, "--signature=ABC"), ["cuts 2 layers into slices", "divisible by 3"]),
    "r_zero": (lambda w: T(w, "--signature=A^rB", "--r=0"), ["r=0", "r >= 1"]),
    "r_on_baseline": (lambda w: T(w, "--r=2"), ["no '^r' unit", "A^rB"]),
    "bad_round_sampler": (lambda w: T(w, "--signature=A^rB", "--round_sampler=uniform"),
                          ["'uniform'", "fixed, binomial, poisson"]),
    "bad_partition": (lambda w: T(w, "--signature=A^rB", "--partition=1:x"), ["partition='1:x'", "one per letter"]),
    "eval_r_zero": (lambda w: T(w, "--signature=A^rB", "--r=2", "--eval_r=[0]"), ["eval_r=[0]", "at least 1"]),
    "eval_r_float": (lambda w: T(w, "--signature=A^rB", "--r=2", "--eval_r=[1.5]"), ["eval_r=[1.5]", "whole number"]),
    "data_dir_missing": (lambda w: T(w, "--data_dir=/nonexistent"),
                         ["no prepared dataset at /nonexistent/tiny", "prepare.py"]),
    "meta_missing": (lambda w: T(w, dataset="nometa"), ["no prepared dataset", "prepare.py nometa"]),
    "meta_not_json": (lambda w: T(w, dataset="badmeta"), ["not valid JSON", "prepare.py badmeta"]),
    "meta_no_tokenizer": (lambda w: T(w, dataset="notok"), ["needs tokenizer 'char'", "'gpt2'"]),
    "meta_no_vocab_size": (lambda w: T(w, dataset="novocab"), ["vocab_size", "prepare.py novocab"]),
    "bin_odd_size": (lambda w: T(w, dataset="odd"), ["odd/train.bin", "odd size", "uint16"]),
    "bin_missing": (lambda w: T(w, dataset="noval"), ["noval/val.bin is missing", "prepare.py"]),
    "bin_id_too_big": (lambda w: T(w, dataset="bigid"), ["token id 40 >= vocab_size 16", "prepare.py"]),
    "bin_too_short": (lambda w: T(w, dataset="short"), ["has 5 tokens", "smaller block_size"]),
    "out_dir_unwritable": (lambda w: T(w, out=os.path.join(w["file"], "out")), ["cannot write to out_dir", "writable"]),
    "resume_no_checkpoint": (lambda w: T(w, "--init_from=resume", out="empty_run"),
                             ["empty_run/ckpt.pt' does not exist", "train first"]),
    "resume_corrupt": (lambda w: T(w, "--init_from=resume", out="corrupt"), ["truncated or corrupt", "older copy"]),
    "resume_truncated": (lambda w: T(w, "--init_from=resume", out="truncated"), ["truncated or corrupt", "older copy"]),
    "resume_no_optimizer": (lambda w: T(w, "--init_from=resume", out="no_optimizer"),
                            ["lacks optimizer", "not a complete"]),
    "resume_other_n_layer": (lambda w: T(w, "--init_from=resume", "--n_layer=4", out="same"),
                             ["trained with n_layer=2", "config says 4", "run's own config"]),
    "sample_no_checkpoint": (lambda w: ["sample.py", f"--out_dir={w['empty']}"], ["does not exist", "train first"]),
    "sample_corrupt": (lambda w: ["sample.py", f"--out_dir={w['corrupt']}"], ["truncated or corrupt", "older copy"]),
    "sample_no_model_args": (lambda w: ["sample.py", f"--out_dir={w['no_args']}"],
                             ["lacks model_args", "not a complete"]),
    "sample_other_n_layer": (lambda w: ["sample.py", f"--out_dir={w['args_4_layers']}"],
                             ["does not fit", "missing tensor transformer.h.2.", "model_args"]),
    "sample_other_width": (lambda w: ["sample.py", f"--out_dir={w['args_wide']}"],
                           ["wte.weight has shape (16, 16)", "expects (16, 32)"]),
    "sample_tokenizer_gone": (lambda w: ["sample.py", f"--out_dir={w['meta_gone']}"],
                              ["gone/tiny/meta.json is missing", "prepare.py"]),
    "sample_bad_num": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--num_samples=0"],
                       ["num_samples=0", "num_samples >= 1"]),
    "sample_r_on_baseline": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--r=2"], ["r=2", "no '^r' unit"]),
    "sample_unknown_char": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--start=XYZ"], ["'X'", "vocabulary"]),
    "sample_prompt_file": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--start=FILE:/nonexistent"],
                           ["cannot read the prompt file '/nonexistent'", "UTF-8 text file"]),
    "compare_bad_budgets": (lambda w: ["compare.py", "--budgets=lots", f"--out={w['root']}/cmp",
                                       "config/rins_small.py"],
                            ["bad --budgets 'lots'", "comma-separated"]),
    "compare_no_out": (lambda w: ["compare.py"], ["no output directory", "--out"]),
    "prepare_unknown_dataset": (lambda w: ["prepare.py", "wikitext"], ["'wikitext'", "shakespeare_char"]),
    "prepare_bad_option": (lambda w: ["prepare.py", "shakespeare_char", "--bogus=1"], ["'--bogus=1'", "--max_chars"]),
}


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory, trained):
    """Every BAD_INPUTS case, run side by side once (each is a fresh python + torch import)."""
    w = bad_world(str(tmp_path_factory.mktemp("bad")), trained)
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(cli, *argv(w)) for name, (argv, _) in BAD_INPUTS.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line(bad_results, case):
    p, fragments = bad_results[case], BAD_INPUTS[case][1]
    err = p.stderr.strip()
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert len(err.splitlines()) == 1, err  # stdout may hold the run table; the error is stderr's only line
    assert err.startswith(("train.py: ", "sample.py: ", "compare.py: ", "prepare.py: ", "checkpoint '")), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# -----------------------------------------------------------------------------
# 6. torchrun on CPU


def test_torchrun_two_processes_match_one_process(tmp_path, char_data):
    """torchrun --nproc_per_node=2 (gloo) with batch_size=2 against one process with batch_size=4:
    the same global batches, so the same losses (to float rounding) and the same FLOPs; both ranks
    draw identical stochastic rounds (equal to the single process's); only rank 0 saves and logs."""
    common = [*TINY_CLI[:-1], "--max_iters=6", "--eval_interval=2", "--eval_iters=2", "--signature=A^rB", "--r=3",
              "--round_sampler=binomial", "--gradient_accumulation_steps=2", "--eval_r=[1]", *data_args(char_data)]
    hooks = {name: tmp_path / name for name in ("ddp", "single")}
    for d in hooks.values():
        d.mkdir()
    env = ENV | {"FAULT_MODE": "record"}
    ddp = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                            "--standalone", "--", FAULTS, "train.py", *common,
                            "--batch_size=2", f"--out_dir={tmp_path / 'out_ddp'}"], cwd=HERE, text=True,
                           env=env | {"FAULT_OUT": str(hooks["ddp"])}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    single = cli(FAULTS, "train.py", *common, "--batch_size=4", f"--out_dir={tmp_path / 'out_single'}",
                 env={"FAULT_MODE": "record", "FAULT_OUT": str(hooks["single"])}, timeout=120)
    log, _ = ddp.communicate(timeout=120)
    assert ddp.returncode == 0, log
    assert single.returncode == 0, single.stderr
    assert "2 processes" in log and "Traceback" not in log
    starts, evals = read_log_by_iter(tmp_path / "out_ddp")
    _, ref = read_log_by_iter(tmp_path / "out_single")
    assert len(starts) == 1 and sorted(evals) == sorted(ref) == [0, 2, 4, 6]
    with open(tmp_path / "out_ddp" / "log.jsonl") as f:
        assert len(f.readlines()) == 5  # one start and four evals: rank 1 wrote nothing
    for it in ref:
        assert evals[it]["tokens"] == ref[it]["tokens"] and evals[it]["flops"] == ref[it]["flops"]
        assert evals[it]["val_loss"] == pytest.approx(ref[it]["val_loss"], abs=1e-5)
        assert evals[it]["val_loss_r"]["1"] == pytest.approx(ref[it]["val_loss_r"]["1"], abs=1e-5)
        if it:
            assert evals[it]["train_loss"] == pytest.approx(ref[it]["train_loss"], abs=1e-5)
    rank0, rank1, one = (json.loads((hooks[d] / f).read_text()) for d, f in
                         (("ddp", "rank0.json"), ("ddp", "rank1.json"), ("single", "rank0.json")))
    assert rank0["rounds"] == rank1["rounds"] == one["rounds"] and len(set(one["rounds"])) > 1
    assert rank0["saves"] == [0, 2, 4, 6] and rank1["saves"] == []
    ckpt = check_complete(str(tmp_path / "out_ddp" / "ckpt.pt"))
    assert len(ckpt["rng"]["torch"]) == 2  # each rank's dropout RNG, for a resume
