"""
Sweep and compare nanoRINS runs at matched training FLOPs.

1) Sweep (sweep.py). For every CONFIG x budget [x --lrs learning rate] x seed, run
     python train.py CONFIG --flop_budget=B --seed=S --out_dir=OUT/<config stem>/b<B>[_lr<LR>]_s<S> [--key=value ...]
   --jobs N at once on this machine, or as SLURM jobs with --launcher slurm. Finished runs are skipped,
   unfinished ones resume from their checkpoint; each run's output goes to RUN_DIR/train.out.

2) Analysis. Reads every log.jsonl under OUT (or the --runs dirs) and writes to --plots_dir (default OUT):
     loss_vs_flops.png, loss_vs_tokens.png   val metric vs cumulative training FLOPs / tokens,
                                             mean over seeds with a min-max band
     final_loss.png          sorted dot plot of the final loss minus the baseline's, paired by seed
                             (mean, 95% t-interval, single seeds), a panel per budget, a row per lr recipe
     delta_vs_budget.png     the same paired differences (shared recipe) against FLOPs and against the
                             baseline's tokens/param, a line per variant: where a variant crosses the baseline
     loss_vs_eval_r.png      final val metric vs inference depth r (eval_r), baseline as a line: the no-regret picture
     scaling_fit_flops.png, scaling_fit_tokens.png
                             f(x) = beta*(x/x0)^-c + eps per variant (needs >= 5 budgets, else the reason),
                             curves extrapolated to 10x the largest x
     results.md              the tables, also printed: runs; lr per variant and budget; Δ vs baseline per
                             recipe; crossing budgets; verdicts; fits
   --sizes DIR DIR...: one sweep dir per model size instead; sizes.md gives each recursive variant's paired
   gap to its baseline per size at equal FLOPs and at equal tokens per parameter, sizes.png draws the variants
   every size ran.
   A variant is the config file stem (the run dir's parent folder), renamed by --label stem=name; a run
   is keyed by (variant, budget, lr, seed), with lr the config's learning_rate. Only finished runs
   enter the final tables and fits. The lr of each (variant, budget) is chosen by mean final val loss
   over the seeds all its lrs ran; losses are then compared on the held-out test split (val when a run
   did not log one), under two recipes: shared (every variant at the baseline's best lr, the paper's
   protocol) and own (each variant at its best lr). Differences vs baseline pair runs by seed (same init
   and data order). Every row states its regime: tokens per parameter (all but the position table) and
   epochs of the training split.
   Colours: baseline black, RINS A^rB blues, RAO (AB)^r reds, MobileLLM-style sharing greens, latent
   recurrence purples, others oranges, darker for larger r; stochastic rounds hollow and dashed,
   adapters triangles. `--no-run` redoes all of it from the logs alone (no checkpoints needed).

Examples:
  python compare.py config/baseline_small.py config/rins_small.py --budgets 2e13,4e13,8e13 --seeds 0,1,2 --out runs/demo
  python compare.py config/rins_small.py --budgets 2e13 --lrs 1e-3,2e-3,4e-3 --seeds 0,1 --jobs 2 --out runs/lr
  python compare.py --out runs/demo --no-run          # analyse what is there
  python compare.py --sizes results/arena_s results/arena_m --plots_dir results/sizes
  python compare.py --runs runs/a/rins_small/b2e13_s0 runs/b/baseline_small/b2e13_s0 --plots_dir plots
"""
import argparse
import collections
import os
import sys

import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import ticker

from analysis import (MIN_FIT_BUDGETS, best_lrs, by_config, crossing, default_baseline, excess, family, fit_power_law,
                      fixed_train_gap, fmt_diff, fmt_regime, gaps, grid_note, has_adapter, laws_cross, load_runs,
                      logged_dirs, loss_key, mean_ci, over_run, paired_diff, plan_name, power_law, recipe, regime,
                      sampled_rounds, verdict)
from sweep import fmt_budget, sweep

# logged final metrics, in display order; *_acc are higher-is-better, and each may have a per-eval_r dict '<name>_r'
METRICS = {"val_loss": "val loss", "val_acc": "val accuracy", "zeroshot_acc": "0-shot accuracy"}

# -----------------------------------------------------------------------------
# plots: one colour family per variant family, the same style for a variant in every figure

FAMILY_CMAP = dict(baseline="Greys", rins="Blues", rao="Reds", sharing="Greens", latent="Purples", other="Oranges")

def styles(runs):
    """{label: dict(color, marker, hollow, ls, plan)}. Colour: the family's colour map (baseline black), darker for
    larger r; stochastic rounds: hollow markers, dashed lines; adapters: triangles."""
    cfgs = {}
    for r in runs:
        cfgs.setdefault(r["label"], r["cfg"])
    fams = collections.defaultdict(list)
    for label, cfg in cfgs.items():
        fams[family(cfg)].append(label)
    out = {}
    for fam, labels in fams.items():
        labels.sort(key=lambda v: (cfgs[v].get("r", 1), sampled_rounds(cfgs[v]), has_adapter(cfgs[v]), v))
        shades = [0.75] if len(labels) == 1 else np.linspace(0.45, 0.95, len(labels))
        if fam == "baseline":  # the first baseline black, any others grey
            shades = np.linspace(1.0, 0.5, len(labels))
        for label, shade in zip(labels, shades):
            c = cfgs[label]
            out[label] = dict(color=plt.get_cmap(FAMILY_CMAP[fam])(shade), marker="^" if has_adapter(c) else "o",
                              hollow=sampled_rounds(c), ls="--" if sampled_rounds(c) else "-", plan=plan_name(c))
    return out

def marker_kw(st):
    return dict(color=st["color"], marker=st["marker"], mfc="none" if st["hollow"] else st["color"])

SLIDE = (40 / 3, 7.5)  # inches, 16:9
SLIDES = {"font.size": 18, "axes.titlesize": 18, "legend.fontsize": 15, "lines.linewidth": 2.5, "lines.markersize": 10,
          "svg.fonttype": "none"}  # --slides: large type for a SLIDE-sized figure; SVG text stays text

def slides_dir(plots_dir):
    path = os.path.join(plots_dir, "slides")
    os.makedirs(path, exist_ok=True)
    return path

def figure(n_rows, n_cols, w=6, h=4.5):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(w * n_cols, h * n_rows), squeeze=False, layout="constrained")
    return fig, axes

def legend(fig, handles_labels):
    """One legend under the panels, where it covers no data."""
    if handles_labels:
        handles, labels = zip(*handles_labels)
        entry = 0.7 + 0.075 * max(map(len, labels))  # inches: marker, then the label in small type
        ncols = max(1, min(len(labels), int(fig.get_figwidth() / entry)))
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize="small")

def save(fig, path):
    for ax in fig.axes:  # log axes: label 1-2-5 ticks, no minor labels (they collide on spans of 1-2 decades)
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_minor_formatter(ticker.NullFormatter())
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")

def handle(st, label):
    return plt.Line2D([], [], ls=st["ls"], **marker_kw(st)), f"{label} [{st['plan']}]"

def setting(runs):
    """'corpus, L layers x d wide' of the runs, for titles."""
    pick = lambda k: ", ".join(sorted({str(r["cfg"].get(k, "?")) for r in runs}))
    return f"{pick('dataset')}, {pick('n_layer')} layers × {pick('n_embd')} wide"

def plot_curves(runs, metrics, xkey, style, title, path, w=8, h=5, excess=False):
    """Val metrics against FLOPs or tokens; with excess, val loss minus the data's floor on a log axis."""
    fig, axes = figure(1, len(metrics), w=w, h=h)
    for ax, m in zip(axes[0], metrics):
        for (label, _), rs in sorted(groups(runs).items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            # seeds share eval iters; an unfinished seed just stops contributing
            iters = sorted({i for r in rs for i, e in r["evals"].items() if m in e and i > 0})  # log x: no iter 0
            pts = [[(r, r["evals"][i]) for r in rs if m in r["evals"].get(i, {})] for i in iters]
            if not pts:
                continue
            x = [np.mean([e[xkey] for _, e in p]) for p in pts]
            y = [[e[m] - (r["floor"]["val"] if excess else 0) for r, e in p] for p in pts]
            st = style[label]
            ax.plot(x, [np.mean(v) for v in y], color=st["color"], ls=st["ls"])
            ax.plot(x[-1:], [np.mean(y[-1])], ls="none", **marker_kw(st))  # the run's end, in the variant's marker
            ax.fill_between(x, [min(v) for v in y], [max(v) for v in y], color=st["color"], alpha=0.15)
        ax.set(xscale="log", xlabel="training FLOPs" if xkey == "flops" else "tokens",
               ylabel="val loss − floor (nats/token, log)" if excess else METRICS[m],
               yscale="log" if excess else "linear",
               title=f"{title}\none run per budget, its schedule ending at the dot: compare the dots")
    legend(fig, [handle(style[v], v) for v in sorted({r["label"] for r in runs})])
    save(fig, path)

def groups(runs):
    """{(label, budget): [runs]}."""
    g = collections.defaultdict(list)
    for r in runs:
        g[r["label"], r["budget"]].append(r)
    return g

def plot_delta(sels, baseline, key, style, tuned, path):
    """Sorted dot plot of the paired difference vs baseline, best on top: a panel per budget, a row per recipe."""
    budgets = sorted({b for sel in sels.values() for (_, b) in sel}, key=lambda b: b or 0)
    n_var = len({v for sel in sels.values() for (v, _) in sel})
    fig, axes = figure(len(sels), len(budgets), w=max(4.8, 10 / len(budgets)), h=1.8 + 0.35 * n_var)  # titles fit
    for row, (kind, sel) in zip(axes, sels.items()):
        for ax, b in zip(row, budgets):
            items = []
            for (label, bb), (lr, rs) in sel.items():
                if bb == b and label != baseline and (baseline, b) in sel:
                    d = paired_diff(rs, sel[baseline, b][1], key)
                    items += [(d["mean"], label, lr, d)] if d["n"] else []
            items.sort(key=lambda t: t[:2])
            for y, (mu, label, lr, d) in enumerate(items):
                st = style[label]
                ax.plot(d["diffs"], [y] * d["n"], ls="none", marker="|", color=st["color"], alpha=0.6)  # seeds
                err = None if d["n"] < 2 else [[mu - d["lo"]], [d["hi"] - mu]]
                ax.errorbar(mu, y, xerr=err, capsize=3, ms=7, **marker_kw(st))
            ax.axvline(0, color="black", lw=0.8)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(4))  # long tick labels must not touch
            show_lr = tuned and kind == "own"
            ax.set_yticks(range(len(items)), [f"{v} (lr {lr:g})" if show_lr else v for _, v, lr, _ in items])
            ax.set_ylim(max(len(items), 1) - 0.3, -0.7)  # best (most negative) on top
            if not items:
                ax.text(0.5, 0.5, "no paired runs", transform=ax.transAxes, ha="center")
            lr_note = dict(shared=f"all at {baseline}'s best lr", own="each at its own best lr")[kind]
            ax.set_title(f"budget {fmt_budget(b) if b else '-'} FLOPs" + (f"\n{lr_note}" if tuned else ""),
                         fontsize="medium")
    fig.suptitle(f"{setting([r for sel in sels.values() for _, rs in sel.values() for r in rs])}: "
                 f"\nfinal {key.replace('_', ' ')} minus {baseline}'s, same seed (below 0: better)")
    fig.supxlabel(f"Δ {key.replace('_', ' ')} vs {baseline}: paired mean with 95% t-interval; |: single seeds")
    save(fig, path)

def plot_eval_r(done, metrics, style, baseline, title, path):
    ms = [m for m in metrics if any(len(r["final"].get(m + "_r", {})) > 1 for r in done)]
    if not ms:
        print("no run logged several eval_r: skipping loss_vs_eval_r.png")
        return
    g = groups(done)
    budgets = sorted({b for _, b in g}, key=lambda b: b or 0)
    panels = [(m, b) for m in ms for b in budgets]
    n_cols = min(len(budgets), 3)  # wrap: a row of 5+ panels is too wide to read
    fig, axes = figure(-(-len(panels) // n_cols), n_cols, w=5)
    shown = {}
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, (m, b) in zip(axes.flat, panels):
        for (label, budget), rs in sorted(g.items(), key=lambda kv: kv[0][0]):
            if budget != b:
                continue
            st = style[label]
            if label == baseline:
                v = [r["final"][m] for r in rs if m in r["final"]]
                if v:
                    ax.axhline(np.mean(v), color=st["color"], ls=":")
                    shown[label] = (plt.Line2D([], [], color=st["color"], ls=":"), f"{label} (r=1)")
                continue
            rs = [r for r in rs if len(r["final"].get(m + "_r", {})) > 1]
            if not rs:
                continue
            ks = sorted(set.intersection(*(set(r["final"][m + "_r"]) for r in rs)), key=int)
            mu, h = zip(*[mean_ci([r["final"][m + "_r"][k] for r in rs]) for k in ks])
            ax.errorbar([int(k) for k in ks], mu, yerr=np.nan_to_num(h), capsize=3, ls=st["ls"], **marker_kw(st))
            shown.setdefault(label, handle(st, label))
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set(xlabel="r at inference (eval_r)", ylabel=f"final {METRICS[m]}",
               title=f"budget {fmt_budget(b) if b else '-'} FLOPs")
    fig.suptitle(title)
    legend(fig, [shown[v] for v in sorted(shown)])
    save(fig, path)

def fit_all(sel, key, style, n_boot, seed, plots_dir):
    """Scaling fits of final[key] vs FLOPs and tokens, per variant, over the selected runs.
    Returns ({(label, axis): fit}, {label: why there is no fit})."""
    fits, refused = {}, {}
    runs = [r for _, rs in sel.values() for r in rs]
    for axis in ("flops", "tokens"):
        x0 = float(np.exp(np.mean([np.log(r["final"][axis]) for r in runs])))  # one x0 per axis: betas compare
        fig, axes = figure(1, 1, w=8, h=4 + 0.2 * len({r["label"] for r in runs}))  # room for a legend row each
        ax, shown = axes[0, 0], []
        for label in sorted({r["label"] for r in runs}):
            rs, st = [r for r in runs if r["label"] == label], style[label]
            x, f = [r["final"][axis] for r in rs], [r["final"][key] for r in rs]
            ax.plot(x, f, ls="none", ms=5, **marker_kw(st))
            n = len({r["budget"] for r in rs})
            try:
                if n < MIN_FIT_BUDGETS:  # seeds at one budget do not count as points of the law
                    raise ValueError(f"{n} budget(s), a fit of 3 parameters needs >= {MIN_FIT_BUDGETS}")
                fits[label, axis] = fit = fit_power_law(x, f, n_boot=n_boot, seed=seed, x0=x0)
            except ValueError as e:
                refused[label] = f"no fit: {e}"
                shown.append(handle(st, f"{label}: no fit ({n} budgets)"))
                continue
            xs, ext = np.geomspace(min(x), max(x), 50), np.geomspace(max(x), 10 * max(x), 50)
            ax.plot(xs, power_law(fit, xs), color=st["color"], ls=st["ls"])
            ax.plot(ext, power_law(fit, ext), color=st["color"], ls=":")  # extrapolation
            shown.append(handle(st, f"{label}: c={fit['c']:.3f}, ε={fit['eps']:.3f}, rms {fit['rms']:.2g}"))
        ax.set(xscale="log", xlabel="training FLOPs" if axis == "flops" else "tokens",
               ylabel=f"final {key.replace('_', ' ')}",
               title=f"f = β·(x/{x0:.3g})^(-c) + ε (dotted: 10x extrapolation)" if any(a == axis for _, a in fits)
               else f"no fit: a fit needs >= {MIN_FIT_BUDGETS} budgets")
        legend(fig, shown)
        save(fig, os.path.join(plots_dir, f"scaling_fit_{axis}.png"))
    for label, why in refused.items():
        print(f"{label}: {why}")
    return fits, refused

# -----------------------------------------------------------------------------
# results.md

def md_table(cols, rows):
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + ["| " + " | ".join(r) + " |" for r in rows]

def fmt_excess(v):
    return "-" if np.isnan(v).any() else f"{np.mean(v):.4f}"

def fmt_gap(runs):
    g = fixed_train_gap(runs)
    return "-" if np.isnan(g) else f"{g:+.3f}"

def runs_table(done, metrics, key):
    cols = ["variant", "budget", "lr", "runs"] + [f"{METRICS[m]} (± 95% CI)" for m in metrics]
    cols += ["test loss (± 95% CI)"] * (key == "test_loss")
    split = key.split("_")[0]
    floors = any(not np.isnan(excess(r, key)) for r in done)
    cols += [f"{split} loss − floor"] * floors
    cols += ["tokens", "FLOPs (% of budget)", "tokens/param", "epochs", "fixed train − val", "clipped steps",
             "grad norm (mean, max)",
             f"{split} loss @ r=1", f"{split} loss @ trained r"]
    rows = []
    for (label, budget, lr), rs in by_config(done).items():
        row = [label, fmt_budget(budget) if budget else "-", f"{lr:g}" if lr else "-", str(len(rs))]
        for m in metrics + ["test_loss"] * (key == "test_loss"):
            v = [r["final"][m] for r in rs if m in r["final"]]
            mu, h = mean_ci(v) if v else (np.nan, np.nan)
            row.append("-" if not v else f"{mu:.4f}" if np.isnan(h) else f"{mu:.4f} ± {h:.4f}")
        if floors:
            row.append(fmt_excess([excess(r, key) for r in rs]))
        tokens, flops = np.mean([r["final"]["tokens"] for r in rs]), np.mean([r["final"]["flops"] for r in rs])
        clip, norm = (np.mean([over_run(r, k) for r in rs]) for k in ("clip_frac", "grad_norm"))
        peaks = [e["grad_norm_max"] for r in rs for e in r["evals"].values() if e.get("grad_norm_max") is not None]
        row += [f"{tokens:.3g}", f"{flops:.3g}" + (f" ({100 * flops / budget:.1f}%)" if budget else "")]
        row += fmt_regime(regime(rs)) + [fmt_gap(rs), "-" if np.isnan(clip) else f"{100 * clip:.0f}%"]
        row += ["-" if np.isnan(norm) else f"{norm:.3g}, {max(peaks):.3g}" if peaks else f"{norm:.3g}, -"]
        for k in ("1", "r_train"):
            v = [r["final"].get(key + "_r", {}).get(str(r["cfg"].get("r", 1)) if k == "r_train" else k) for r in rs]
            row.append(f"{np.mean(v):.4f}" if all(x is not None for x in v) else "-")
        rows.append(row)
    return ["## Runs (mean over seeds)", ""] + md_table(cols, rows)

def lr_table(done):
    rows, best = [], best_lrs(done)
    for (label, budget), (lr, tried) in best.items():
        losses = ", ".join(f"{k:g}: {v:.4f}" for k, v in sorted(tried.items()))
        note = grid_note(best, label, budget) or ("inside" if len(tried) > 1 else "tuned at another budget")
        rows.append([label, fmt_budget(budget) if budget else "-", losses, f"{lr:g}", note])
    return (["## Learning rate, chosen on val (mean final val loss over the seeds every lr of the grid ran)", ""]
            + md_table(["variant", "budget", "val loss per lr", "best lr", "grid"], rows))

def excess_ratio(mine, base):
    """Mean excess loss over the baseline's at the same budget: below 1, closer to the floor."""
    if np.isnan(mine).any() or np.isnan(base).any() or np.mean(base) <= 0:
        return "-"
    return f"{np.mean(mine) / np.mean(base):.3f}"

def diff_table(sel, baseline, key, kind):
    rows, floors = [], any(not np.isnan(excess(r, key)) for _, rs in sel.values() for r in rs)
    for (label, budget), (lr, rs) in sorted(sel.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        base = sel.get((baseline, budget))
        d = paired_diff(rs, base[1], key) if base and label != baseline else None
        p = "-" if d is None or np.isnan(d["p"]) else f"{d['p']:.2g}"
        rows.append([label, fmt_budget(budget) if budget else "-", f"{lr:g}" if lr else "-",
                     str(d["n"]) if d else "-", fmt_diff(d) if d else "-", p] + fmt_regime(regime(rs)) + [fmt_gap(rs)])
        if floors:
            mine = [excess(r, key) for r in rs]
            rows[-1][5:5] = [fmt_excess(mine), excess_ratio(mine, [excess(r, key) for r in base[1]]) if d else "-"]
    title = dict(shared=f"shared recipe: every variant at {baseline}'s best val lr (the paper's protocol)",
                 own="own recipe: each variant at its own best val lr")[kind]
    cols = ["variant", "budget", "lr", "paired seeds", "Δ mean [95% t-interval]", "Welch p", "tokens/param", "epochs",
            "fixed train − val"]
    cols[5:5] = ["loss − floor", f"excess / {baseline}'s"] if floors else []
    return [f"## Δ {key.replace('_', ' ')} vs {baseline}, {title}", ""] + md_table(cols, rows)

def fit_crossings(fit, base, lo, hi):
    """Where a variant's fitted law crosses the baseline's between lo and hi, in words."""
    xs = laws_cross(fit, base, lo, hi)
    if not xs:
        side = "above" if power_law(fit, hi) > power_law(base, hi) else "below"
        return f"none up to {fmt_budget(hi)}: {side} throughout"
    return ", ".join(f"{way} at {fmt_budget(float(f'{x:.3g}'))}" for x, way in xs)

def crossing_rows(sel, baseline, key, kind, fits=None):
    """Per variant: where its paired Δ crosses 0 (measured) and, given the fits of this recipe, where its fitted law
    crosses the baseline's between the smallest budget and 100x the largest (predicted)."""
    rows = []
    for label, pts in gaps(sel, baseline, key).items():
        budgets = [b for b, _, _ in pts]
        row = [label, kind, crossing(budgets, *zip(*[(d["mean"], d["lo"], d["hi"]) for _, _, d in pts]))["text"]]
        if fits is not None:
            a, b = fits.get((label, "flops")), fits.get((baseline, "flops"))
            row.append(fit_crossings(a, b, min(budgets), 100 * max(budgets)) if a and b else "no fit of both")
        rows.append(row)
    return rows

def best_r_rows(sel, baseline, key, kind):
    """Per budget, the deterministic A^rB variant (the baseline as r = 1) with the lowest mean final loss, over the
    seeds every candidate ran; [] when fewer than two depths ran there."""
    cfgs = {label: rs[0]["cfg"] for (label, _), (_, rs) in sel.items()}
    depth = {label: 1 if label == baseline else cfg.get("r", 1) for label, cfg in cfgs.items()
             if label == baseline or family(cfg) == "rins" and not sampled_rounds(cfg) and not has_adapter(cfg)}
    rows = []
    for b in sorted({b for _, b in sel}, key=lambda b: b or 0):
        runs = {label: {r["seed"]: r["final"][key] for r in sel[label, b][1]} for label in depth if (label, b) in sel}
        seeds = set.intersection(*map(set, runs.values())) if runs else set()
        if len(runs) < 2 or not seeds:
            continue
        mean = {label: np.mean([v[s] for s in seeds]) for label, v in runs.items()}
        ranked = sorted(mean, key=mean.get)
        rows.append([fmt_budget(b) if b else "-", kind, f"r = {depth[ranked[0]]} ({ranked[0]})",
                     ", ".join(f"r={depth[label]}: {mean[label]:.4f}" for label in sorted(mean, key=depth.get)),
                     str(len(seeds))])
    return rows

def depth_rows(sel, baseline, key, kind):
    """The no-regret question (claims 5, 6): per variant that logged its loss at several inference depths
    (eval_r) and budget, its loss at each depth minus the same-seed baseline's, paired by seed."""
    rows = []
    for (label, b), (_, rs) in sorted(sel.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        depths = set.intersection(*(set(r["final"].get(f"{key}_r", {})) for r in rs))
        if label == baseline or (baseline, b) not in sel or len(depths) < 2:
            continue
        diffs = {d: paired_diff([dict(r, final={key: r["final"][f"{key}_r"][d]}) for r in rs], sel[baseline, b][1],
                                key) for d in sorted(depths, key=int)}
        rows.append([label, fmt_budget(b) if b else "-", kind, str(max(d["n"] for d in diffs.values()))]
                    + ["; ".join(f"r={d}: " + (fmt_diff(x) if x["n"] > 1 else f"{x['mean']:+.4f}")  # seeds: column 4
                                 for d, x in diffs.items())])
    return rows

def results_md(runs, metrics, baseline, key, kinds, fits, refused):
    """Verdicts first, then crossings, the paired differences, the fits and the lr grids; the run table last."""
    done = [r for r in runs if r["final"]]
    lines = [f"Analysis of {len(done)} finished runs ({len(runs) - len(done)} unfinished left out); "
             f"baseline {baseline}; losses compared on the {key.split('_')[0]} split. Training wall time summed "
             f"over the finished runs: {sum(r['final'].get('elapsed_s', 0) for r in done) / 3600:.1f} h "
             "(of each run's last process, if it was resumed). Tables: verdicts, crossing budgets, the best r, "
             "inference depth, Δ per recipe, scaling fits, learning rates, then every run."]
    if key == "val_loss":
        lines += ["", "Note: not every run logged a held-out test loss, so the comparisons below use val loss, "
                      "the split the learning rates were chosen on: an optimistic estimate for tuned variants."]
    cross, verdicts, deltas, best_r, depth = [], [], [], [], []
    for kind in kinds:
        sel = recipe(done, baseline, kind)
        best_r += best_r_rows(sel, baseline, key, kind)
        depth += depth_rows(sel, baseline, key, kind)
        deltas += [""] + diff_table(sel, baseline, key, kind)
        cross += crossing_rows(sel, baseline, key, kind, fits if kind == kinds[0] else None)
        for label in sorted({v for v, _ in sel} - {baseline}):
            v = verdict(runs, label, baseline, kind)
            d, text = v["diff"], v["text"]
            if v["budget"] and max(regime(sel[lab, v["budget"]][1])[1] for lab in (label, baseline)) > 3:
                text += " (resting on runs past 3 epochs: the arm that sees fewer tokens also repeats less)"
            verdicts.append([label, kind, text, fmt_budget(v["budget"]) if v["budget"] else "-",
                             fmt_diff(d) if d else "-"] + fmt_regime(v["regime"]))
    if verdicts:
        lines += ["", "## Verdicts", "", "Better or worse only when every run is done and within 1% of its budget, "
                  "every best lr lies inside its grid, no val loss rises over a run's last 20% (0.5% noise "
                  "allowed), >= 3 paired seeds at the key budget (the largest with >= 3 seeds) give a 95% interval "
                  "excluding 0, and a change of sign holds at >= 2 adjacent budgets.", ""]
        lines += md_table(["variant", "recipe", "verdict", "key budget", "Δ at key budget", "tokens/param",
                           "epochs"], verdicts)
    if cross:
        lines += ["", "## Crossing budget (where Δ changes sign, linear in log10 FLOPs; and where the fitted laws "
                      f"cross, {kinds[0]} recipe)", ""]
        lines += md_table(["variant", "recipe", "crossing (measured)", "fits cross at"],
                          [row + [""] * (4 - len(row)) for row in cross])
    if best_r:
        lines += ["", f"## Best r per budget (A^rB, the baseline as r = 1; mean {key.replace('_', ' ')} over the seeds "
                      "every depth ran)", ""]
        lines += md_table(["budget", "recipe", "best", f"{key.replace('_', ' ')} per r", "seeds"], best_r)
    if depth:
        lines += ["", f"## Inference depth against the baseline (final {key.replace('_', ' ')} at each eval_r minus "
                      "the same-seed baseline's; below 0 at r = 1: ahead even without the extra rounds)", ""]
        lines += md_table(["variant", "budget", "recipe", "paired seeds", "Δ per inference r, mean [95% t-interval]"],
                          depth)
    lines += deltas
    boot = ", 95% residual-bootstrap CI" if any("c_ci" in fit for fit in fits.values()) else ""
    lines += ["", f"## Scaling fits: final {key.replace('_', ' ')} = β·(x/x0)^(-c) + ε "
                  f"({kinds[0]} recipe{boot})", ""]
    if fits:
        ci = lambda fit, k: f" [{fit[k + '_ci'][0]:.3g}, {fit[k + '_ci'][1]:.3g}]" if k + "_ci" in fit else ""
        lines += md_table(["variant", "x", "x0", "β", "c", "ε", "RMS residual (loss)"], [
            [label, axis, f"{fit['x0']:.3g}"] + [f"{fit[k]:.4g}{ci(fit, k)}" for k in ("beta", "c", "eps")]
            + [f"{fit['rms']:.2g}"] for (label, axis), fit in fits.items()])
    lines += [f"- {label}: {why}" for label, why in refused.items()]
    if any(len(t) > 1 for _, t in best_lrs(done).values()):
        lines += [""] + lr_table(done)
    else:
        lines += ["", "One lr per variant and budget: the shared and own recipes coincide, and no lr was tuned."]
    lines += [""] + runs_table(done, metrics, key)
    return "\n".join(lines) + "\n"

# -----------------------------------------------------------------------------
# model sizes: is the gap to the baseline larger for a smaller model? (one sweep dir per size)

SIZE_MARKERS = "osDvP"  # not "^": triangles mark adapters
SIZE_LINES = ("-", ":", "-.", (0, (5, 1)), (0, (1, 3)))

def size_gaps(sweeps, labels):
    """Per sweep dir (one model size, named by its folder): its baseline's parameter count, gaps() under the shared
    recipe and a config per variant (for its colour); smallest model first. One split for all: test if every
    finished run logged it, else val. Returns (sizes, key)."""
    if len(sweeps) > len(SIZE_MARKERS) or len({os.path.basename(os.path.normpath(d)) for d in sweeps}) < len(sweeps):
        raise SystemExit(f"compare.py: --sizes takes 2 to {len(SIZE_MARKERS)} sweep dirs with distinct folder names; "
                         f"got {' '.join(sweeps)}")
    dones = {os.path.basename(os.path.normpath(d)): [r for r in load_runs(logged_dirs(d), labels) if r["final"]]
             for d in sweeps}
    key = loss_key([r for done in dones.values() for r in done])
    out = {}
    for (name, done), d in zip(dones.items(), sweeps):
        base = default_baseline(done)
        if base is None:
            raise SystemExit(f"compare.py: --sizes: no finished baseline run under {d}")
        n_params = next(r["n_params"] for r in done if r["label"] == base)
        if not n_params:
            raise SystemExit(f"compare.py: --sizes: the baseline's log under {d} has no n_params on its start line")
        out[name] = dict(n_params=n_params, gaps=gaps(recipe(done, base, "shared"), base, key),
                         cfgs={r["label"]: r["cfg"] for r in done})
    return dict(sorted(out.items(), key=lambda kv: kv[1]["n_params"])), key

def size_name(sweep, info):
    return f"{sweep} ({info['n_params'] / 1e6:.2g}M params)"

def size_crossing(pts):
    """crossing() of one size's gaps in the baseline's tokens per parameter (proportional to FLOPs within a size)
    and in FLOPs: [text in tokens/param, text in FLOPs]."""
    b, t, d = zip(*pts)
    args = (list(b), *zip(*[(x["mean"], x["lo"], x["hi"]) for x in d]))
    return [crossing(*args, per=t[-1] / b[-1])["text"], crossing(*args)["text"]]

def sizes_md(sizes, key):
    rows, flops_rows, tok_rows = [], [], []
    variants = sorted({v for s in sizes.values() for v in s["gaps"]})
    for v in variants:
        for s, info in sizes.items():
            for b, tpp, d in info["gaps"].get(v, []):
                rows.append([v, size_name(s, info), fmt_budget(b), f"{tpp:.3g}", str(d["n"]), fmt_diff(d)])
        have = [s for s in sizes if v in sizes[s]["gaps"]]
        for small, large in zip(have, have[1:]):
            ps, pl = ({b: (t, d) for b, t, d in sizes[s]["gaps"][v]} for s in (small, large))
            for b in sorted(set(ps) & set(pl)):
                flops_rows.append([v, fmt_budget(b), f"{small} vs {large}", fmt_diff(ps[b][1]), fmt_diff(pl[b][1]),
                                   f"{ps[b][1]['mean'] - pl[b][1]['mean']:+.4f}"])
            lt, mu = np.array(sorted((np.log(t), d["mean"]) for t, d in ps.values())).T  # ascending tokens/param
            for b, (t, d) in sorted(pl.items()):
                if lt[0] <= np.log(t) <= lt[-1]:  # interpolate the smaller model's gap, never extrapolate
                    at = float(np.interp(np.log(t), lt, mu))
                    tok_rows.append([v, f"{t:.3g}", f"{small} vs {large}", f"{at:+.4f} (interpolated)",
                                     f"{fmt_diff(d)} at {fmt_budget(b)}", f"{at - d['mean']:+.4f}"])
    cross_rows = [[v, size_name(s, info)] + size_crossing(info["gaps"][v])
                  for v in variants for s, info in sizes.items() if v in info["gaps"]]
    cols = ["pair", "Δ smaller model", "Δ larger model", "smaller − larger"]
    lines = ["## Δ vs the baseline by model size (shared recipe, "
             f"{key.split('_')[0]} split; below 0: better)", ""]
    lines += md_table(["variant", "sweep", "budget", "baseline tokens/param", "paired seeds",
                       "Δ mean [95% t-interval]"], rows)
    lines += ["", "## Where each size's Δ crosses 0, in the baseline's tokens per parameter (linear in log budget; "
                  "the interval is where the 95% curves through the budgets with >= 2 seeds cross; ? where fewer "
                  "than two have them)", ""]
    lines += md_table(["variant", "sweep", "crossing (tokens/param)", "crossing (FLOPs)"], cross_rows)
    lines += ["", "## At equal FLOPs (budgets both sizes ran); smaller − larger < 0: the smaller model gains more", ""]
    lines += md_table(["variant", "budget"] + cols, flops_rows) if flops_rows else ["No budget in common."]
    lines += ["", "## At equal tokens per parameter: the smaller model's Δ interpolated linearly in log "
                  "tokens/param at the larger model's points (inside its range only; a point estimate, no interval)",
              ""]
    lines += md_table(["variant", "tokens/param"] + cols, tok_rows) if tok_rows else [
        "No overlap: the larger model never trained as many tokens per parameter as the smaller one's shortest run."]
    return "\n".join(lines) + "\n"

def zoom(ax, mu):
    """Keep one far point from squashing the rest: when a paired Δ lies over 4x beyond the median |Δ|, the y range
    covers the other means and 0 (their intervals may run off it), and far points are drawn at the edge."""
    mu = np.asarray(mu, float)
    far = np.abs(mu) > 4 * np.median(np.abs(mu))
    if far.any() and not far.all():
        bottom, top = min(0.0, mu[~far].min()), max(0.0, mu[~far].max())
        ax.set_ylim(bottom - 0.25 * (top - bottom), top + 0.25 * (top - bottom))
    return far

def plot_gaps(series, title, path, slides=False):
    """Paired Δ vs the baseline against training FLOPs and against the baseline's tokens/param, one line per
    (legend label, style, gaps() points), with 95% intervals (none for one seed). Series are nudged apart
    sideways (a few % in x) so that points at one budget do not hide each other's intervals; a point far off
    the others' scale is drawn at the panel's edge with its value (zoom). With slides, each axis is a 16:9 figure
    of its own (path is then a stem: <stem>_flops.svg, <stem>_tokens.svg)."""
    xlabels = ("training FLOPs", "baseline's tokens per parameter")
    if slides:
        figs = [figure(1, 1, *SLIDE) for _ in xlabels]
        axes = [ax[0, 0] for _, ax in figs]
    else:
        fig, grid = figure(1, 2, w=6, h=4.5)
        axes = list(grid[0])
    means = [x["mean"] for _, _, pts in series for _, _, x in pts]
    for ax in axes:
        far = zoom(ax, means)
        if far.any() and not far.all():
            ax.set_title(f"zoomed: {far.sum()} point(s) off this scale at the edge, with their value; "
                         "intervals may run off it", fontsize="small")
    off = {id(ax): 0 for ax in axes}  # labels of off-scale points so far per panel: each next one a row lower
    for i, (label, st, pts) in enumerate(series):
        b, t, d = zip(*pts)
        nudge = 10 ** (0.012 * (i - (len(series) - 1) / 2))
        mu = np.array([x["mean"] for x in d])
        err = np.nan_to_num([mu - [x["lo"] for x in d], [x["hi"] for x in d] - mu])
        for ax, x in zip(axes, (b, t)):
            x = np.array(x) * nudge
            ax.errorbar(x, mu, yerr=err, capsize=3, ls=st["ls"], **marker_kw(st))
            lo, hi = ax.get_ylim()
            for xi, m in zip(x, mu):
                if not lo <= m <= hi:  # off the zoomed scale: an arrow at the edge, and the value
                    edge = hi if m > hi else lo
                    ax.plot(xi, edge, ls="none", marker="^" if m > hi else "v", ms=10, color=st["color"], clip_on=False)
                    row = 12 * (off[id(ax)] % 3)
                    off[id(ax)] += 1
                    ax.annotate(f"{m:+.3f}", (xi, edge), textcoords="offset points",
                                xytext=(8, -14 - row if m > hi else 6 + row), color=st["color"], fontsize="small")
    for ax, xl in zip(axes, xlabels):
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xscale="log", xlabel=xl, ylabel="Δ loss vs baseline, same seed")
    handles = [handle(st, label) for label, st, _ in series]
    head = title + "\nbelow 0: better than the baseline; bars: 95% t-interval over seeds (none: one seed)"
    if not slides:
        fig.suptitle(head)
        legend(fig, handles)
        return save(fig, path)
    for (fig, _), name in zip(figs, ("flops", "tokens")):
        fig.suptitle(head)
        legend(fig, handles)
        save(fig, f"{path}_{name}.svg")

def plot_sizes(sizes, path, slides=False):
    """The variants every size ran (the rest are in sizes.md: one figure stays readable); a marker and a line
    style per size."""
    style = styles([dict(label=v, cfg=c) for s in sizes.values() for v, c in s["cfgs"].items()])
    shared = [v for v in sorted({v for s in sizes.values() for v in s["gaps"]})
              if all(v in s["gaps"] for s in sizes.values())]
    series = [(f"{v}, {size_name(s, info)}", dict(style[v], marker=marker, ls=ls), info["gaps"][v])
              for (s, info), marker, ls in zip(sizes.items(), SIZE_MARKERS, SIZE_LINES)
              for v in shared]
    plot_gaps(series, "The recursive variants' gap to the baseline, per model size (shared recipe)", path, slides)

def analyse(dirs, plots_dir, labels=None, baseline=None, n_boot=1000, seed=0, slides=False, excess=False):
    runs = load_runs(dirs, labels or {})
    if not runs:
        raise SystemExit("compare.py: no log.jsonl with eval lines found; run the sweep first or check --out/--runs")
    if excess and (missing := [r["dir"] for r in runs if not (r["floor"] or {}).get("val")]):
        raise SystemExit(f"compare.py: --excess needs data with a known floor (python prepare.py grammar_deep ...); "
                         f"{len(missing)} run(s) logged none, e.g. {missing[0]}")
    os.makedirs(plots_dir, exist_ok=True)
    style = styles(runs)
    metrics = [m for m in METRICS if any(m in e for r in runs for e in r["evals"].values())]
    done = [r for r in runs if r["final"]]
    for r in runs:
        if not r["final"]:
            print(f"unfinished, left out of final tables and fits: {r['dir']}")
    if baseline is None:  # the first variant whose config is the plain stack
        baseline = default_baseline(runs)
    elif baseline not in style:
        raise SystemExit(f"compare.py: --baseline {baseline} is not a variant here; "
                         f"variants: {', '.join(sorted(style))}")
    print(f"baseline: {baseline}")
    # curves: each variant at its own best val lr per budget (every run while nothing at that budget is done)
    own = recipe(done, baseline, "own")
    picked = [r for r in runs if (r["label"], r["budget"]) not in own or r["lr"] == own[r["label"], r["budget"]][0]]
    tuned = any(len(t) > 1 for _, t in best_lrs(done).values())
    title = setting(runs) + (", each at its own best val lr" if tuned else "")
    for xkey in ("flops", "tokens"):
        plot_curves(picked, metrics[:1] if excess else metrics, xkey, style, title,
                    os.path.join(plots_dir, f"loss_vs_{xkey}.png"), excess=excess)
    if not done:
        print("no finished runs: only the curves were written")
        return
    key = loss_key(done)
    kinds = (["shared", "own"] if tuned else ["shared"]) if baseline else ["own"]
    sels = {k: recipe(done, baseline, k) for k in kinds}
    if baseline:
        plot_delta(sels, baseline, key, style, tuned, os.path.join(plots_dir, "final_loss.png"))
        series = [(v, style[v], pts) for v, pts in gaps(sels[kinds[0]], baseline, key).items()]
        head = f"{setting(done)}: final {key.replace('_', ' ')} minus {baseline}'s ({kinds[0]} recipe)"
        if series:
            plot_gaps(series, head, os.path.join(plots_dir, "delta_vs_budget.png"))
        if slides:
            with plt.rc_context(SLIDES):
                if series:
                    plot_gaps(series, head, os.path.join(slides_dir(plots_dir), "delta"), slides=True)
                plot_curves(picked, metrics[:1], "flops", style, title,
                            os.path.join(slides_dir(plots_dir), "loss_vs_flops.svg"), *SLIDE)
    plot_eval_r([r for _, rs in own.values() for r in rs], metrics, style, baseline, title,
                os.path.join(plots_dir, "loss_vs_eval_r.png"))
    fits, refused = fit_all(sels[kinds[0]], key, style, n_boot, seed, plots_dir)
    table = results_md(runs, metrics, baseline, key, kinds, fits, refused)
    print(table)
    with open(os.path.join(plots_dir, "results.md"), "w") as f:
        f.write(table)
    print(f"wrote {os.path.join(plots_dir, 'results.md')}")

# -----------------------------------------------------------------------------

LISTS = {"--budgets": (float, "positive FLOPs, e.g. 2e13,4e13"), "--lrs": (float, "positive learning rates, e.g. "
                                                                                  "1e-3,2e-3"),
         "--seeds": (int, "whole numbers >= 0, e.g. 0,1,2")}

def parse_list(s, what):
    """A comma-separated --budgets, --lrs or --seeds; anything else stops with one line naming the option."""
    kind, expected = LISTS[what]
    try:
        v = [kind(t) for t in s.split(",") if t.strip()]
    except ValueError:
        v = []
    if not v or not all(np.isfinite(x) and (x > 0 if kind is float else x >= 0) for x in v):
        raise SystemExit(f"compare.py: bad {what} {s!r}; expected a comma-separated list of {expected}")
    return v

def parse_pairs(pairs, what):
    if any("=" not in p for p in pairs):
        raise SystemExit(f"compare.py: bad {what} {pairs}; expected key=value")
    return dict(p.split("=", 1) for p in pairs)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", help="config files to sweep, e.g. config/rins_small.py")
    ap.add_argument("--budgets", help="comma-separated FLOP budgets, e.g. 2e13,4e13,8e13")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra train.py override, passed on as --KEY=VALUE (repeatable)")
    ap.add_argument("--lrs", help="comma-separated learning rates to sweep too, e.g. 1e-3,2e-3,4e-3; min_lr = lr/10 "
                                  "unless --set min_lr=...")
    ap.add_argument("--out", help="sweep directory: runs go to OUT/<config stem>/b<budget>[_lr<lr>]_s<seed>")
    ap.add_argument("--jobs", type=int, metavar="N", help="runs at once on this machine, each with cores/N threads "
                                                          "and, with CUDA, its own GPU (default: the GPUs, else 1)")
    ap.add_argument("--launcher", choices=("slurm", "local"),
                    help="one submitit job per run: on SLURM, or as local processes (needs pip install submitit)")
    ap.add_argument("--slurm_partition", help="SLURM partition (default: the cluster's)")
    ap.add_argument("--slurm_time", type=int, help="time limit per run in minutes (default 240)")
    ap.add_argument("--slurm_gpus", type=int, help="GPUs per run, one process each through torchrun (default 1)")
    ap.add_argument("--slurm_cpus", type=int, help="CPU cores per run, also its thread count (default 8)")
    ap.add_argument("--no-run", action="store_true", help="only analyse the logs under --out")
    ap.add_argument("--runs", nargs="+", metavar="DIR", help="analyse these run dirs instead (no sweep)")
    ap.add_argument("--sizes", nargs="+", metavar="DIR", help="compare the gap to the baseline across model sizes, "
                                                              "one sweep dir (--out) per size: sizes.md, sizes.png")
    ap.add_argument("--plots_dir", help="where plots and results.md go (default: --out)")
    ap.add_argument("--label", action="append", default=[], metavar="STEM=NAME", help="rename a variant (repeatable)")
    ap.add_argument("--baseline", help="variant drawn as reference and diffed against "
                                       "(default: the first with r=1 and a plain signature)")
    ap.add_argument("--slides", action="store_true", help="also write slide-ready figures to PLOTS_DIR/slides/: "
                    "16:9, one panel each, large type, SVG")
    ap.add_argument("--excess", action="store_true", help="draw the loss curves as loss minus the data's floor on a "
                                                          "log axis (data with a known floor: prepare.py grammar*)")
    ap.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples for fit CIs (default 1000)")
    ap.add_argument("--fit_seed", type=int, default=0, help="seed of the fit bootstrap (default 0)")
    args = ap.parse_args(argv)

    if args.n_boot < 1:
        raise SystemExit(f"compare.py: bad --n_boot {args.n_boot}; the fits' intervals need >= 1 bootstrap resample")
    plots_dir = args.plots_dir or args.out
    if plots_dir is None:
        raise SystemExit("compare.py: no output directory; give --out or --plots_dir")
    labels = parse_pairs(args.label, "--label")
    if args.sizes:
        if len(args.sizes) < 2 or not all(os.path.isdir(d) for d in args.sizes):
            raise SystemExit(f"compare.py: --sizes needs >= 2 sweep directories; got {' '.join(args.sizes)}")
        if args.baseline:
            raise SystemExit("compare.py: --sizes finds each sweep's baseline itself (r=1, plain signature); "
                             "drop --baseline")
        os.makedirs(plots_dir, exist_ok=True)
        sizes, key = size_gaps(args.sizes, labels)
        text = sizes_md(sizes, key)
        print(text)
        with open(os.path.join(plots_dir, "sizes.md"), "w") as f:
            f.write(text)
        if any(s["gaps"] for s in sizes.values()):
            plot_sizes(sizes, os.path.join(plots_dir, "sizes.png"))
            if args.slides:
                with plt.rc_context(SLIDES):
                    plot_sizes(sizes, os.path.join(slides_dir(plots_dir), "sizes"), slides=True)
        else:
            print("no recursive variant paired with its baseline in any sweep: no sizes.png")
        return
    if args.runs:
        dirs = args.runs
    else:
        if args.out is None:
            raise SystemExit("compare.py: no sweep directory; give --out (or --runs DIR...)")
        if not args.no_run:
            if not args.configs or not args.budgets:
                raise SystemExit("compare.py: nothing to run; give config files and --budgets, or --no-run")
            for c in args.configs:
                if not os.path.isfile(c):
                    raise SystemExit(f"compare.py: config file {c} not found; give a path like config/rins_small.py")
            budgets = parse_list(args.budgets, "--budgets")
            seeds = parse_list(args.seeds, "--seeds")
            lrs = parse_list(args.lrs, "--lrs") if args.lrs else None
            overrides = parse_pairs(args.set, "--set")
            if lrs and "learning_rate" in overrides:
                raise SystemExit("compare.py: --lrs and --set learning_rate both set the learning rate; give one")
            if args.jobs is not None and (args.jobs < 1 or args.launcher):
                raise SystemExit(f"compare.py: bad --jobs {args.jobs}; it needs >= 1 and no --launcher "
                                 "(with --launcher every run is its own job)")
            slurm = dict(partition=args.slurm_partition, time=args.slurm_time, gpus=args.slurm_gpus,
                         cpus=args.slurm_cpus)
            given = [k for k, v in slurm.items() if v is not None]
            if given and not args.launcher:
                raise SystemExit(f"compare.py: --slurm_{given[0]} needs --launcher slurm (or local)")
            if any(v is not None and v < low for v, low in ((args.slurm_time, 1), (args.slurm_cpus, 1),
                                                            (args.slurm_gpus, 0))):
                raise SystemExit("compare.py: --slurm_time and --slurm_cpus need >= 1, --slurm_gpus >= 0")
            slurm = dict(slurm, time=args.slurm_time or 240, cpus=args.slurm_cpus or 8,
                         gpus=1 if args.slurm_gpus is None else args.slurm_gpus)
            if not sweep(args.configs, budgets, seeds, overrides, args.out, lrs, args.jobs, args.launcher, slurm):
                sys.exit(1)
        dirs = logged_dirs(args.out)
    analyse(dirs, plots_dir, labels, args.baseline, args.n_boot, args.fit_seed, args.slides, args.excess)

if __name__ == "__main__":
    main()
