"""
Tests of compare.py and analysis.py: log reading, learning-rate recipes, paired statistics, crossing budgets,
verdicts, scaling fits and plot styles, on synthetic logs whose truth the test knows.

    OMP_NUM_THREADS=1 python -m pytest tests/test_compare.py -q
"""
import math
import os

import numpy as np
import pytest

import analysis
import compare
import matplotlib.pyplot as plt
from conftest import HERE, exec_config, write_log

BASE = dict(signature="AB", r=1)
RINS = dict(signature="A^rB", r=2)


def write_run(root, stem, cfg, budget, seed, final, lr=1e-3, test_offset=0.05, n_params=10_000, train_tokens=None,
              flops_frac=1.0, tail_rise=0.0, done=True):
    """A run with evals at iters 0..100 whose val loss falls linearly to `final` at iter 80, then rises by
    tail_rise (absolute) to the end, with the fixed training windows 0.02 below val; the done line has
    test_loss = final + test_offset. Written where the sweep puts it:
    root/<stem>/b<budget>_lr<lr>_s<seed>. Tokens: budget / 1e6 FLOPs per token."""
    r = cfg.get("r", 1)
    config = dict(cfg, learning_rate=lr, seed=seed, flop_budget=budget, dataset="english", n_layer=4, n_embd=64)
    lines = [dict(event="start", config=config, flop_budget=budget, n_params=n_params, flops_per_token=1e6 * r,
                  tokens_per_iter=100, max_iters=100) | ({"train_tokens": train_tokens} if train_tokens else {})]
    for it in range(0, 101, 10):
        frac = it / 100
        loss = final + (0.8 - frac) / 0.8 if it <= 80 else final + tail_rise * (it - 80) / 20
        e = dict(event="eval", iter=it, tokens=int(budget * frac / 1e6), flops=budget * frac * flops_frac, lr=lr,
                 train_loss=loss, val_loss=loss, fixed_train_loss=loss - 0.02)
        if it:  # per-interval gradient statistics; none before the first step
            e |= dict(clip_frac=0.5 if it < 50 else 0.0, grad_norm=1.0 + it / 100, grad_norm_max=2.0 + it / 100)
        if r > 1:
            e["val_loss_r"] = {"1": loss + 0.5, str(r): loss, str(r + 1): loss + 0.1}
        lines.append(e)
    if done:
        lines[-1].update(event="done", test_loss=lines[-1]["val_loss"] + test_offset)
        lines[-1]["test_loss_r"] = {k: v + test_offset for k, v in lines[-1].get("val_loss_r", {}).items()}
    d = os.path.join(root, stem, f"b{compare.fmt_budget(budget)}_lr{lr:g}_s{seed}")
    write_log(d, lines)
    return d


def load(root):
    dirs = [os.path.join(dp) for dp, _, fs in os.walk(root) if "log.jsonl" in fs]
    return analysis.load_runs(dirs, {})


def test_read_log_dedupes_resumed_evals(tmp_path):
    write_log(tmp_path, [dict(event="start", config={"seed": 0}), dict(event="eval", iter=10, val_loss=5.0),
                         dict(event="start", config={"seed": 0}), dict(event="eval", iter=10, val_loss=4.0),
                         dict(event="done", iter=20, val_loss=3.0)])
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"event": "ev')  # partial line of a killed run
    log = analysis.read_log(tmp_path)
    assert sorted(log["evals"]) == [10, 20] and log["evals"][10]["val_loss"] == 4.0
    assert log["done"]["val_loss"] == 3.0


def test_fit_power_law_recovers_known_law_and_refuses_few_budgets():
    x = 1e9 * 2.0 ** np.arange(6)  # 6 budgets spanning 32x
    rng = np.random.default_rng(0)
    truth = 3 * (x / 1e9) ** -0.3 + 1.5
    f = truth * (1 + 0.003 * rng.standard_normal(len(x)))  # 0.3% noise
    fit = analysis.fit_power_law(x, f, n_boot=200, seed=0, x0=1e9)
    # tolerances ~3 sd of the estimates over noise draws (sd: beta 0.08, c 0.016, eps 0.09)
    assert abs(fit["beta"] - 3) < 0.25 and abs(fit["c"] - 0.3) < 0.05 and abs(fit["eps"] - 1.5) < 0.25, fit
    for k, true in dict(beta=3, c=0.3, eps=1.5).items():
        lo, hi = fit[k + "_ci"]
        assert lo <= true <= hi, (k, lo, hi)
    assert fit["rms"] == pytest.approx(np.sqrt(np.mean((f - analysis.power_law(fit, x)) ** 2)))
    assert fit["rms"] < 0.003 * truth.max()  # in loss units, below the noise put in
    assert analysis.fit_power_law(x, f, n_boot=200, seed=0, x0=1e9) == fit  # deterministic for a seed
    # x0 only rescales beta: default x0 is the geometric mean
    g = analysis.fit_power_law(x, f)
    assert g["x0"] == pytest.approx(1e9 * 2 ** 2.5)
    assert g["c"] == pytest.approx(fit["c"], abs=1e-4) and g["eps"] == pytest.approx(fit["eps"], abs=1e-3)
    np.testing.assert_allclose(analysis.power_law(g, x), analysis.power_law(fit, x), rtol=1e-4)
    with pytest.raises(ValueError, match="4 budgets, a fit of 3 parameters needs >= 5"):
        analysis.fit_power_law(np.repeat(x[:4], 3), np.repeat(f[:4], 3))  # seeds do not add budgets
    with pytest.raises(ValueError, match="x, f > 0"):
        analysis.fit_power_law(x, -f)


def test_shared_and_own_recipes_pick_lrs_and_flag_the_edge(tmp_path):
    # baseline is best at 2e-3 (inside its grid); the variant is best at 1e-3, the smallest it tried
    for lr, base, rins in [(1e-3, 3.10, 3.00), (2e-3, 3.00, 3.05), (4e-3, 3.20, 3.30)]:
        for s in (0, 1):
            write_run(tmp_path, "baseline", BASE, 1e13, s, base + 0.01 * s, lr=lr)
            write_run(tmp_path, "rins", RINS, 1e13, s, rins + 0.01 * s, lr=lr)
    done = load(tmp_path)
    best = analysis.best_lrs(done)
    assert best["baseline", 1e13][0] == 2e-3 and best["rins", 1e13][0] == 1e-3
    assert best["rins", 1e13][1][4e-3] == pytest.approx(3.305)  # mean over seeds
    shared, own = analysis.recipe(done, "baseline", "shared"), analysis.recipe(done, "baseline", "own")
    assert shared["rins", 1e13][0] == 2e-3 and own["rins", 1e13][0] == 1e-3
    assert shared["baseline", 1e13][0] == own["baseline", 1e13][0] == 2e-3
    assert {r["lr"] for r in own["rins", 1e13][1]} == {1e-3} and len(own["rins", 1e13][1]) == 2
    assert analysis.lr_edge(1e-3, best["rins", 1e13][1]) == "edge: best lr is the smallest tried"
    assert analysis.lr_edge(4e-3, best["rins", 1e13][1]) == "edge: best lr is the largest tried"
    assert analysis.lr_edge(2e-3, best["rins", 1e13][1]) == ""
    assert analysis.lr_edge(2e-3, [2e-3]) == "one lr tried"
    # one lr at another budget: tuned when it won inside a grid elsewhere, else not
    write_run(tmp_path, "baseline", BASE, 4e13, 0, 2.9, lr=2e-3)
    write_run(tmp_path, "rins", RINS, 4e13, 0, 2.9, lr=2e-3)
    best = analysis.best_lrs(load(tmp_path))
    assert analysis.grid_note(best, "baseline", 4e13) == "" and analysis.grid_note(best, "rins", 4e13) == "one lr tried"
    assert analysis.grid_note(best, "rins", 1e13) == "edge: best lr is the smallest tried"
    done = [r for r in load(tmp_path) if r["budget"] == 1e13]
    # the variant wins under its own recipe and loses under the baseline's
    key = analysis.loss_key(done)
    assert key == "test_loss"
    assert analysis.paired_diff(own["rins", 1e13][1], own["baseline", 1e13][1], key)["mean"] == pytest.approx(0.0)
    d = analysis.paired_diff(shared["rins", 1e13][1], shared["baseline", 1e13][1], key)
    assert d["mean"] == pytest.approx(0.05)
    # lrs are compared on the seeds they share: two easy extra seeds at 4e-3 do not make it the best
    extra = tmp_path / "extra"
    for lr, final in [(1e-3, 3.0), (2e-3, 3.1), (4e-3, 3.3)]:
        write_run(extra, "rins", RINS, 1e13, 0, final, lr=lr)
    for s in (1, 2):
        write_run(extra, "rins", RINS, 1e13, s, 2.0, lr=4e-3)
    lr, mean = analysis.best_lrs(load(extra))["rins", 1e13]
    assert lr == 1e-3 and mean[4e-3] == pytest.approx(3.3)
    write_run(extra, "rins", RINS, 2e13, 1, 3.0, lr=1e-3)  # no seed shared: each lr's own seeds
    write_run(extra, "rins", RINS, 2e13, 2, 2.9, lr=2e-3)
    assert analysis.best_lrs(load(extra))["rins", 2e13][0] == 2e-3


def test_paired_interval_equals_hand_computation(tmp_path):
    # seed effects are large and shared by both arms; the per-seed differences are small and known
    effect, diff = [0.3, -0.2, 0.1, 0.0], [-0.02, -0.04, -0.01, -0.05]
    for s, (e, d) in enumerate(zip(effect, diff)):
        write_run(tmp_path, "baseline", BASE, 1e13, s, 3.0 + e)
        write_run(tmp_path, "rins", RINS, 1e13, s, 3.0 + e + d)
    write_run(tmp_path, "rins", RINS, 1e13, 9, 2.0)  # a seed without a baseline partner is not paired
    runs = load(tmp_path)
    base, rins = [r for r in runs if r["label"] == "baseline"], [r for r in runs if r["label"] == "rins"]
    d = analysis.paired_diff(rins, base, "test_loss")
    mean = sum(diff) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in diff) / 3)
    half = 3.182446 * sd / 2  # t(0.975, 3 dof) * sd / sqrt(4)
    assert d["n"] == 4 and d["mean"] == pytest.approx(mean)
    assert d["lo"] == pytest.approx(mean - half, rel=1e-5) and d["hi"] == pytest.approx(mean + half, rel=1e-5)
    assert d["hi"] < 0  # paired: the shared seed effects cancel, so the interval is tight
    assert 0.5 < d["p"] <= 1  # unpaired Welch sees the seed effects and no difference
    assert analysis.fmt_diff(d) == f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}]"
    one = analysis.paired_diff(rins[:1], base, "test_loss")
    assert one["n"] == 1 and analysis.fmt_diff(one) == f"{diff[0]:+.4f} (one seed: no interval)"


def test_crossing_budget_interpolates_in_log_flops():
    b = [1e12, 1e13, 1e14]
    mean = np.array([0.02, 0.01, -0.01])  # crosses halfway between 1e13 and 1e14 in log10
    c = analysis.crossing(b, mean, mean - 0.005, mean + 0.005)
    assert c["at"] == pytest.approx(10 ** 13.5)
    assert c["lo"] == pytest.approx(10 ** 13.25) and c["hi"] == pytest.approx(10 ** 13.75)
    assert c["text"].startswith("gets ahead at 3.16e13 FLOPs [95%: 1.78e13, 5.62e13]")
    # the upper curve never reaches 0: the crossing may lie beyond the largest budget
    c = analysis.crossing(b, mean, mean - 0.005, mean + 0.02)
    assert c["hi"] == np.inf and c["text"].endswith("> 1e14]")
    # the lower curve is below 0 everywhere: the crossing may lie before the smallest budget
    c = analysis.crossing(b, mean, mean - 0.03, mean + 0.005)
    assert c["lo"] == 0 and "[95%: < 1e12, " in c["text"]
    assert analysis.crossing(b, [-0.1, -0.05, -0.01], [-1] * 3, [1] * 3)["text"] == "ahead at every budget up to 1e14"
    assert analysis.crossing(b, [0.1, 0.05, 0.01], [-1] * 3, [1] * 3)["text"] == "no crossing up to 1e14"
    assert analysis.crossing(b, [0.1, -0.05, 0.01], [np.nan] * 3, [np.nan] * 3)["text"].startswith(
        "falls behind at ")
    # a one-seed budget has no interval: the curves run through the others, and "<" names the first of those
    lo, hi = mean - 0.03, mean + 0.005
    lo[0] = hi[0] = np.nan
    c = analysis.crossing(b, mean, lo, hi)
    assert c["first"] == 1e13 and c["lo"] == 0 and "[95%: < 1e13, " in c["text"]
    assert c["hi"] == pytest.approx(10 ** 13.75)
    assert "[95%: ?, ?]" in analysis.crossing(b, mean, [np.nan, np.nan, -1], [np.nan, np.nan, 1])["text"]
    # per: the same crossing in another unit proportional to FLOPs (tokens per parameter), no "FLOPs" word
    assert analysis.crossing(b, mean, mean - 0.03, mean + 0.005, per=1e-11)["text"].startswith(
        "gets ahead at 316 [95%: < 10, 562]")
    assert analysis.crossing(b, [0.1, 0.05, 0.01], [-1] * 3, [1] * 3, per=1e-11)["text"] == "no crossing up to 1e+03"


def verdict_sweep(root, seeds, gain=0.05, budgets=(1e13, 2e13), **kw):
    """Baseline and rins over an lr grid whose best is the middle lr; rins is `gain` better at every budget,
    with seed noise far below it. kw goes to the rins runs at the middle lr."""
    for b in budgets:
        for lr, penalty in [(1e-3, 0.1), (2e-3, 0.0), (4e-3, 0.1)]:
            for s in seeds:
                noise = 0.002 * ((s * 7) % 3 - 1)
                write_run(root, "baseline", BASE, b, s, 3.0 + penalty + noise, lr=lr)
                write_run(root, "rins", RINS, b, s, 3.0 + penalty + noise - gain + 0.001 * s, lr=lr,
                          **(kw if lr == 2e-3 else {}))
    return load(root)


def test_verdict_rules(tmp_path):
    runs = verdict_sweep(tmp_path / "good", seeds=range(3), train_tokens=10 ** 6)
    for kind in ("shared", "own"):
        v = analysis.verdict(runs, "rins", "baseline", kind)
        assert v["text"] == "better" and v["budget"] == 2e13, v["text"]
        assert v["regime"] == pytest.approx((2e7 / 1e4, 2e7 / 1e6))  # tokens/param, epochs
    v = analysis.verdict(verdict_sweep(tmp_path / "worse", range(3), gain=-0.05), "rins", "baseline")
    assert v["text"] == "worse"
    v = analysis.verdict(verdict_sweep(tmp_path / "two", range(2)), "rins", "baseline")
    assert v["text"] == "inconclusive (2 paired seed(s) at 2e13, need >= 3)"
    v = analysis.verdict(verdict_sweep(tmp_path / "off", range(3), flops_frac=0.98), "rins", "baseline")
    assert v["text"].startswith("inconclusive (6 run(s) off budget by > 1%")
    v = analysis.verdict(verdict_sweep(tmp_path / "rise", range(3), tail_rise=0.02), "rins", "baseline")
    assert "val loss rises over the last 20% of 6 run(s)" in v["text"]
    v = analysis.verdict(verdict_sweep(tmp_path / "noise", range(3), tail_rise=0.01), "rins", "baseline")
    assert v["text"] == "better"  # a 0.3% wobble is noise
    v = analysis.verdict(verdict_sweep(tmp_path / "open", range(3), done=False), "rins", "baseline")
    assert "6 run(s) unfinished" in v["text"]
    # the variant's best lr at the edge only matters for its own recipe
    runs = verdict_sweep(tmp_path / "edge", range(3))
    for s in range(3):
        write_run(tmp_path / "edge", "rins", RINS, 2e13, s, 2.5, lr=8e-3)
    runs = load(tmp_path / "edge")
    assert analysis.verdict(runs, "rins", "baseline", "shared")["text"] == "better"
    v = analysis.verdict(runs, "rins", "baseline", "own")
    assert "rins: edge: best lr is the largest tried at 2e13" in v["text"]
    # a flip seen at the largest budget alone does not count
    runs = verdict_sweep(tmp_path / "flip", range(3), gain=-0.05, budgets=(1e13,))
    runs += verdict_sweep(tmp_path / "flip2", range(3), gain=0.05, budgets=(2e13,))
    v = analysis.verdict(runs, "rins", "baseline")
    assert v["text"] == "inconclusive (the sign flips at 2e13 alone; a flip must hold at >= 2 adjacent budgets)"
    # the key budget is the largest with >= 3 paired seeds; a longer run with fewer seeds still counts for the sign
    runs = verdict_sweep(tmp_path / "key", range(3), budgets=(1e13,))
    v = analysis.verdict(runs + verdict_sweep(tmp_path / "key1", range(1), budgets=(2e13,)), "rins", "baseline")
    assert v["text"] == "better" and v["budget"] == 1e13
    worse = verdict_sweep(tmp_path / "key2", range(1), gain=-0.05, budgets=(2e13, 4e13))
    v = analysis.verdict(runs + worse, "rins", "baseline")
    assert v["text"] == "inconclusive (the sign at 2e13, 4e13 (fewer seeds) differs from 1e13's)"


def test_colour_families_follow_the_config():
    expected = dict(baseline_small="baseline", rins_small="rins", rins3_small="rins", rins_stoch_small="rins",
                    rins_stoch_adapters_small="rins", rao_small="rao", blockwise_small="sharing",
                    reverse_small="sharing", ab2_small="sharing", latent_small="latent", latent_lite_small="latent",
                    degree2_small="other")
    cfgs = {name: exec_config(os.path.join(HERE, "config", name + ".py")) for name in expected}
    assert {name: analysis.family(cfg) for name, cfg in cfgs.items()} == expected
    assert analysis.family(dict(signature="AB^rC", r=2)) == "latent"  # no injection: still the latent layout
    assert analysis.family(dict(signature="(AB)^r", r=3)) == "rao" and analysis.family(dict(signature="AAAB")) == "rins"
    style = compare.styles([dict(label=name, cfg=cfg) for name, cfg in cfgs.items()])
    lum = lambda label: sum(style[label]["color"][:3])
    assert style["baseline_small"]["color"][:3] == (0, 0, 0)
    blue, red, green, purple = (lambda c: c[2] > c[0] and c[2] > c[1], lambda c: c[0] > c[1] and c[0] > c[2],
                                lambda c: c[1] > c[0] and c[1] > c[2], lambda c: c[0] > c[1] and c[2] > c[1])
    for label, want in dict(rins_small=blue, rins3_small=blue, rins_stoch_small=blue, rao_small=red,
                            blockwise_small=green, ab2_small=green, latent_small=purple).items():
        assert want(style[label]["color"]), (label, style[label]["color"])
    assert lum("rins3_small") < lum("rins_small")  # darker for larger r
    assert style["rins_stoch_small"]["hollow"] and not style["rins3_small"]["hollow"]
    assert style["rins_stoch_adapters_small"]["marker"] == "^" and style["rins3_small"]["marker"] == "o"
    assert len({style[v]["color"] for v in style}) == len(style)  # every variant its own shade


def test_no_run_regenerates_everything_from_logs(tmp_path, capsys):
    """A committed sweep (logs only, no checkpoints): 5 budgets, 3 lrs, 3 seeds, with test loss."""
    budgets = [1e12, 2e12, 4e12, 8e12, 1.6e13]
    true = dict(baseline=(2.0, 0.3, 3.0), rins=(2.2, 0.35, 2.8))
    cfgs = dict(baseline=BASE, rins=RINS)
    for v, (beta, c, eps) in true.items():
        for b in budgets:
            for lr, penalty in [(1e-3, 0.05), (2e-3, 0.0), (4e-3, 0.08)]:
                for s in range(3):
                    write_run(tmp_path / "sweep", v, cfgs[v], b, s, beta * (b / 1e12) ** -c + eps + penalty
                              + 0.002 * (s - 1), lr=lr, train_tokens=10 ** 6)
    compare.main(["--out", str(tmp_path / "sweep"), "--no-run", "--n_boot", "20", "--label", "rins=RINS A2B"])
    out = tmp_path / "sweep"
    for name in ("loss_vs_flops", "loss_vs_tokens", "final_loss", "delta_vs_budget", "loss_vs_eval_r",
                 "scaling_fit_flops", "scaling_fit_tokens"):
        p = out / f"{name}.png"
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000, name
    md = (out / "results.md").read_text()
    assert md in capsys.readouterr().out  # tables printed too
    assert "losses compared on the test split" in md and "## Learning rate" in md
    sections = md.split("\n## ")
    titles = [sec.splitlines()[0] for sec in sections[1:]]
    assert titles[0] == "Verdicts" and titles[1].startswith("Crossing") and titles[-1].startswith("Runs")
    diff_rows = {s.split(",")[1].split(":")[0].strip():
                 [line for line in s.splitlines() if line.startswith("| RINS A2B |")]
                 for s in sections if s.startswith("Δ test loss")}
    assert set(diff_rows) == {"shared recipe", "own recipe"}
    for b, row in zip(budgets, diff_rows["shared recipe"]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        want = true["rins"][0] * (b / 1e12) ** -0.35 + 2.8 - (2.0 * (b / 1e12) ** -0.3 + 3.0)
        assert cells[1] == compare.fmt_budget(b) and cells[2] == "0.002" and cells[3] == "3"
        assert cells[4].startswith(f"{want:+.4f} [")  # every seed differs by the same amount: a zero-width interval
        assert cells[6] == f"{b / 1e6 / 1e4:.0f}" and cells[7] == f"{b / 1e6 / 1e6:.3g}"  # tokens/param, epochs
        assert cells[8] == "-0.020"  # the fixed training windows minus val
    runs = sections[-1].splitlines()
    row = next(line for line in runs if line.startswith("| RINS A2B | 1.6e13 | 0.002 | 3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    want = true["rins"][0] * 16 ** -0.35 + 2.8 + 0.05  # the test split: val + 0.05 in write_run
    half = 4.302653 * 0.002 / math.sqrt(3)  # t(0.975, 2 dof) * sd / sqrt(3) of seeds at -0.002, 0, +0.002
    assert cells[5] == f"{want:.4f} ± {half:.4f}" and cells[8] == "1600" and cells[9] == "16"  # tokens/param, epochs
    assert cells[10] == "-0.020" and cells[11] == "20%" and cells[12] == "1.55, 3"  # gap; clipped; grad norm
    assert cells[13] == f"{want + 0.5:.4f}" and cells[14] == f"{want:.4f}"  # test loss at r=1 and the trained r=2
    crossing = next(line for line in md.splitlines() if line.startswith("| RINS A2B | shared | gets ahead at "))
    x_star = next(x for x, _ in analysis.laws_cross(  # the true laws cross once, near the first budget
        dict(beta=2.2, c=0.35, eps=2.8, x0=1e12), dict(beta=2.0, c=0.3, eps=3.0, x0=1e12), 1e11, 1e15))
    got = float(crossing.split("|")[4].strip().split(" at ")[1])
    assert crossing.split("|")[4].strip().startswith("below at ") and abs(math.log(got / x_star)) < 0.3
    assert "| RINS A2B | shared | better (resting on runs past 3 epochs" in md  # 16 epochs at the key budget
    fits = next(sec for sec in sections if sec.startswith("Scaling fits"))
    fit_rows = [line for line in fits.splitlines() if line.startswith("| RINS A2B |")]
    assert len(fit_rows) == 2 and all(float(line.strip("|").split("|")[-1]) < 0.01 for line in fit_rows)  # rms in loss


def test_best_r_per_budget_moves_up_with_the_budget(tmp_path):
    """r = 1 (the baseline) best at the small budget, A^2B at the middle one, A^3B at the large one; the stochastic
    variant is not a depth of A^rB and is left out."""
    losses = {"base": (2.0, 1.8, 1.7), "rins": (2.1, 1.7, 1.65), "rins3": (2.2, 1.75, 1.6), "stoch": (1.0, 1.0, 1.0)}
    cfgs = dict(base=BASE, rins=RINS, rins3=dict(signature="A^rB", r=3),
                stoch=dict(signature="A^rB", r=3, round_sampler="binomial"))
    for v, ls in losses.items():
        for b, loss in zip((1e12, 2e12, 4e12), ls):
            for seed in (0, 1):
                write_run(tmp_path, v, cfgs[v], b, seed, loss + 0.01 * seed)
    rows = compare.best_r_rows(analysis.recipe(load(tmp_path), "base", "shared"), "base", "test_loss", "shared")
    assert [(row[0], row[2]) for row in rows] == [("1e12", "r = 1 (base)"), ("2e12", "r = 2 (rins)"),
                                                  ("4e12", "r = 3 (rins3)")]
    assert rows[0][3] == "r=1: 2.0550, r=2: 2.1550, r=3: 2.2550" and rows[0][4] == "2"  # seeds 0, 1; test = val + 0.05


def test_too_few_budgets_refuse_the_fit_in_results(tmp_path):
    for v, cfg in dict(baseline=BASE, rins=RINS).items():
        for b in (1e12, 2e12, 4e12):
            for s in (0, 1):
                write_run(tmp_path / "sweep", v, cfg, b, s, 3.0 + (b / 1e12) ** -0.3 + 0.01 * s)
    compare.main(["--out", str(tmp_path / "sweep"), "--no-run", "--n_boot", "1"])
    md = (tmp_path / "sweep" / "results.md").read_text()
    assert "- rins: no fit: 3 budget(s), a fit of 3 parameters needs >= 5" in md
    assert "| rins | flops |" not in md
    assert "One lr per variant and budget" in md
    assert "inconclusive (baseline: one lr tried at 1e12, 2e12, 4e12; 2 paired seed(s) at 4e12, need >= 3)" in md
    with pytest.raises(SystemExit, match="--baseline nope is not a variant here"):
        compare.main(["--out", str(tmp_path / "sweep"), "--no-run", "--baseline", "nope"])


def test_sizes_compare_the_gap_at_equal_flops_and_equal_tokens_per_param(tmp_path):
    # S (10k params) trails its baseline by 0.1 at every budget, M (40k params) by 0.02; M's budgets are 2x S's,
    # so its baseline tokens/param (0.05, 0.1, 0.2) overlaps S's (0.1, 0.2, 0.4) at 0.1 and 0.2.
    for sweep, n_params, budgets, gap in (("s", 10_000, (1e9, 2e9, 4e9), -0.1), ("m", 40_000, (2e9, 4e9, 8e9), -0.02)):
        for b in budgets:
            for seed in (0, 1):
                write_run(tmp_path / sweep, "base", BASE, b, seed, 2.0 + 0.01 * seed, n_params=n_params)
                write_run(tmp_path / sweep, "rins", RINS, b, seed, 2.0 + 0.01 * seed + gap, n_params=n_params)
    compare.main(["--sizes", str(tmp_path / "m"), str(tmp_path / "s"), "--plots_dir", str(tmp_path / "out")])
    md = (tmp_path / "out" / "sizes.md").read_text()
    assert (tmp_path / "out" / "sizes.png").stat().st_size > 0
    equal_flops, equal_tokens = md.split("## At equal FLOPs")[1].split("## At equal tokens per parameter")
    assert [line.split(" | ")[1] for line in equal_flops.splitlines() if line.startswith("| rins")] == ["2e9", "4e9"]
    assert equal_flops.count("s vs m") == 2 and equal_flops.count("-0.0800 |") == 2  # smaller model listed first
    rows = [line for line in equal_tokens.splitlines() if line.startswith("| rins")]
    assert [row.split(" | ")[1] for row in rows] == ["0.1", "0.2"] and all("-0.0800 |" in row for row in rows)


def test_sizes_locate_each_size_crossing_in_tokens_per_param_and_draw_slides(tmp_path):
    """S falls from +0.1 behind to 0.1 ahead across 1e9 -> 4e9 (Δ = 0 at 2e9, tokens/param 0.2); M stays behind.
    --slides writes 16:9 SVG panels."""
    for sweep, n_params, gaps in (("s", 10_000, (0.1, 0.0, -0.1)), ("m", 40_000, (0.1, 0.1, 0.1))):
        for b, gap in zip((1e9, 2e9, 4e9), gaps):
            for seed in (0, 1, 2):
                write_run(tmp_path / sweep, "base", BASE, b, seed, 2.0 + 0.01 * seed, n_params=n_params)
                write_run(tmp_path / sweep, "rins", RINS, b, seed, 2.0 + 0.01 * seed + gap, n_params=n_params)
    out = str(tmp_path / "out")
    compare.main(["--sizes", str(tmp_path / "m"), str(tmp_path / "s"), "--plots_dir", out, "--slides"])
    md = (tmp_path / "out" / "sizes.md").read_text()
    rows = {line.split(" | ")[1].split()[0]: line.split(" | ")[2] for line in md.split("crosses 0")[1].splitlines()
            if line.startswith("| rins")}
    assert rows["s"].startswith("gets ahead at 0.2 [95%:") and rows["m"] == "no crossing up to 0.1"
    for name in ("sizes_flops", "sizes_tokens"):
        text = (tmp_path / "out" / "slides" / f"{name}.svg").read_text()
        assert text.startswith("<?xml") and 'width="960pt" height="540pt"' in text  # 13.33 x 7.5 in: 16:9


def test_a_far_point_does_not_squash_the_delta_plot():
    fig, ax = plt.subplots()
    far = compare.zoom(ax, [0.05, 0.04, 0.7, 0.03, -0.01])
    assert far.tolist() == [False, False, True, False, False]
    lo, hi = ax.get_ylim()
    assert lo < -0.01 and 0.05 < hi < 0.2  # the near points fill the panel; 0.7 is drawn at its edge
    assert not compare.zoom(ax, [0.05, 0.04, 0.06]).any()
    plt.close(fig)


def test_sizes_need_two_sweeps_with_a_baseline(tmp_path):
    write_run(tmp_path / "s", "rins", RINS, 1e9, 0, 2.0)
    with pytest.raises(SystemExit, match="needs >= 2 sweep directories"):
        compare.main(["--sizes", str(tmp_path / "s"), "--plots_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="distinct folder names"):
        compare.main(["--sizes", str(tmp_path / "s"), str(tmp_path / "s"), "--plots_dir", str(tmp_path / "out")])
    write_run(tmp_path / "m", "rins", RINS, 1e9, 0, 2.0)
    with pytest.raises(SystemExit, match="no finished baseline run under"):
        compare.main(["--sizes", str(tmp_path / "s"), str(tmp_path / "m"), "--plots_dir", str(tmp_path / "out")])


def test_inference_depth_rows_pair_every_eval_r_with_the_baseline(tmp_path):
    """The no-regret table: a variant's loss at each logged inference depth minus the same-seed baseline's (the
    fixture logs r = 1 at +0.5 and r + 1 at +0.1 over the trained depth); the baseline itself gets no row."""
    for seed in (0, 1):
        write_run(tmp_path, "base", BASE, 1e12, seed, 1.8 + 0.01 * seed)
        write_run(tmp_path, "rins", RINS, 1e12, seed, 1.7 + 0.02 * seed)
    rows = compare.depth_rows(analysis.recipe(load(tmp_path), "base", "shared"), "base", "test_loss", "shared")
    assert [row[:4] for row in rows] == [["rins", "1e12", "shared", "2"]]
    cells = dict(c.split(": ", 1) for c in rows[0][4].split("; "))
    assert list(cells) == ["r=1", "r=2", "r=3"]
    assert cells["r=1"].startswith("+0.4050 [") and cells["r=2"].startswith("-0.0950 [")
    compare.main(["--out", str(tmp_path), "--no-run", "--n_boot", "1"])
    assert "## Inference depth against the baseline" in (tmp_path / "results.md").read_text()
