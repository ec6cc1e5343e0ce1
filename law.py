"""
One scaling law for every run of a corpus, tested on runs it never saw, and a calculator built on it.

    L(N, D, r) = E + A * (N_eff / 1e5)^-alpha + B * (D / 1e7)^-beta,   N_eff = N_once + E[r^phi] * N_unit

N_once: the parameters that run once (prelude and coda blocks, token table and head, final norm, round extras);
N_unit: the recursed unit's blocks, run r times (E[r^phi] over the training rounds when they are drawn); together
train.py's n_params (get_num_params: every parameter but the position table) plus the extras. D: training tokens
seen. phi is fitted per family, everything else is shared: phi = 1 would make a round worth a block of its own,
phi = 0 worth nothing (a published fit for looped models found 0.46 [0.41, 0.53]).

    python law.py results/arena_xs results/arena_s results/arena_m --out results/law     # fit, hold out, report
    python law.py --forecast --params 124e6 --tokens 2.5e9 --signature A^rB --r 2        # the calculator

Runs that enter: finished, at the shared recipe's learning rate (each budget's baseline-best lr), at most
--max_epochs epochs of the training split (3 by default; --repeat instead discounts repeated tokens as Muennighoff et
al. 2023 do, D' = U + U R* (1 - exp(-(D/U - 1) / R*)), R* = 15.4, and lets every run in). The fit minimises a Huber
loss of log-loss residuals from several starts; intervals come from a bootstrap over clusters of runs that share a
(sweep, budget, seed), so paired seeds are resampled together. On data with a known floor (prepare.py grammar*) E is
fixed at the floor. Writes OUT/law.md (the tables), OUT/law.json (the fit, read by --forecast) and OUT/law.png.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from scipy import optimize

from analysis import default_baseline, family, load_runs, logged_dirs, loss_key, recipe, sampled_rounds
from model import GPTConfig, Plan

N0, D0 = 1e5, 1e7  # units of N and D inside the law, so A and B are O(1)
R_STAR = 15.4  # Muennighoff et al. (2023): a repeated token is worth 1 - exp(-repeats / R*) of a new one, summed
PUBLISHED_PHI = (0.46, 0.41, 0.53)  # looped models, iso-depth, up to 2e19 FLOPs (arXiv 2604.21106)
FAMILIES = {"rins": "A^rB (first half looped)", "rao": "(AB)^r (whole stack looped)",
            "stochastic": "A^rB, binomial rounds (stochastic RINS, with or without adapters)",
            "latent": "AB^rC latent recurrence (Poisson rounds, truncated backprop to 2 rounds, injection)"}
NAMES = ["E", "A", "alpha", "B", "beta"]


def law_family(cfg) -> str | None:
    """The phi a run shares: None for the baseline, a FAMILIES key, or 'other' (left out of the fit)."""
    fam = family(cfg)
    if fam == "baseline":
        return None
    if fam == "rins":
        return "stochastic" if sampled_rounds(cfg) else "rins"
    return fam if fam in ("rao", "latent") else "other"


def param_split(cfg, n_params: int, n_extra: int = 0) -> tuple[float, float, dict]:
    """(N_once, N_unit, training rounds {r: p}) of a GPT config with n_params parameters (get_num_params) and
    n_extra round extras: the unit's distinct blocks run every round, everything else once."""
    c = GPTConfig(**{k: cfg[k] for k in GPTConfig.__dataclass_fields__ if k in cfg})
    plan, d = Plan(c), c.n_embd
    n_unit = len(set(plan.unit)) * (12 * d * d + 2 * d + (13 * d if c.bias else 0))  # attn 4d^2, mlp 8d^2, norms
    return n_params + n_extra - n_unit, n_unit, (plan.round_probs if plan.recursive else {1: 1.0})


def unique_tokens(D, U, repeat: bool):
    """Tokens as the law counts them: all of them, or (repeat) Muennighoff's discount past one epoch."""
    D, U = np.asarray(D, float), np.asarray(U, float)
    if not repeat:
        return D
    return np.where(D <= U, D, U + U * R_STAR * (1 - np.exp(-(D / U - 1) / R_STAR)))


# -----------------------------------------------------------------------------
# the points and the fit

def points(dirs, max_epochs=3.0, repeat=False):
    """One dict per run that enters the fit, from the sweep dirs (one per model size, the dir's name its name)."""
    pts, key = [], None
    for d in dirs:
        done = [r for r in load_runs(logged_dirs(d), {}) if r["final"]]
        if not done:
            raise SystemExit(f"law.py: no finished run under {d}")
        base = default_baseline(done)
        key = key or loss_key(done)
        for (label, budget), (_, rs) in recipe(done, base, "shared").items():
            for r in rs:
                fam = law_family(r["cfg"])
                epochs = r["final"]["tokens"] / r["train_tokens"] if r["train_tokens"] else np.nan
                if fam == "other" or key not in r["final"] or not budget or (not repeat and epochs > max_epochs):
                    continue
                n_once, n_unit, rounds = param_split(r["cfg"], r["n_params"], r["n_extra"])
                floor = (r.get("floor") or {}).get(key.split("_")[0])
                pts.append(dict(dir=r["dir"], size=os.path.basename(os.path.normpath(d)), label=label, family=fam,
                                budget=budget, seed=r["seed"], n_params=r["n_params"], n_once=n_once, n_unit=n_unit,
                                rounds=rounds, D=r["final"]["tokens"], U=r["train_tokens"], L=r["final"][key],
                                epochs=epochs, floor=floor, flops_per_token=r["flops_per_token"]))
    if not pts:
        raise SystemExit(f"law.py: no run under {' '.join(dirs)} enters the fit (finished, shared recipe, "
                         f"<= {max_epochs} epochs)")
    return pts


class Law:
    """The fitted constants: theta = (E, A, alpha, B, beta) and phi per family."""

    def __init__(self, theta, phi, repeat=False):
        self.theta, self.phi, self.repeat = np.asarray(theta, float), dict(phi), repeat

    def n_eff(self, n_once, n_unit, rounds, fam):
        phi = self.phi.get(fam, 1.0)
        return n_once + sum(p * r ** phi for r, p in rounds.items()) * n_unit

    def loss(self, n_eff, D):
        E, A, alpha, B, beta = self.theta
        return E + A * (np.asarray(n_eff, float) / N0) ** -alpha + B * (np.asarray(D, float) / D0) ** -beta

    def predict(self, pts):
        n = [self.n_eff(p["n_once"], p["n_unit"], p["rounds"], p["family"]) for p in pts]
        return self.loss(n, unique_tokens([p["D"] for p in pts], [p["U"] for p in pts], self.repeat))

    def to_json(self):
        return dict(zip(NAMES, map(float, self.theta))) | {"phi": self.phi, "repeat": self.repeat}


def fit(pts, repeat=False, E_fixed=None, start=None, restarts=24, seed=0) -> Law:
    """Minimise the Huber loss of log(predicted) - log(measured) over theta and each family's phi, from `start` or
    from `restarts` seeded random starts (the best kept). E_fixed: E is known (a grammar's floor)."""
    fams = sorted({p["family"] for p in pts if p["family"]})
    L = np.array([p["L"] for p in pts])
    D = unique_tokens([p["D"] for p in pts], [p["U"] for p in pts], repeat)
    n_once, n_unit = np.array([p["n_once"] for p in pts]), np.array([p["n_unit"] for p in pts])
    rs = [(np.array(list(p["rounds"]), float), np.array(list(p["rounds"].values()))) for p in pts]
    which = [fams.index(p["family"]) if p["family"] else -1 for p in pts]
    e_hi = L.min() * (1 - 1e-6)

    def unpack(x):
        E = E_fixed if E_fixed is not None else x[0]
        x = x[E_fixed is None:]
        return (E, math.exp(x[0]), x[1], math.exp(x[2]), x[3]), dict(zip(fams, x[4:]))

    def resid(x):
        (E, A, alpha, B, beta), phi = unpack(x)
        rf = np.array([(p * r ** phi[fams[w]]).sum() if w >= 0 else 1.0 for (r, p), w in zip(rs, which)])
        pred = E + A * ((n_once + rf * n_unit) / N0) ** -alpha + B * (D / D0) ** -beta
        return np.log(pred) - np.log(L)

    lo = ([0.0] if E_fixed is None else []) + [-10, 0.01, -10, 0.01] + [0.0] * len(fams)
    hi = ([e_hi] if E_fixed is None else []) + [10, 2.0, 10, 2.0] + [2.0] * len(fams)
    rng = np.random.default_rng(seed)
    if start is not None:
        x0s = [np.concatenate([[start.theta[0]] if E_fixed is None else [], np.log(start.theta[1:2]),
                               start.theta[2:3], np.log(start.theta[3:4]), start.theta[4:5],
                               [start.phi.get(f, 0.5) for f in fams]])]
    else:
        x0s = [np.concatenate([[rng.uniform(0.3, 0.95) * e_hi] if E_fixed is None else [],
                               [rng.normal(-1, 1), rng.uniform(0.1, 1.0), rng.normal(-1, 1), rng.uniform(0.1, 1.0)],
                               rng.uniform(0.1, 1.0, len(fams))]) for _ in range(restarts)]
    best = None
    for x0 in x0s:
        x0 = np.clip(x0, np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        sol = optimize.least_squares(resid, x0, bounds=(lo, hi), loss="huber", f_scale=0.01)
        if best is None or sol.cost < best.cost:
            best = sol
    theta, phi = unpack(best.x)
    law = Law(theta, phi, repeat)
    law.rms = float(np.sqrt(np.mean(resid(best.x) ** 2)))  # of log loss: relative error
    return law


def clusters(pts):
    """Runs that share a (sweep, budget, seed): paired seeds resample together."""
    groups = {}
    for i, p in enumerate(pts):
        groups.setdefault((p["size"], p["budget"], p["seed"]), []).append(i)
    return list(groups.values())


def bootstrap(pts, law, n_boot, seed=0, E_fixed=None):
    """Laws refitted on cluster-resampled runs, each started from `law`."""
    groups, rng, out = clusters(pts), np.random.default_rng(seed), []
    for _ in range(n_boot):
        pick = [i for g in rng.integers(len(groups), size=len(groups)) for i in groups[g]]
        sample = [pts[i] for i in pick]
        if {p["family"] for p in sample} >= {p["family"] for p in pts}:  # every phi still has data
            out.append(fit(sample, law.repeat, E_fixed, start=law))
    return out


def interval(values):
    # a bootstrap law that never crosses gives inf, and percentile would interpolate inf - inf into nan: it ranks
    # stand-ins for inf instead, and an end past every finite value touched an inf, so it is inf (nan stays nan)
    v = np.asarray(values, float)
    ends = np.percentile(np.where(v == np.inf, np.finfo(float).max, v), [2.5, 97.5])
    top = v[np.isfinite(v)].max(initial=-np.inf)
    lo, hi = (math.inf if e > top else float(e) for e in ends)
    return lo, hi


# -----------------------------------------------------------------------------
# predicted against measured

def paired(pts, variant_family="rins", r=2):
    """{(size, budget): [(seed, baseline point, A^rB point)]} for the fixed-depth A^rB at r."""
    out = {}
    for p in pts:
        if p["family"] == variant_family and max(p["rounds"]) == r and len(p["rounds"]) == 1:
            base = [q for q in pts if q["family"] is None and q["size"] == p["size"] and q["budget"] == p["budget"]
                    and q["seed"] == p["seed"]]
            if base:
                out.setdefault((p["size"], p["budget"]), []).append((p["seed"], base[0], p))
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1])))


def seed_noise(pts):
    """The seed-to-seed standard deviation of a paired Δ (A^2B - baseline), pooled over cells with >= 2 seeds."""
    dev, dof = 0.0, 0
    for cell in paired(pts).values():
        if len(cell) > 1:
            d = np.array([v["L"] - b["L"] for _, b, v in cell])
            dev, dof = dev + ((d - d.mean()) ** 2).sum(), dof + len(d) - 1
    return math.sqrt(dev / dof) if dof else float("nan")


def held_out_rows(train, test, law, boots, noise):
    """Per held-out (size, budget) cell: measured and predicted losses and Δ, and whether Δ falls inside the
    prediction's 95% interval (the fit's bootstrap spread and the measured mean's seed noise, added in quadrature)."""
    rows, held = [], []
    for (size, budget), cell in paired(test).items():
        bases, vars_ = [b for _, b, _ in cell], [v for _, _, v in cell]
        meas_b, meas_v = np.mean([b["L"] for b in bases]), np.mean([v["L"] for v in vars_])
        pred_b, pred_v = law.predict(bases).mean(), law.predict(vars_).mean()
        boot_d = [bl.predict(vars_).mean() - bl.predict(bases).mean() for bl in boots]
        se = math.sqrt(np.var(boot_d) + (noise ** 2 / len(cell) if not math.isnan(noise) else 0))
        ok = abs((meas_v - meas_b) - (pred_v - pred_b)) <= 1.96 * se
        held.append(ok)
        tpp = np.mean([b["D"] / b["n_params"] for b in bases])
        rows.append([size, f"{budget:.3g}", f"{tpp:.0f}", str(len(cell)), f"{meas_b:.4f} / {pred_b:.4f}",
                     f"{meas_v:.4f} / {pred_v:.4f}", f"{meas_v - meas_b:+.4f}",
                     f"{pred_v - pred_b:+.4f} [{pred_v - pred_b - 1.96 * se:+.4f}, {pred_v - pred_b + 1.96 * se:+.4f}]",
                     "yes" if ok else "no"])
    return rows, held


def which_term(test, law):
    """When a forecast fails: is it the shared terms (the baseline itself is mispredicted) or the recursion's phi
    (only the recursive arm is)? Mean relative error of each arm on the held-out runs."""
    rel = lambda arm: [(law.predict([p])[0] - p["L"]) / p["L"] for p in test
                       if (p["family"] is None) == (arm == "baseline")]
    return {arm: float(np.mean(rel(arm))) for arm in ("baseline", "recursive")}


# -----------------------------------------------------------------------------
# the calculator

def shape(params, n_layer, vocab):
    """n_embd of a GPT with n_layer blocks and a tied vocab-wide table whose get_num_params is params."""
    a, b, c = 12 * n_layer, 2 * n_layer + vocab + 1, -params
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


def plan_numbers(signature, r, n_layer, d, block_size, vocab):
    """(N_once, N_unit, rounds, FLOPs/token) of a GPT shape under a plan, counted as train.py counts them."""
    cfg = dict(signature=signature, r=r, n_layer=n_layer, n_embd=round(d), block_size=block_size, vocab_size=vocab)
    n_params = n_layer * (12 * d * d + 2 * d) + vocab * d + d
    n_once, n_unit, rounds = param_split(cfg, n_params)
    plan = Plan(GPTConfig(**cfg))
    flops = plan.flops(12 * d * d, d, block_size) + 6 * vocab * d
    return n_once, n_unit, rounds, flops


def crossing(law, fam, n_base, n_eff, ratio):
    """Baseline tokens where the recursive arm at equal FLOPs (ratio x the cost per token, so ratio x fewer tokens)
    catches up: B D^-beta (ratio^beta - 1) = A (N^-alpha - N_eff^-alpha), solved for D; inf if it never does."""
    E, A, alpha, B, beta = law.theta
    gain = A * ((n_base / N0) ** -alpha - (n_eff / N0) ** -alpha)
    if law.repeat:
        return float("nan")
    return float("inf") if gain <= 0 else D0 * (B * (ratio ** beta - 1) / gain) ** (1 / beta)


def forecast(law, boots, params, tokens, signature, r, n_layer=12, block_size=1024, vocab=50304):
    """Lines the calculator prints: both arms' predicted loss at equal FLOPs, Δ and the crossing, with intervals."""
    d = shape(params, n_layer, vocab)
    base = plan_numbers("AB", 1, n_layer, d, block_size, vocab)
    rec = plan_numbers(signature, r, n_layer, d, block_size, vocab)
    fam = law_family(dict(signature=signature, r=r, n_layer=n_layer))
    if fam not in law.phi:
        raise SystemExit(f"law.py: the fit has no phi for {signature} (family {fam}); it has {', '.join(law.phi)}")
    ratio = rec[3] / base[3]
    t_rec = tokens / ratio

    def at(lw):
        nb, nr = base[0] + base[1], lw.n_eff(rec[0], rec[1], rec[2], fam)
        lb, lr = lw.loss(nb, tokens), lw.loss(nr, t_rec)
        return lb, lr, lr - lb, crossing(lw, fam, nb, nr, ratio) / params

    point, spread = at(law), np.array([at(b) for b in boots]) if boots else None
    ci = lambda k: (" [%.4g, %.4g]" % interval(spread[:, k])) if spread is not None else ""
    plan = Plan(GPTConfig(signature=signature, r=r, n_layer=n_layer))
    return [f"shape: {n_layer} layers x {d:.0f} wide, context {block_size}, vocab {vocab} ({params:.4g} params as "
            "get_num_params counts them)",
            f"plan: {plan.describe()}",
            f"FLOPs/token: baseline {base[3]:.4g}, {signature} r={r} {rec[3]:.4g} ({ratio:.3f}x): at equal FLOPs it "
            f"sees {t_rec:.4g} tokens against {tokens:.4g}",
            f"phi ({fam}) = {law.phi[fam]:.3f}: N_eff = {law.n_eff(rec[0], rec[1], rec[2], fam):.4g} "
            f"(N_once {rec[0]:.4g} + {sum(p * k ** law.phi[fam] for k, p in rec[2].items()):.3f} x N_unit "
            f"{rec[1]:.4g})",
            f"predicted loss: baseline {point[0]:.4f}{ci(0)}, {signature} r={r} {point[1]:.4f}{ci(1)}",
            f"predicted Δ ({signature} - baseline) at equal FLOPs: {point[2]:+.4f}{ci(2)}",
            f"predicted crossing: {point[3]:.4g} baseline tokens per parameter{ci(3)} "
            "(the recursive arm is ahead past it)"]


# -----------------------------------------------------------------------------

def fmt(v):
    """A constant or a crossing: 3 significant digits, 0 for the bound phi sits on, '> 1e6' for a crossing the
    law puts out of reach."""
    return "> 1e6" if v > 1e6 else "0" if abs(v) < 1e-6 else f"{v:.3g}"


def md_table(cols, rows):
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + ["| " + " | ".join(r) + " |" for r in rows]


def report(dirs, out, max_epochs, repeat, n_boot, seed):
    pts = points(dirs, max_epochs, repeat)
    floors = [p["floor"] for p in pts]
    E_fixed = float(np.mean(floors)) if all(f is not None for f in floors) else None
    law = fit(pts, repeat, E_fixed, seed=seed)
    boots = bootstrap(pts, law, n_boot, seed, E_fixed)
    sizes = sorted({p["size"] for p in pts}, key=lambda s: min(p["n_params"] for p in pts if p["size"] == s))
    ci = lambda vals: "[%s, %s]" % tuple(map(fmt, interval(vals)))
    lines = [f"# One law for {len(pts)} runs of {', '.join(dirs)}", "",
             "L = E + A·(N_eff/1e5)^-α + B·(D/1e7)^-β, N_eff = N_once + E[r^φ]·N_unit; shared recipe, "
             + (f"repeated tokens discounted (R* = {R_STAR})" if repeat else f"runs of <= {max_epochs:g} epochs")
             + (f"; E fixed at the data's floor {E_fixed:.4f}" if E_fixed is not None else "")
             + f"; {len(boots)} cluster bootstraps (sweep, budget, seed); RMS log residual {law.rms:.4f}.", "",
             "## Constants", ""]
    rows = [[k, f"{v:.4g}", ci([b.theta[i] for b in boots]) if boots else "-"]
            for i, (k, v) in enumerate(zip(NAMES, law.theta)) if not (k == "E" and E_fixed is not None)]
    lines += md_table(["constant", "fit", "95% bootstrap"], rows)
    lines += ["", f"## φ per family (published, looped models: {PUBLISHED_PHI[0]} [{PUBLISHED_PHI[1]}, "
                  f"{PUBLISHED_PHI[2]}])", ""]
    rows = [[FAMILIES[f], str(sum(p["family"] == f for p in pts)), f"{law.phi[f]:.3f}",
             ci([b.phi[f] for b in boots]) if boots else "-"] for f in sorted(law.phi)]
    lines += md_table(["family", "runs", "φ", "95% bootstrap"], rows)
    noise = seed_noise(pts)
    noise_text = "none: no cell has >= 2 paired seeds" if math.isnan(noise) else f"{noise:.4f} per seed, pooled"
    last = {s: max(b for s2, b in paired(pts) if s2 == s) for s, _ in paired(pts)}  # per size: its largest pair
    tests = {"without the largest paired budget of every size": lambda p: p["budget"] == last.get(p["size"])}
    if len(sizes) > 2:
        tests[f"without {sizes[-1]}, the largest size"] = lambda p: p["size"] == sizes[-1]
    verdicts = {}
    for name, out_of in tests.items():
        train, test = [p for p in pts if not out_of(p)], [p for p in pts if out_of(p)]
        assert not {p["dir"] for p in train} & {p["dir"] for p in test}  # the held-out runs never enter the fit
        if not train or not paired(test):
            continue
        law_h = fit(train, repeat, E_fixed, seed=seed)
        boots_h = bootstrap(train, law_h, n_boot, seed, E_fixed)
        rows, held = held_out_rows(train, test, law_h, boots_h, noise)
        err = which_term(test, law_h)
        verdicts[name] = (sum(held), len(held), err)
        lines += ["", f"## Out of sample: fitted {name} ({len(train)} runs), predicting the other {len(test)}", "",
                  f"A^2B against the baseline, mean over paired seeds; Δ's interval: the bootstrap's spread and the "
                  f"seed noise of a paired Δ ({noise_text}) in quadrature. "
                  f"Held: {sum(held)} of {len(held)} cells. Mean relative error of the predicted loss: baseline "
                  f"{100 * err['baseline']:+.2f}%, recursive arms {100 * err['recursive']:+.2f}%.", ""]
        lines += md_table(["size", "budget", "baseline tokens/param", "seeds", "baseline measured / predicted",
                           "A^2B measured / predicted", "Δ measured", "Δ predicted [95%]", "inside"], rows)
    lines += ["", "## Predicted crossing of A^2B (φ of A^rB), baseline tokens per parameter", ""]
    rows = []
    for s in sizes:
        p = next(q for q in pts if q["size"] == s and q["family"] == "rins" and max(q["rounds"]) == 2)
        b = next(q for q in pts if q["size"] == s and q["family"] is None)
        ratio = p["flops_per_token"] / b["flops_per_token"]
        at = lambda lw: crossing(lw, "rins", b["n_once"] + b["n_unit"], lw.n_eff(p["n_once"], p["n_unit"],
                                                                                  p["rounds"], "rins"), ratio)
        rows.append([s, f"{b['n_params']:,}", f"{ratio:.3f}", fmt(at(law) / b["n_params"]),
                     ci([at(bl) / b["n_params"] for bl in boots]) if boots else "-"])
    lines += md_table(["size", "params", "FLOP ratio", "crossing", "95% bootstrap"], rows)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "law.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "law.json"), "w") as f:
        json.dump({"fit": law.to_json(), "E_fixed": E_fixed, "dirs": dirs, "runs": len(pts), "max_epochs": max_epochs,
                   "boots": [b.to_json() for b in boots]}, f, indent=1)
    plot(pts, law, os.path.join(out, "law.png"))
    print("\n".join(lines))
    print(f"wrote {out}/law.md, law.json, law.png")
    return law, boots, verdicts


def plot(pts, law, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5.5), layout="constrained")
    pred, meas = law.predict(pts), np.array([p["L"] for p in pts])
    for fam, marker in zip([None] + sorted(law.phi), "osDv^"):
        sel = [i for i, p in enumerate(pts) if p["family"] == fam]
        ax.plot(pred[sel], meas[sel], marker, ls="none", ms=4, mfc="none",
                label="baseline" if fam is None else FAMILIES[fam].split(" (")[0])
    lo, hi = min(pred.min(), meas.min()), max(pred.max(), meas.max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set(xlabel="predicted loss", ylabel="measured loss", title="one law, every run that entered the fit")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def positive(args, name):
    """args.<name> (a string as typed) as a positive number, or one line saying it is not."""
    raw = getattr(args, name)
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (v > 0 and math.isfinite(v)):
        raise SystemExit(f"law.py: --{name} must be a positive number, got {raw!r}")
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", help="sweep dirs, one per model size (compare.py --out)")
    ap.add_argument("--out", default="results/law", help="where law.md, law.json and law.png go (default results/law)")
    ap.add_argument("--max_epochs", default="3", help="runs past this many epochs stay "
                                                                                      "out (default 3)")
    ap.add_argument("--repeat", action="store_true", help="let every run in, discounting repeated tokens")
    ap.add_argument("--n_boot", type=int, default=100, help="cluster bootstrap resamples (default 100, >= 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the starts and the bootstrap")
    ap.add_argument("--forecast", action="store_true", help="the calculator: predicted losses at --params/--tokens")
    ap.add_argument("--fit", default="results/law/law.json", help="--forecast: the fit to use (law.py writes it)")
    ap.add_argument("--params", help="--forecast: parameters, as get_num_params counts")
    ap.add_argument("--tokens", help="--forecast: the baseline's training tokens")
    ap.add_argument("--signature", default="A^rB", help="--forecast: the recursive plan (default A^rB)")
    ap.add_argument("--r", type=int, default=2, help="--forecast: its rounds (default 2)")
    ap.add_argument("--n_layer", type=int, default=12, help="--forecast: physical blocks (default 12)")
    ap.add_argument("--block_size", type=int, default=1024, help="--forecast: context (default 1024)")
    ap.add_argument("--vocab", type=int, default=50304, help="--forecast: vocabulary (default 50304, GPT-2's)")
    args = ap.parse_args(argv)
    if args.forecast:
        if args.params is None or args.tokens is None:
            raise SystemExit("law.py: --forecast needs --params and --tokens, e.g. --params 124e6 --tokens 2.5e9")
        args.params, args.tokens = positive(args, "params"), positive(args, "tokens")
        if min(args.r, args.n_layer, args.block_size, args.vocab) < 1:
            raise SystemExit("law.py: --r, --n_layer, --block_size and --vocab must be >= 1")
        try:
            Plan(GPTConfig(signature=args.signature, r=args.r, n_layer=args.n_layer))
        except ValueError as e:
            raise SystemExit(f"law.py: {e}")
        if "^r" not in args.signature:
            raise SystemExit(f"law.py: --signature {args.signature} has no '^r' unit to recurse; give e.g. A^rB")
        try:
            with open(args.fit) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            raise SystemExit(f"law.py: cannot read the fit {args.fit} ({e}); make it with: python law.py "
                             "results/arena_xs results/arena_s results/arena_m")
        law_of = lambda j: Law([j[k] for k in NAMES], j["phi"], j["repeat"])
        print(f"law: {args.fit}, fitted on {saved['runs']} runs of {', '.join(saved['dirs'])} (losses in that "
              "data's units; far outside its sizes and tokens the law is extrapolated)")
        print("\n".join(forecast(law_of(saved["fit"]), [law_of(b) for b in saved["boots"]], args.params, args.tokens,
                                 args.signature, args.r, args.n_layer, args.block_size, args.vocab)))
        return
    if not args.dirs:
        raise SystemExit("law.py: give sweep dirs (e.g. results/arena_xs results/arena_s results/arena_m), "
                         "or --forecast")
    if args.n_boot < 1:
        raise SystemExit(f"law.py: --n_boot {args.n_boot}: the intervals need >= 1 resample")
    args.max_epochs = positive(args, "max_epochs")
    for d in args.dirs:
        if not os.path.isdir(d):
            raise SystemExit(f"law.py: {d} is not a directory; give sweep dirs such as results/arena_s")
    report(args.dirs, args.out, args.max_epochs, args.repeat, args.n_boot, args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
