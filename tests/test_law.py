"""
law.py: the joint scaling law recovers known constants, its out-of-sample checks never see what they predict, and
the calculator refuses bad input with one line. compare.py's list options are checked here too.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_law.py -v
"""
import json
import math

import numpy as np
import pytest

import law
from conftest import cli, write_log

TRUE = dict(theta=(1.2, 0.3, 0.5, 0.25, 0.7), phi={"rins": 0.45, "rao": 0.25})
VARIANTS = {"arena_baseline": ("AB", 1), "arena_rins": ("A^rB", 2), "arena_rins3": ("A^rB", 3),
            "arena_rao": ("(AB)^r", 2)}
WIDTHS = {"xs": 32, "s": 64, "m": 128}


def synthetic_sweeps(root, noise=0.002, seeds=(0, 1)):
    """A sweep dir per width whose final test losses follow TRUE's law (times lognormal noise), logged as
    train.py logs them."""
    truth, rng = law.Law(**TRUE), np.random.default_rng(0)
    for size, d in WIDTHS.items():
        for stem, (sig, r) in VARIANTS.items():
            n_once, n_unit, rounds, fpt = law.plan_numbers(sig, r, 4, d, 128, 96)
            for budget in (1e12, 4e12, 1.6e13, 6.4e13, 2.56e14):
                for seed in seeds:
                    D = budget / fpt
                    fam = law.law_family(dict(signature=sig, r=r, n_layer=4))
                    loss = float(truth.loss(truth.n_eff(n_once, n_unit, rounds, fam), D) * rng.lognormal(0, noise))
                    cfg = dict(signature=sig, r=r, n_layer=4, n_head=4, n_embd=d, block_size=128, vocab_size=96,
                               learning_rate=8e-3, seed=seed, flop_budget=budget)
                    write_log(root / size / stem / f"b{budget:g}_s{seed}", [
                        {"event": "start", "config": cfg, "n_params": int(n_once + n_unit), "n_extra_params": 0,
                         "flops_per_token": fpt, "max_iters": 10, "flop_budget": budget, "train_tokens": 1e12},
                        {"event": "done", "iter": 10, "tokens": D, "flops": budget, "val_loss": loss,
                         "test_loss": loss}])
    return [str(root / s) for s in WIDTHS]


def test_the_fit_recovers_known_constants(tmp_path):
    pts = law.points(synthetic_sweeps(tmp_path))
    fitted = law.fit(pts, seed=0)
    for name, got, want in zip(law.NAMES, fitted.theta, TRUE["theta"]):
        assert got == pytest.approx(want, rel=0.15), name
    for fam, want in TRUE["phi"].items():
        assert fitted.phi[fam] == pytest.approx(want, abs=0.06), fam
    assert fitted.rms < 0.004


def test_param_split_matches_the_model():
    """N_once + N_unit is train.py's n_params (get_num_params), and the unit is A's half for A^rB, all of RAO."""
    from model import GPT, GPTConfig
    cfg = dict(signature="A^rB", r=2, n_layer=4, n_embd=32, n_head=4, block_size=128, vocab_size=96)
    n = GPT(GPTConfig(**cfg)).get_num_params()
    n_once, n_unit, rounds = law.param_split(cfg, n)
    assert n_once + n_unit == n and n_unit == 2 * (12 * 32 * 32 + 2 * 32) and rounds == {2: 1.0}
    assert law.param_split(cfg | {"signature": "(AB)^r"}, n)[1] == 4 * (12 * 32 * 32 + 2 * 32)
    assert law.param_split(cfg | {"signature": "AB", "r": 1}, n)[2] == {1: 1.0}
    assert law.shape(n, 4, 96) == pytest.approx(32)


def test_held_out_runs_never_enter_their_fit(tmp_path, monkeypatch):
    """Every fit the out-of-sample checks make is given no run from the cells it then predicts."""
    dirs = synthetic_sweeps(tmp_path / "runs")
    seen, real_fit = [], law.fit
    monkeypatch.setattr(law, "fit", lambda pts, *a, **k: seen.append({p["dir"] for p in pts}) or real_fit(pts, *a, **k))
    law.report(dirs, str(tmp_path / "out"), 3.0, False, 2, 0)
    text = (tmp_path / "out" / "law.md").read_text()
    largest = {d for d in seen[0] if "b2.56e+14" in d}
    m_runs = {d for d in seen[0] if "/m/" in d}
    assert largest and m_runs
    assert any(not (s & largest) and s for s in seen) and any(not (s & m_runs) and s for s in seen)
    assert "without the largest paired budget of every size" in text and "without m, the largest size" in text
    assert "Held: " in text and json.loads((tmp_path / "out" / "law.json").read_text())["runs"] == len(seen[0])


@pytest.mark.parametrize("args, message", [
    (["--params", "-1", "--tokens", "1e9"], "--params must be a positive number, got '-1'"),
    (["--params", "1e8", "--tokens", "0"], "--tokens must be a positive number, got '0'"),
    (["--params", "1e8", "--tokens", "1e9", "--signature", "AB", "--r", "2"], "signature 'AB' has no '^r' unit"),
    (["--params", "1e8"], "--forecast needs --params and --tokens"),
])
def test_calculator_bad_input_is_one_line(args, message):
    proc = cli("law.py", "--forecast", *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2  # argparse: usage + line


def test_calculator_prints_both_arms_and_the_crossing(tmp_path):
    dirs = synthetic_sweeps(tmp_path / "runs")
    law.report(dirs, str(tmp_path / "out"), 3.0, False, 5, 0)
    proc = cli("law.py", "--forecast", "--fit", tmp_path / "out" / "law.json", "--params", "124e6", "--tokens", "2.5e9",
               "--signature", "A^rB", "--r", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "predicted loss: baseline" in out and "predicted Δ (A^rB - baseline)" in out and "crossing" in out
    # the crossing in closed form agrees with where the predicted Δ changes sign
    fitted = law.Law([json.loads((tmp_path / "out" / "law.json").read_text())["fit"][k] for k in law.NAMES],
                     TRUE["phi"])
    base, rec = law.plan_numbers("AB", 1, 12, 768, 1024, 50304), law.plan_numbers("A^rB", 2, 12, 768, 1024, 50304)
    ratio, nb = rec[3] / base[3], base[0] + base[1]
    ne = fitted.n_eff(rec[0], rec[1], rec[2], "rins")
    x = law.crossing(fitted, "rins", nb, ne, ratio)
    if math.isfinite(x):
        delta = lambda D: fitted.loss(ne, D / ratio) - fitted.loss(nb, D)
        assert delta(0.9 * x) > 0 > delta(1.1 * x)


@pytest.mark.parametrize("args, message", [
    (["--seeds", "-1"], "bad --seeds '-1'; expected a comma-separated list of whole numbers >= 0"),
    (["--lrs", "-1"], "bad --lrs '-1'; expected a comma-separated list of positive learning rates"),
    (["--n_boot", "0"], "bad --n_boot 0; the fits' intervals need >= 1"),
    (["--n_boot", "-5"], "bad --n_boot -5"),
])
def test_compare_list_options_are_one_line_before_anything_runs(tmp_path, args, message):
    proc = cli("compare.py", "config/arena_baseline.py", "--budgets", "1e12", "--out", tmp_path / "sweep", *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "sweep").exists()


def test_interval_of_crossings_that_never_happen_is_not_nan():
    # bootstrap laws that never cross report inf; the interval's top must say "> 1e6", not nan
    lo, hi = law.interval([100.0, 200.0, math.inf, math.inf])
    assert lo == pytest.approx(107.5) and hi == math.inf
    assert law.fmt(hi) == "> 1e6" and math.isnan(law.interval([1.0, math.nan])[1])
    assert law.interval([1.0, 2.0, 3.0]) == tuple(np.percentile([1.0, 2.0, 3.0], [2.5, 97.5]))
