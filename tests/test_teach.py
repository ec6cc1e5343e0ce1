"""
Tests of the teaching tools: plan.py (draws a plan) and diagnose.py (per-application diagnostics).

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_teach.py -v
"""

import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import diagnose
import plan
from checkpoint import save_checkpoint
from conftest import HERE, batch, cli, read_log, tiny_gpt
from model import GPTConfig, Plan

SIGNATURES = {"rins": dict(signature="A^rB", r=2), "rao": dict(signature="(AB)^r", r=3), "base": {},
              "latent": dict(signature="AB^rC", partition="1:2:1", r=2), "reverse": dict(signature="reverse")}


def batches(n=2):
    return [batch(seed) for seed in range(n)]


def png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


# -----------------------------------------------------------------------------
# diagnose.py on models built here


@pytest.mark.parametrize("name", SIGNATURES)
def test_lens_after_the_last_application_is_the_model_loss(name):
    model = tiny_gpt(**SIGNATURES[name]).eval()
    (x, y), = batches(1)
    states, _, loss = diagnose.streams(model, x, y)
    assert torch.allclose(diagnose.lens_loss(model, states[-1], y), loss, rtol=0, atol=1e-6)
    assert not torch.allclose(diagnose.lens_loss(model, states[-2], y), loss, rtol=0, atol=1e-6)  # the lens can tell


@pytest.mark.parametrize("name,r", [("rins", None), ("rins", 3), ("rao", None), ("latent", 1), ("reverse", None)])
def test_one_hooked_state_per_application_in_plan_order(name, r):
    model = tiny_gpt(**SIGNATURES[name])
    (x, y), = batches(1)
    states, blocks, _ = diagnose.streams(model, x, y, r)
    apps = plan.applications(model, r)
    assert len(states) == len(apps) + 1 and blocks == [i for i, _ in apps]  # + the stream entering the first
    text = " | ".join(" ".join(map(str, layers)) for _, layers in plan.segments(model, r))
    assert text in model.plan.describe(r)
    assert not any(block._forward_hooks for block in model.transformer.h)  # the hooks are removed


def test_cosine_of_identical_states_is_one():
    h = torch.randn(3, 5, 8)
    assert torch.allclose(diagnose.cosine(h, h), torch.tensor(1.0))
    assert torch.allclose(diagnose.cosine(h, -h), torch.tensor(-1.0))
    assert torch.allclose(diagnose.rms(torch.full((2, 3, 4), 2.0)), torch.tensor(2.0))


def test_diagnose_compares_each_round_with_the_previous_one():
    model = tiny_gpt(**SIGNATURES["rins"])  # 0 1 | 0 1 | 2 3
    d = diagnose.diagnose(model, batches())
    assert np.isnan(d["cos_round"][[0, 1, 4, 5]]).all() and (np.abs(d["cos_round"][[2, 3]]) <= 1).all()
    assert d["lens"][-1] == pytest.approx(d["loss"], abs=1e-6)


def test_gradient_shares_sum_to_one_and_a_shared_block_sums_its_applications():
    """Block i of A^rB gets the summed gradient of its copies in an unrolled plain GPT (copy j runs plan[j])."""
    shared = tiny_gpt(**SIGNATURES["rins"])
    layers = [i for i, _ in plan.applications(shared)]
    unrolled = tiny_gpt(n_layer=len(layers))
    state = {k: v for k, v in shared.state_dict().items() if not k.startswith("transformer.h.")}
    for j, i in enumerate(layers):
        state |= {f"transformer.h.{j}.{k}": v for k, v in shared.transformer.h[i].state_dict().items()}
    unrolled.load_state_dict(state)
    data = batches()
    d = diagnose.diagnose(shared, data)
    assert d["share"].sum() == pytest.approx(1.0) and all(p.grad is None for p in shared.parameters())
    for x, y in data:
        (unrolled(x, y)[1] / len(data)).backward()
    for i in range(shared.config.n_layer):
        copies = [unrolled.transformer.h[j] for j, k in enumerate(layers) if k == i]
        summed = [sum(ps) for ps in zip(*([p.grad for p in c.parameters()] for c in copies))]
        assert d["grad"][i] == pytest.approx(torch.cat([g.flatten() for g in summed]).norm().item(), rel=1e-4)
        if len(copies) > 1:  # summing matters: no single application's gradient has that norm
            singles = [torch.cat([p.grad.flatten() for p in c.parameters()]).norm().item() for c in copies]
            assert all(abs(s / d["grad"][i] - 1) > 1e-3 for s in singles)


# -----------------------------------------------------------------------------
# plan.py


@pytest.mark.parametrize("signature,family,kw", plan.GALLERY)
def test_plan_draws_every_gallery_signature_and_prints_its_describe(signature, family, kw, tmp_path, capsys):
    r = 3 if "^r" in signature else 1
    shape = dict(n_embd=64, vocab_size=128, block_size=32)
    plan.main([signature, "--n_layer=4", f"--r={r}", f"--out={tmp_path / 'p.png'}",
               *(f"--{k}={v}" for k, v in (kw | shape).items())])
    first = capsys.readouterr().out.splitlines()[0]
    assert first == plan.build(signature, r, 4, **kw, **shape).plan.describe()
    assert png(tmp_path / "p.png")


def test_plan_gallery_writes_one_png(tmp_path, capsys):
    plan.main(["--gallery", f"--out={tmp_path / 'g.png'}", "--n_embd=64", "--vocab_size=128", "--block_size=32"])
    out = capsys.readouterr().out
    assert png(tmp_path / "g.png") and len(out.splitlines()) == len(plan.GALLERY) + 1


def test_plan_slides_are_16_by_9_svgs_and_the_default_output_is_ignored_by_git(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the defaults are relative to where plan.py runs
    plan.main(["A^rB", "--r=2", "--n_layer=4", "--slides"])
    plan.main(["A^rB", "--r=2", "--n_layer=4"])
    plan.main(["--gallery", "--slides"])
    text = (tmp_path / "out" / "plan.svg").read_text()
    assert 'width="960pt" height="540pt"' in text and png(tmp_path / "out" / "plan.png")
    assert len(list((tmp_path / "out" / "plans").glob("*.svg"))) == len(plan.GALLERY)
    ignored = subprocess.run(["git", "check-ignore", "-q", "out/plan.png"], cwd=HERE).returncode == 0
    assert ignored  # out*/ in .gitignore: drawing a plan leaves the checkout clean


def test_plan_titles_count_the_blocks_not_the_vocabulary():
    """The title's parameters and FLOPs are the blocks' own: the same whatever the vocabulary, and the FLOPs grow
    with the applications (A^2B runs 6 of 4 blocks: 1.5x)."""
    small, large = (plan.build("A^rB", 2, 4, vocab_size=v, n_embd=64) for v in (96, 50304))
    assert plan.title_of(small, "x") == plan.title_of(large, "x")
    base = plan.build("AB", 1, 4, n_embd=64)
    fwd = lambda m: m.blocks_flops(m.transformer.h, m.config.block_size, train=False, r=None)
    assert fwd(small) == 1.5 * fwd(base)
    assert plan.block_params(small) == plan.block_params(base) == 4 * (12 * 64 ** 2 + 2 * 64)  # matmuls, 2 norms


def test_plan_letters_follow_partition_and_degree():
    letters = lambda **kw: plan.block_letters(Plan(GPTConfig(**kw)))
    assert letters(n_layer=4, signature="AB^rC", partition="1:2:1") == ["A", "B", "B", "C"]
    assert letters(n_layer=8, signature="A^rB", degree=2) == ["AA", "AA", "AB", "AB", "BA", "BA", "BB", "BB"]
    assert letters(n_layer=3, signature="reverse") == ["A", "B", "C"]
    assert letters(n_layer=4, signature="blockwise") == ["A", "B", "C", "D"]


@pytest.mark.parametrize("args,fragment", [(["AB", "--r=2"], "has no '^r' unit"), (["A^rB", "--r=0"], "need r >= 1"),
                                           (["A^rB", "--n_layer=6", "--degree=2"], "divisible"),
                                           (["A^rB", "--r=two"], "invalid int value"), ([], "give a signature")])
def test_plan_bad_input_is_one_line(args, fragment, tmp_path):
    with pytest.raises(SystemExit) as e:
        plan.main([*args, f"--out={tmp_path / 'x.png'}"])
    assert fragment in str(e.value) and "\n" not in str(e.value) and not os.path.exists(tmp_path / "x.png")


def test_plan_bad_signature_exits_with_one_line(tmp_path):
    proc = cli("plan.py", "A^^B", f"--out={tmp_path / 'x.png'}")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("plan.py: bad signature 'A^^B'") and not os.path.exists(tmp_path / "x.png")


# -----------------------------------------------------------------------------
# diagnose.py on a checkpoint written by train.py


@pytest.mark.parametrize("injection", ["concat", "add"])
def test_state_use_sees_a_model_that_reads_its_state_and_one_that_cannot(injection):
    """With the state half of W zeroed (concat), or with a unit that ignores its input, replacing the carried state
    changes nothing; a fresh model reads it, so every replacement moves the loss."""
    kw = dict(signature="AB^rC", partition="1:2:1", r=3, injection=injection)  # input state: deterministic
    model = tiny_gpt(**kw).eval()
    u = diagnose.state_use(model, batches(), r=3)
    assert all(abs(v - u["losses"]["as trained"]) > 1e-6 for k, v in u["losses"].items() if k != "as trained")
    assert u["state_rms"] > 0 and u["input_rms"] > 0
    assert "before_round" not in vars(model.extras)  # the probe is removed
    if injection == "concat":
        with torch.no_grad():
            model.extras.inject.weight[:, :32] = 0  # W [s, e] with W_s = 0: blind to the state
        u = diagnose.state_use(model, batches(), r=3)
        for name in ("zeros", "noise of the state's std", "another sequence's state"):
            assert u["losses"][name] == pytest.approx(u["losses"]["as trained"], abs=1e-6)
        assert u["state_rms"] == 0


def test_diagnose_a_trained_checkpoint(rins_run, tmp_path):
    shutil.copytree(rins_run, tmp_path, dirs_exist_ok=True)  # diagnose.py writes its figures beside the checkpoint
    val_loss = read_log(tmp_path)[-1]["val_loss"]
    proc = cli("diagnose.py", f"--out_dir={tmp_path}", "--batches=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"loss {val_loss:.4f}" in proc.stdout  # the same two validation batches train.py scored
    md = (tmp_path / "diagnose_r2.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == 6 + 4  # one per application of 0 1 | 0 1 | 2 3, then one per block
    assert png(tmp_path / "diagnose_r2.png")
    diagnose.main([f"--out_dir={tmp_path}", "--batches=1", "--r=3"])  # a depth it was not trained at
    assert png(tmp_path / "diagnose_r3.png")
    with pytest.raises(SystemExit) as e:
        diagnose.main([f"--out_dir={tmp_path}", "--r=0"])
    assert "r=0" in str(e.value) and "\n" not in str(e.value)


def test_diagnose_refuses_image_checkpoints_in_one_line(tmp_path):
    ckpt = {"model": {}, "model_args": {}, "iter_num": 0, "config": {"task": "vit"}}
    save_checkpoint(ckpt, str(tmp_path / "ckpt.pt"))
    with pytest.raises(SystemExit) as e:
        diagnose.main([f"--out_dir={tmp_path}"])
    assert "only language-model checkpoints" in str(e.value) and "\n" not in str(e.value)
