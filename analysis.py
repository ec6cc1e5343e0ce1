"""
The numbers behind compare.py, from run logs alone: runs and their learning-rate recipes, differences between
variants paired by seed, crossing budgets, verdicts, the scaling-law fit and the variant families.
"""
import collections
import glob
import os
import re

import numpy as np
from scipy import optimize, stats

from model import parse_signature
from sweep import fmt_budget, read_log

# -----------------------------------------------------------------------------
# scaling-law fit: f(x) = beta*x^(-c) + eps

MIN_FIT_BUDGETS = 5  # three parameters: with fewer budgets c and eps trade off freely

def _fit(lx, lf):
    """Least-squares (log beta, c, eps) of log f = log(beta*exp(-c*lx) + eps), with lx = log(x/x0)."""
    fmin = np.exp(lf.min())
    resid = lambda p: lf - np.log(np.exp(p[0] - p[1] * lx) + p[2])
    # start: for each eps on a grid, log(f - eps) is linear in lx; keep the best full-model start
    starts = []
    for eps in fmin * np.linspace(0, 0.98, 50):
        slope, icpt = np.polyfit(lx, np.log(np.exp(lf) - eps), 1)
        p = np.array([icpt, np.clip(-slope, 1e-3, 1.99), eps])
        starts.append((np.sum(resid(p) ** 2), tuple(p)))
    # log beta keeps beta > 0; bounds 0 < c < 2, 0 <= eps < min f
    bounds = ([-np.inf, 1e-6, 0.0], [np.inf, 2.0, fmin * (1 - 1e-9)])
    return optimize.least_squares(resid, min(starts)[1], bounds=bounds).x

def fit_power_law(x, f, n_boot=0, seed=0, x0=None):
    """Fit f(x) = beta*(x/x0)^(-c) + eps by least squares on log f.

    Needs >= MIN_FIT_BUDGETS distinct x. x is divided by x0 (default: the geometric mean of x) so beta
    is O(f) whatever the unit; pass one x0 for all variants on an axis to make their betas comparable.
    c and eps do not depend on x0. With n_boot > 0, 95% percentile CIs come from a residual bootstrap:
    log-space residuals, inflated by sqrt(n/(n-3)) for the 3 fitted parameters, are resampled onto the
    fitted curve and refit. Pairs resampling is not used: with ~5 budgets it often drops whole budgets
    and leaves c unidentifiable. With few points percentile CIs under-cover: on synthetic data (6 budgets
    over 32x, 0.3% noise) they held the truth ~80% of the time with one point per budget and ~88% with
    three. Deterministic for a given seed.
    Returns dict(beta, c, eps, x0, rms[, beta_ci, c_ci, eps_ci]) with rms the RMS residual in f's units.
    """
    x, f = np.asarray(x, float), np.asarray(f, float)
    if np.any(x <= 0) or np.any(f <= 0):
        raise ValueError("fit_power_law needs x, f > 0")
    if len(np.unique(x)) < MIN_FIT_BUDGETS:
        raise ValueError(f"{len(np.unique(x))} budgets, a fit of 3 parameters needs >= {MIN_FIT_BUDGETS}")
    x0 = float(np.exp(np.log(x).mean())) if x0 is None else float(x0)
    lx, lf = np.log(x / x0), np.log(f)
    p = _fit(lx, lf)
    model = np.log(np.exp(p[0] - p[1] * lx) + p[2])
    res = dict(beta=float(np.exp(p[0])), c=float(p[1]), eps=float(p[2]), x0=x0,
               rms=float(np.sqrt(np.mean((f - np.exp(model)) ** 2))))
    if n_boot:
        r = (lf - model) * np.sqrt(len(lf) / max(len(lf) - 3, 1))
        rng = np.random.default_rng(seed)
        boots = np.array([_fit(lx, model + rng.choice(r, len(r))) for _ in range(n_boot)])
        boots[:, 0] = np.exp(boots[:, 0])
        lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
        res.update({k + "_ci": (float(a), float(b)) for k, a, b in zip(("beta", "c", "eps"), lo, hi)})
    return res

def power_law(fit, x):
    return fit["beta"] * (np.asarray(x, float) / fit["x0"]) ** -fit["c"] + fit["eps"]

def laws_cross(fit, base, lo, hi):
    """Where the fitted law `fit` crosses `base` on [lo, hi] (a log grid, log-interpolated): a list of
    (x, 'below' or 'above': where `fit` goes at x), in order; empty if one stays on one side."""
    lx = np.linspace(np.log(lo), np.log(hi), 4000)
    d = power_law(fit, np.exp(lx)) - power_law(base, np.exp(lx))
    return [(float(np.exp(lx[j] + (lx[j + 1] - lx[j]) * d[j] / (d[j] - d[j + 1]))), "below" if d[j] > 0 else "above")
            for j in np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]]

# -----------------------------------------------------------------------------
# runs, learning-rate recipes and paired statistics

def load_runs(dirs, labels):
    """One dict per run dir that logged an eval; final is the done line (None while unfinished)."""
    runs = []
    for d in sorted(dirs):
        log = read_log(d)
        if not log["evals"]:
            continue
        start = log["start"] or {}
        cfg = start.get("config", {})
        stem = os.path.basename(os.path.dirname(os.path.abspath(d)))
        runs.append(dict(dir=d, label=labels.get(stem, stem), cfg=cfg, evals=log["evals"], final=log["done"],
                         budget=start.get("flop_budget") or cfg.get("flop_budget") or None, seed=cfg.get("seed"),
                         lr=cfg.get("learning_rate"), n_params=start.get("n_params"),
                         train_tokens=start.get("train_tokens"), floor=start.get("floor"),
                         n_extra=start.get("n_extra_params") or 0, flops_per_token=start.get("flops_per_token")))
    return runs

def has_adapter(cfg):
    return cfg.get("adapter") not in (None, "", "none")

def sampled_rounds(cfg):
    """True when training draws each step's rounds (stochastic RINS, latent recurrence)."""
    return cfg.get("round_sampler", "fixed") != "fixed"

def is_baseline(cfg):
    """r = 1 with a plain signature (no letter repeated, degree 1, no adapter): the unrecursed stack."""
    sig = cfg.get("signature") or "AB"
    return (cfg.get("r", 1) == 1 and sig.isalpha() and len(set(sig)) == len(sig)
            and cfg.get("degree", 1) == 1 and not has_adapter(cfg))

def plan_name(cfg):
    """What a variant runs, as tables and legends name it: 'AB (baseline)', 'A^2B', or 'A^rB, binomial rounds (r=3),
    adapters' when r is drawn. cfg: a config dict (vars(model.config) for a model)."""
    sig, r = cfg.get("signature") or "AB", cfg.get("r", 1)
    name = f"{sig}, {cfg['round_sampler']} rounds (r={r})" if sampled_rounds(cfg) else sig.replace("^r", f"^{r}")
    return name + (", adapters" if has_adapter(cfg) else "") + (" (baseline)" if is_baseline(cfg) else "")

def default_baseline(runs):
    """The first variant, by name, whose config is the plain stack; None if there is none."""
    return next((r["label"] for r in sorted(runs, key=lambda r: r["label"]) if is_baseline(r["cfg"])), None)

def mean_ci(v):
    """Mean and 95% t-interval half-width (nan for one value)."""
    v = np.asarray(v, float)
    h = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return v.mean(), h

def loss_key(done):
    """The split reports use: the held-out test split when every finished run logged it, else val."""
    return "test_loss" if done and all("test_loss" in r["final"] for r in done) else "val_loss"

def by_config(runs):
    """{(label, budget, lr): [runs over seeds]} in that order."""
    g = collections.defaultdict(list)
    for r in runs:
        g[r["label"], r["budget"], r["lr"]].append(r)
    return dict(sorted(g.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2] or 0)))

def best_lrs(done):
    """{(label, budget): (best lr by mean final val_loss, {lr: that mean})}, lrs ascending. The mean is over the
    seeds every lr of the grid ran (paired, as the variants are: seeds differ by more than lrs do in short runs),
    over each lr's own seeds where the grid shares none."""
    grids = collections.defaultdict(dict)
    for (label, budget, lr), rs in by_config(done).items():
        grids[label, budget][lr] = {r["seed"]: r["final"]["val_loss"] for r in rs}
    best = {}
    for k, grid in grids.items():
        shared = set.intersection(*(set(v) for v in grid.values()))
        mean = {lr: float(np.mean([v[s] for s in (shared or v)])) for lr, v in grid.items()}
        best[k] = min(mean, key=mean.get), mean
    return best

def lr_edge(lr, lrs):
    """'' when lr lies inside the grid lrs, else why it does not."""
    lrs = sorted(lrs, key=lambda x: x or 0)
    if len(lrs) == 1:
        return "one lr tried"
    return ("edge: best lr is the largest tried" if lr == lrs[-1] else
            "edge: best lr is the smallest tried" if lr == lrs[0] else "")

def grid_note(best, label, budget):
    """lr_edge of a (variant, budget), except that a single lr which won inside a grid at another budget of the
    same variant counts as tuned: the usual protocol sweeps lrs at one budget and reuses the winner."""
    lr, tried = best[label, budget]
    note = lr_edge(lr, tried)
    if note == "one lr tried" and any(k[0] == label and v[0] == lr and len(v[1]) > 1 and not lr_edge(*v)
                                      for k, v in best.items()):
        return ""
    return note

def recipe(done, baseline, kind):
    """{(label, budget): (lr, [runs])}, lr picked on val. 'shared': every variant at the baseline's best lr at
    that budget (the paper's protocol; a variant without a run at that lr is left out); 'own': each at its own."""
    best, g, sel = best_lrs(done), by_config(done), {}
    for (label, budget), (lr, _) in best.items():
        if kind == "shared":
            if (baseline, budget) not in best:
                continue
            lr = best[baseline, budget][0]
        if (label, budget, lr) in g:
            sel[label, budget] = lr, g[label, budget, lr]
    return sel

def paired_diff(runs, base, key):
    """Variant minus baseline in final[key], paired by seed (same seed: same init and data order).
    Returns dict(n, mean, lo, hi, p, diffs): lo, hi the 95% t-interval of the mean (nan for n < 2),
    p Welch's test between the paired seeds' two sets of losses (a secondary check)."""
    a = {r["seed"]: r["final"][key] for r in runs if key in r["final"]}
    b = {r["seed"]: r["final"][key] for r in base if key in r["final"]}
    seeds = sorted(set(a) & set(b), key=str)
    d = np.array([a[s] - b[s] for s in seeds])
    if not seeds:
        return dict(n=0, mean=np.nan, lo=np.nan, hi=np.nan, p=np.nan, diffs=d)
    mu, h = mean_ci(d)
    p = np.nan
    if len(seeds) > 1 and np.std([a[s] for s in seeds]) + np.std([b[s] for s in seeds]) > 0:
        p = stats.ttest_ind([a[s] for s in seeds], [b[s] for s in seeds], equal_var=False).pvalue
    return dict(n=len(seeds), mean=float(mu), lo=float(mu - h), hi=float(mu + h), p=float(p), diffs=d)

def fmt_diff(d):
    if d["n"] == 0:
        return "no paired seeds"
    if d["n"] == 1:
        return f"{d['mean']:+.4f} (one seed: no interval)"
    return f"{d['mean']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"

def zero_crossings(lx, y):
    """The lx where the piecewise-linear curve y(lx) is 0."""
    xs = [a + (b - a) * y0 / (y0 - y1) for a, b, y0, y1 in zip(lx, lx[1:], y, y[1:]) if y0 * y1 < 0]
    return sorted(xs + [a for a, y0 in zip(lx, y) if y0 == 0])

def crossing(budgets, mean, lo, hi, per=None):
    """Where the paired difference (variant - baseline) crosses 0, linear in log10 FLOPs between adjacent
    budgets; the interval is where the lower and upper 95% curves cross 0, drawn through the budgets that have an
    interval (>= 2 seeds; +-inf: beyond the first or last of those, nan: fewer than two have one).
    Returns dict(at, lo, hi, first, text); at is None when the mean never crosses; first is the first budget
    with an interval. The text gives FLOPs, or FLOPs × per when per is given (tokens per parameter per FLOP)."""
    if per is None:  # budgets as typed; a derived point to 3 digits
        exact, approx, unit = fmt_budget, lambda v: fmt_budget(float(f"{v:.3g}")), " FLOPs"
    else:
        exact = approx = lambda v: f"{v * per:.3g}"
        unit = ""
    lx, mean, lo, hi = np.log10(budgets), np.asarray(mean, float), np.asarray(lo, float), np.asarray(hi, float)
    at, top = zero_crossings(lx, mean), exact(budgets[-1])
    if not at:
        text = f"ahead at every budget up to {top}" if mean[-1] < 0 else f"no crossing up to {top}"
        return dict(at=None, lo=np.nan, hi=np.nan, first=None, text=text)
    x = at[-1]  # the last crossing is the one that holds at larger budgets
    seeded = ~(np.isnan(lo) | np.isnan(hi))  # a budget with one seed has no interval to draw through
    first = float(np.asarray(budgets, float)[seeded][0]) if seeded.sum() > 1 else None
    def end(curve):  # where one 95% curve crosses 0, nearest the mean's crossing
        xs = zero_crossings(lx[seeded], curve)
        if xs:
            return 10 ** min(xs, key=lambda c: abs(c - x))
        # on one side everywhere: it crosses before the first budget if that is the side the mean ends on
        return 0.0 if np.sign(curve[0]) == np.sign(mean[-1]) else np.inf
    ends = [np.nan, np.nan] if first is None else sorted([end(lo[seeded]), end(hi[seeded])])
    way = "gets ahead" if mean[-1] < 0 else "falls behind"
    show = lambda v: ("?" if np.isnan(v) else f"< {exact(first)}" if v == 0 else
                      f"> {top}" if np.isinf(v) else approx(v))
    text = f"{way} at {approx(10 ** x)}{unit} [95%: {show(ends[0])}, {show(ends[1])}]"
    text += f" ({len(at)} crossings, the last shown)" if len(at) > 1 else ""
    return dict(at=10 ** x, lo=ends[0], hi=ends[1], first=first, text=text)

def excess(run, key):
    """Final loss minus the true process's loss on the same windows (a grammar's floor; train.py logs it per split),
    or nan where the data has no known floor."""
    split = key.split("_")[0]
    return run["final"][key] - run["floor"][split] if (run.get("floor") or {}).get(split) is not None else np.nan

def fixed_train_gap(runs):
    """Mean final loss on the fixed training windows minus val loss (train.py's fixed_train_loss; < 0: the model
    does better on text it trained on); nan if a run did not log it."""
    v = [r["final"].get("fixed_train_loss") for r in runs]
    return float(np.mean([t - r["final"]["val_loss"] for t, r in zip(v, runs)])) if v and None not in v else np.nan

def regime(runs):
    """(tokens per parameter, epochs of the training split), means over runs; nan if not logged. Parameters as
    train.py counts them (n_params): all but the position table; the tied token table is counted."""
    per = lambda key: (np.mean([r["final"]["tokens"] / r[key] for r in runs])
                       if runs and all(r[key] for r in runs) else np.nan)
    return per("n_params"), per("train_tokens")

def fmt_regime(reg):
    return ["-" if np.isnan(v) else f"{v:.0f}" if v >= 100 else f"{v:.3g}" for v in reg]

def over_run(run, name):
    """Mean of a per-interval eval field (clip_frac, grad_norm) over the run, weighted by interval; nan if absent."""
    its = sorted(i for i, e in run["evals"].items() if e.get(name) is not None)
    w = np.diff([0] + its)
    return float(np.average([run["evals"][i][name] for i in its], weights=w)) if w.sum() else np.nan

def rises_at_end(run, frac=0.2, noise=0.005):
    """Whether val loss rose by more than noise (relative) above its running minimum over the last frac of the
    run, counted from the eval before that stretch: a run that is overfitting or unstable at its end."""
    its = sorted(i for i, e in run["evals"].items() if "val_loss" in e)
    cut = frac and (1 - frac) * its[-1]
    pts = [i for i in its if i < cut][-1:] + [i for i in its if i >= cut]
    v = np.array([run["evals"][i]["val_loss"] for i in pts])
    return bool(np.any(v[1:] > np.minimum.accumulate(v)[:-1] * (1 + noise)))

def verdict(runs, variant, baseline, kind="shared"):
    """'better', 'worse' or 'inconclusive (why)' for variant vs baseline under a recipe (see recipe()).
    Rules: every run of both is done, and those used are within 1% of their FLOP budget; every best lr lies
    inside its grid (one lr tried is not a grid); no run's val loss rises over its last 20% (0.5% noise
    allowed); >= 3 paired seeds at the key budget (the largest with >= 3, else the largest) and a 95% interval
    that excludes 0; a change of sign across budgets (all of them) holds at >= 2 adjacent ones.
    Returns dict(text, budget, diff, regime) with regime = (tokens per parameter, epochs) at the key budget."""
    done = [r for r in runs if r["final"]]
    key, best, sel = loss_key(done), best_lrs(done), recipe(done, baseline, kind)
    diffs = {b: paired_diff(sel[variant, b][1], sel[baseline, b][1], key)
             for (label, b) in sel if label == variant and (baseline, b) in sel}
    budgets = sorted((b for b in diffs if diffs[b]["n"]), key=lambda b: b or 0)
    n_open = sum(not r["final"] for r in runs if r["label"] in (variant, baseline))
    why = [f"{n_open} run(s) unfinished"] * bool(n_open)
    if not budgets:
        why.append(f"no seed run by both at the {kind} recipe's lr")
        return dict(text=f"inconclusive ({'; '.join(why)})", budget=None, diff=None, regime=(np.nan, np.nan))
    used = [r for r in done if r["label"] in (variant, baseline) and r["budget"] in budgets
            and r["lr"] == sel[r["label"], r["budget"]][0]]
    n_off = sum(bool(r["budget"] and abs(r["final"]["flops"] / r["budget"] - 1) > 0.01) for r in used)
    why += [f"{n_off} run(s) off budget by > 1%"] * bool(n_off)
    for label in (variant, baseline) if kind == "own" else (baseline,):
        edges = collections.defaultdict(list)
        for b in budgets:
            edges[grid_note(best, label, b)].append(fmt_budget(b) if b else "-")
        why += [f"{label}: {e} at {', '.join(bs)}" for e, bs in edges.items() if e]
    n_rising = sum(rises_at_end(r) for r in used)
    why += [f"val loss rises over the last 20% of {n_rising} run(s)"] * bool(n_rising)
    # the largest budget with >= 3 paired seeds (else the largest): a recursive model's token deficit shrinks as
    # training lengthens, if at all; longer runs with fewer seeds still count for the sign rule below
    kb = ([b for b in budgets if diffs[b]["n"] >= 3] or budgets)[-1]
    d, at = diffs[kb], fmt_budget(kb) if kb else "the key budget"
    if d["n"] < 3:
        why.append(f"{d['n']} paired seed(s) at {at}, need >= 3")
    elif d["lo"] <= 0 <= d["hi"]:
        why.append(f"the 95% interval at {at} contains 0")
    signs = [np.sign(diffs[b]["mean"]) for b in budgets]
    later = [b for b, sign in zip(budgets, signs) if (b or 0) > (kb or 0) and sign != np.sign(d["mean"])]
    if later:
        why.append(f"the sign at {', '.join(map(fmt_budget, later))} (fewer seeds) differs from {at}'s")
    elif len(set(signs)) > 1 and signs[-2] != signs[-1]:
        why.append(f"the sign flips at {fmt_budget(budgets[-1]) if budgets[-1] else 'the last budget'} alone; "
                   "a flip must hold at >= 2 adjacent budgets")
    text = f"inconclusive ({'; '.join(why)})" if why else "better" if d["mean"] < 0 else "worse"
    return dict(text=text, budget=kb, diff=d, regime=regime(sel[variant, kb][1]))

# -----------------------------------------------------------------------------
# variant families and the gap to the baseline

def family(cfg):
    """baseline, rins (A^rB), rao ((AB)^r), sharing (blockwise, reverse, AB^r), latent (AB^rC, injection,
    noise state) or other."""
    sig = cfg.get("signature") or "AB"
    if cfg.get("injection", "none") != "none" or cfg.get("state_init", "input") == "noise":
        return "latent"
    if sig in ("blockwise", "reverse"):
        return "sharing"
    if is_baseline(cfg):
        return "baseline"
    try:
        prelude, unit, coda = parse_signature(sig, cfg.get("n_layer", 1))
    except ValueError:
        return "other"
    letters = prelude + unit * cfg.get("r", 1) + coda if cfg.get("degree", 1) == 1 else ""
    patterns = dict(rins="A+B", rao="(AB)+", sharing="AB+", latent="AB+C")
    return next((name for name, p in patterns.items() if re.fullmatch(p, letters)), "other")

def gaps(sel, baseline, key):
    """{variant: [(budget, the baseline's tokens/param there, paired Δ vs the baseline)]} over the budgets with a
    paired seed, ascending. The baseline's tokens/param marks how long the pair trained (a recursive arm sees fewer
    tokens than its baseline at the same FLOPs)."""
    out = collections.defaultdict(list)
    for (label, b), (_, rs) in sorted(sel.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        d = paired_diff(rs, sel[baseline, b][1], key) if label != baseline and b and (baseline, b) in sel else None
        if d and d["n"]:
            out[label].append((b, regime(sel[baseline, b][1])[0], d))
    return dict(out)

def logged_dirs(out):
    return [os.path.dirname(p) for p in glob.glob(os.path.join(out, "**", "log.jsonl"), recursive=True)]
