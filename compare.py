"""
Sweep and compare nanoRINS runs at matched training FLOPs.

1) Sweep (sweep.py). For every CONFIG x budget [x --lrs learning rate] x seed, run
     python train.py CONFIG --flop_budget=B --seed=S --out_dir=OUT/<config stem>/b<B>[_lr<LR>]_s<S> [--key=value ...]
   --jobs N at once on this machine, or as SLURM jobs with --launcher slurm. Finished runs are skipped,
   unfinished ones resume from their checkpoint; each run's output goes to RUN_DIR/train.out.

2) Analysis. Reads every log.jsonl under OUT (or the --runs dirs) and writes to --plots_dir (default OUT):
     loss_vs_flops.png, loss_vs_tokens.png   metric vs cumulative training FLOPs / tokens,
                                             mean over seeds with a min-max band
     final_loss.png          final metric per variant and budget: seeds as points, mean +- 95% t-interval
     loss_vs_r_eval.png      final metric vs inference depth r_eval (from val_loss_r etc.),
                             baseline as a horizontal line: the no-regret picture
     scaling_fit_flops.png, scaling_fit_tokens.png
                             f(x) = beta*(x/x0)^-c + eps per variant (needs >= 3 budgets),
                             curves extrapolated to 10x the largest x
     results.md              the tables, also printed
   A variant is the config file stem (the run dir's parent folder), renamed by --label stem=name.
   Runs are grouped by (variant, FLOP budget) and averaged over seeds; only finished runs enter
   the final tables and fits. Accuracies (val_acc, zeroshot_acc; higher is better) are shown next
   to val_loss when logged. Fits use val_loss, or the error 1 - acc when no loss is logged.

Examples:
  python compare.py config/baseline_small.py config/rins_small.py --budgets 2e13,4e13,8e13 --seeds 0,1,2 --out runs/demo
  python compare.py config/rins_small.py --budgets 2e13 --lrs 1e-3,2e-3,4e-3 --seeds 0,1 --jobs 2 --out runs/lr
  python compare.py --out runs/demo --no-run          # analyse what is there
  python compare.py --runs runs/a/rins_small/b2e13_s0 runs/b/baseline_small/b2e13_s0 --plots_dir plots
"""
import argparse
import collections
import glob
import os
import sys

import numpy as np
from scipy import optimize, stats
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib import ticker

from sweep import fmt_budget, read_log, sweep

# logged final metrics, in display order; *_acc are higher-is-better, and each may have a per-r_eval dict '<name>_r'
METRICS = {'val_loss': 'val loss', 'val_acc': 'val accuracy', 'zeroshot_acc': '0-shot accuracy'}

# -----------------------------------------------------------------------------
# scaling-law fit (PAPER.md section 7)

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

    x is divided by x0 (default: the geometric mean of x) so beta is O(f) whatever the unit;
    pass one x0 for all variants on an axis to make their betas comparable. c and eps do not
    depend on x0. With n_boot > 0, 95% percentile CIs come from a residual bootstrap: log-space
    residuals, inflated by sqrt(n/(n-3)) for the 3 fitted parameters, are resampled onto the
    fitted curve and refit. Pairs resampling is not used: with ~5 budgets it often drops whole
    budgets and leaves c unidentifiable. With few points percentile CIs under-cover: on synthetic
    data (6 budgets over 32x, 0.3% noise) they held the truth ~80% of the time with one point per
    budget and ~88% with three. Deterministic for a given seed.
    Returns dict(beta, c, eps, x0, rmse[, beta_ci, c_ci, eps_ci]) with rmse in log f.
    """
    x, f = np.asarray(x, float), np.asarray(f, float)
    if len(np.unique(x)) < 3 or np.any(x <= 0) or np.any(f <= 0):
        raise ValueError("fit_power_law needs >= 3 distinct x, and x, f > 0")
    x0 = float(np.exp(np.log(x).mean())) if x0 is None else float(x0)
    lx, lf = np.log(x / x0), np.log(f)
    p = _fit(lx, lf)
    model = np.log(np.exp(p[0] - p[1] * lx) + p[2])
    res = dict(beta=float(np.exp(p[0])), c=float(p[1]), eps=float(p[2]), x0=x0,
               rmse=float(np.sqrt(np.mean((lf - model) ** 2))))
    if n_boot:
        r = (lf - model) * np.sqrt(len(lf) / max(len(lf) - 3, 1))
        rng = np.random.default_rng(seed)
        boots = np.array([_fit(lx, model + rng.choice(r, len(r))) for _ in range(n_boot)])
        boots[:, 0] = np.exp(boots[:, 0])
        lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
        res.update({k + '_ci': (float(l), float(h)) for k, l, h in zip(('beta', 'c', 'eps'), lo, hi)})
    return res

def power_law(fit, x):
    return fit['beta'] * (np.asarray(x, float) / fit['x0']) ** -fit['c'] + fit['eps']

# -----------------------------------------------------------------------------
# analysis

def load_runs(dirs, labels):
    runs = []
    for d in sorted(dirs):
        log = read_log(d)
        if not log['evals']:
            continue
        start = log['start'] or {}
        cfg = start.get('config', {})
        stem = os.path.basename(os.path.dirname(os.path.abspath(d)))
        runs.append(dict(dir=d, label=labels.get(stem, stem), cfg=cfg, evals=log['evals'], final=log['done'],
                         budget=start.get('flop_budget') or cfg.get('flop_budget'), seed=cfg.get('seed')))
    return runs

def is_baseline(cfg):
    """r = 1 with a plain signature (no letter repeated, degree 1, no adapter): the unrecursed stack."""
    sig = cfg.get('signature') or 'AB'
    return (cfg.get('r', 1) == 1 and sig.isalpha() and len(set(sig)) == len(sig)
            and cfg.get('degree', 1) == 1 and cfg.get('adapter') in (None, '', 'none'))

def mean_ci(v):
    """Mean and 95% t-interval half-width (nan for one value)."""
    v = np.asarray(v, float)
    h = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return v.mean(), h

def groups(runs):
    """{(label, budget): [runs]} in label, budget order."""
    g = collections.defaultdict(list)
    for r in runs:
        g[r['label'], r['budget']].append(r)
    return dict(sorted(g.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)))

def figure(n_rows, n_cols):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 4.5 * n_rows), squeeze=False)
    return fig, axes

def save(fig, path):
    for ax in fig.axes:  # many variants: legend beside the plot, not over the data
        if ax.get_legend() and len(ax.get_legend().get_texts()) > 6:
            ax.legend(fontsize='small', loc='upper left', bbox_to_anchor=(1.01, 1))
    for ax in fig.axes:  # log axes: label 1-2-5 ticks, no minor labels (they collide on spans of 1-2 decades)
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == 'log':
                axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_minor_formatter(ticker.NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")

def plot_curves(runs, metrics, xkey, color, path):
    fig, axes = figure(1, len(metrics))
    for ax, m in zip(axes[0], metrics):
        seen = set()
        for (label, _), rs in groups(runs).items():
            # seeds share eval iters; an unfinished seed just stops contributing
            iters = sorted({i for r in rs for i, e in r['evals'].items() if m in e and i > 0})  # log x: no iter 0
            pts = [[r['evals'][i] for r in rs if m in r['evals'].get(i, {})] for i in iters]
            if not pts:
                continue
            x = [np.mean([e[xkey] for e in p]) for p in pts]
            y = [[e[m] for e in p] for p in pts]
            ax.plot(x, [np.mean(v) for v in y], color=color[label], label=None if label in seen else label)
            ax.fill_between(x, [min(v) for v in y], [max(v) for v in y], color=color[label], alpha=0.2)
            seen.add(label)
        ax.set(xscale='log', xlabel='training FLOPs' if xkey == 'flops' else 'tokens', ylabel=METRICS[m])
        ax.legend(fontsize='small')
    save(fig, path)

def plot_final(done, metrics, color, path):
    fig, axes = figure(1, len(metrics))
    labels = sorted({r['label'] for r in done})
    for ax, m in zip(axes[0], metrics):
        for (label, budget), rs in groups(done).items():
            v = [r['final'][m] for r in rs if m in r['final']]
            if not v:
                continue
            x = budget or np.mean([r['final']['flops'] for r in rs])
            x *= 1.15 ** ((labels.index(label) - (len(labels) - 1) / 2) / len(labels))  # dodge sideways, within +-7%
            mu, h = mean_ci(v)
            ax.scatter([x] * len(v), v, color=color[label], s=12, alpha=0.6)
            ax.errorbar(x, mu, yerr=0 if np.isnan(h) else h, color=color[label], marker='o', capsize=4)
        for label in labels:
            ax.plot([], [], color=color[label], marker='o', label=label)
        ax.set(xscale='log', xlabel='FLOP budget', ylabel=f"final {METRICS[m]} (mean ± 95% CI)")
        ax.legend(fontsize='small')
    save(fig, path)

def plot_r_eval(done, metrics, color, baseline, path):
    ms = [m for m in metrics if any(len(r['final'].get(m + '_r', {})) > 1 for r in done)]
    if not ms:
        print("no run logged several r_eval: skipping loss_vs_r_eval.png")
        return
    budgets = sorted({r['budget'] or 0 for r in done})
    fig, axes = figure(len(ms), len(budgets))
    for row, m in zip(axes, ms):
        for ax, b in zip(row, budgets):
            for (label, budget), rs in groups(done).items():
                if (budget or 0) != b:
                    continue
                if label == baseline:
                    v = [r['final'][m] for r in rs if m in r['final']]
                    if v:
                        ax.axhline(np.mean(v), color=color[label], ls='--', label=label)
                    continue
                rs = [r for r in rs if len(r['final'].get(m + '_r', {})) > 1]
                if not rs:
                    continue
                ks = sorted(set.intersection(*(set(r['final'][m + '_r']) for r in rs)), key=int)
                mu, h = zip(*[mean_ci([r['final'][m + '_r'][k] for r in rs]) for k in ks])
                ax.errorbar([int(k) for k in ks], mu, yerr=np.nan_to_num(h), color=color[label],
                            marker='o', capsize=3, label=label)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            ax.set(xlabel='r_eval (inference rounds)', ylabel=f"final {METRICS[m]}",
                   title=f"budget {fmt_budget(b)}" if b else 'no FLOP budget')
            ax.legend(fontsize='small')
    save(fig, path)

def fit_target(done):
    """(name, f(run)) for the scaling fit: val_loss, else the error of the first accuracy logged."""
    if all('val_loss' in r['final'] for r in done):
        return 'val_loss', lambda r: r['final']['val_loss']
    m = next((m for m in ('zeroshot_acc', 'val_acc') if all(m in r['final'] for r in done)), None)
    return (f"1 - {m}", lambda r: 1 - r['final'][m]) if m else (None, None)

def fit_all(done, color, n_boot, seed, plots_dir):
    name, target = fit_target(done)
    fits = {}
    if name is None:
        print("no metric logged by all finished runs: skipping scaling fits")
        return name, fits
    for axis in ('flops', 'tokens'):
        x0 = float(np.exp(np.mean([np.log(r['final'][axis]) for r in done])))  # one x0 per axis: betas compare
        fig, axes = figure(1, 1)
        ax = axes[0, 0]
        for label in sorted({r['label'] for r in done}):
            rs = [r for r in done if r['label'] == label]
            x, f = [r['final'][axis] for r in rs], [target(r) for r in rs]
            enough = len({r['budget'] for r in rs}) >= 3
            ax.scatter(x, f, color=color[label], s=14, label=None if enough else f"{label} (no fit)")
            if not enough:
                print(f"{label}: {len({r['budget'] for r in rs})} budget(s), need >= 3 for a {axis} fit: skipping")
                continue
            try:
                fits[label, axis] = fit = fit_power_law(x, f, n_boot=n_boot, seed=seed, x0=x0)
            except ValueError as e:
                print(f"{label}: no {axis} fit: {e}")
                continue
            xs, ext = np.geomspace(min(x), max(x), 50), np.geomspace(max(x), 10 * max(x), 50)
            ax.plot(xs, power_law(fit, xs), color=color[label],
                    label=f"{label}: c={fit['c']:.3f}, ε={fit['eps']:.3f}")
            ax.plot(ext, power_law(fit, ext), color=color[label], ls='--')  # extrapolation
        ax.set(xscale='log', xlabel='training FLOPs' if axis == 'flops' else 'tokens', ylabel=f"final {name}",
               title=f"f = β·(x/{x0:.3g})^(-c) + ε")
        ax.legend(fontsize='small')
        save(fig, os.path.join(plots_dir, f"scaling_fit_{axis}.png"))
    return name, fits

def results_table(done, metrics, baseline, fit_name, fits):
    """Markdown tables of final metrics per (variant, budget) and of the fits."""
    g = groups(done)
    cols = ['variant', 'budget', 'runs'] + [f"{METRICS[m]} (± 95% CI)" for m in metrics]
    cols += [f"Δ {METRICS[metrics[0]]} vs {baseline or 'baseline'} (Welch p)", 'tokens', 'FLOPs (% of budget)',
             f"{METRICS[metrics[0]]} @ r_eval=1", f"{METRICS[metrics[0]]} @ r_train"]
    lines = ["## Final metrics", "", '| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    for (label, budget), rs in g.items():
        row = [label, fmt_budget(budget) if budget else '-', str(len(rs))]
        for m in metrics:
            v = [r['final'][m] for r in rs if m in r['final']]
            mu, h = mean_ci(v) if v else (np.nan, np.nan)
            row.append('-' if not v else f"{mu:.4f}" if np.isnan(h) else f"{mu:.4f} ± {h:.4f}")
        base = g.get((baseline, budget), [])
        a, b = [r['final'][metrics[0]] for r in rs], [r['final'][metrics[0]] for r in base]
        p = f"{stats.ttest_ind(a, b, equal_var=False).pvalue:.2g}" if len(a) > 1 and len(b) > 1 else "one seed: no p"
        row.append('-' if label == baseline or not b else f"{np.mean(a) - np.mean(b):+.4f} ({p})")
        tokens, flops = np.mean([r['final']['tokens'] for r in rs]), np.mean([r['final']['flops'] for r in rs])
        row += [f"{tokens:.3g}", f"{flops:.3g}" + (f" ({100 * flops / budget:.1f}%)" if budget else '')]
        for k in ('1', 'r_train'):
            v = [r['final'].get(metrics[0] + '_r', {}).get(str(r['cfg'].get('r', 1)) if k == 'r_train' else k)
                 for r in rs]
            row.append(f"{np.mean(v):.4f}" if all(x is not None for x in v) else '-')
        lines.append('| ' + ' | '.join(row) + ' |')
    if fits:
        lines += ["", f"## Scaling fits: final {fit_name} = β·(x/x0)^(-c) + ε (95% residual-bootstrap CI)", "",
                  "| variant | x | x0 | β | c | ε | rmse (log f) |", "|---|---|---|---|---|---|---|"]
        ci = lambda fit, k: f" [{fit[k + '_ci'][0]:.3g}, {fit[k + '_ci'][1]:.3g}]" if k + '_ci' in fit else ''
        for (label, axis), fit in fits.items():
            lines.append(f"| {label} | {axis} | {fit['x0']:.3g} | " + ' | '.join(
                f"{fit[k]:.4g}{ci(fit, k)}" for k in ('beta', 'c', 'eps')) + f" | {fit['rmse']:.2g} |")
    return '\n'.join(lines) + '\n'

def analyse(dirs, plots_dir, labels=None, baseline=None, n_boot=1000, seed=0):
    runs = load_runs(dirs, labels or {})
    if not runs:
        raise SystemExit("compare.py: no log.jsonl with eval lines found; run the sweep first or check --out/--runs")
    os.makedirs(plots_dir, exist_ok=True)
    variants = sorted({r['label'] for r in runs})
    cmap = plt.cm.tab10 if len(variants) <= 10 else plt.cm.tab20  # one colour per variant
    color = {l: cmap(i % cmap.N) for i, l in enumerate(variants)}
    metrics = [m for m in METRICS if any(m in e for r in runs for e in r['evals'].values())]
    for xkey in ('flops', 'tokens'):
        plot_curves(runs, metrics, xkey, color, os.path.join(plots_dir, f"loss_vs_{xkey}.png"))
    done = [r for r in runs if r['final']]
    for r in runs:
        if not r['final']:
            print(f"unfinished, left out of final tables and fits: {r['dir']}")
    if not done:
        print("no finished runs: only the curves were written")
        return
    if baseline is None:  # the first variant whose config is the plain stack
        baseline = next((r['label'] for r in sorted(done, key=lambda r: r['label']) if is_baseline(r['cfg'])), None)
    print(f"baseline: {baseline}")
    plot_final(done, metrics, color, os.path.join(plots_dir, 'final_loss.png'))
    plot_r_eval(done, metrics, color, baseline, os.path.join(plots_dir, 'loss_vs_r_eval.png'))
    fit_name, fits = fit_all(done, color, n_boot, seed, plots_dir)
    table = results_table(done, metrics, baseline, fit_name, fits)
    print(table)
    with open(os.path.join(plots_dir, 'results.md'), 'w') as f:
        f.write(table)
    print(f"wrote {os.path.join(plots_dir, 'results.md')}")

# -----------------------------------------------------------------------------

def parse_list(s, kind, what):
    try:
        v = [kind(t) for t in s.split(',') if t.strip()]
    except ValueError:
        v = []
    if not v or (kind is float and not all(np.isfinite(b) and b > 0 for b in v)):
        raise SystemExit(f"compare.py: bad {what} {s!r}; expected a comma-separated list like "
                         + ("2e13,4e13 (positive FLOPs)" if kind is float else "0,1,2"))
    return v

def parse_pairs(pairs, what):
    if any('=' not in p for p in pairs):
        raise SystemExit(f"compare.py: bad {what} {pairs}; expected key=value")
    return dict(p.split('=', 1) for p in pairs)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('configs', nargs='*', help="config files to sweep, e.g. config/rins_small.py")
    ap.add_argument('--budgets', help="comma-separated FLOP budgets, e.g. 2e13,4e13,8e13")
    ap.add_argument('--seeds', default='0', help="comma-separated seeds (default 0)")
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                    help="extra train.py override, passed on as --KEY=VALUE (repeatable)")
    ap.add_argument('--lrs', help="comma-separated learning rates to sweep too, e.g. 1e-3,2e-3,4e-3; min_lr = lr/10 "
                                  "unless --set min_lr=...")
    ap.add_argument('--out', help="sweep directory: runs go to OUT/<config stem>/b<budget>[_lr<lr>]_s<seed>")
    ap.add_argument('--jobs', type=int, metavar='N', help="runs at once on this machine, each with cores/N threads "
                                                          "and, with CUDA, its own GPU (default: the GPUs, else 1)")
    ap.add_argument('--launcher', choices=('slurm', 'local'),
                    help="one submitit job per run: on SLURM, or as local processes (needs pip install submitit)")
    ap.add_argument('--slurm_partition', help="SLURM partition (default: the cluster's)")
    ap.add_argument('--slurm_time', type=int, help="time limit per run in minutes (default 240)")
    ap.add_argument('--slurm_gpus', type=int, help="GPUs per run, one process each through torchrun (default 1)")
    ap.add_argument('--slurm_cpus', type=int, help="CPU cores per run, also its thread count (default 8)")
    ap.add_argument('--no-run', action='store_true', help="only analyse the logs under --out")
    ap.add_argument('--runs', nargs='+', metavar='DIR', help="analyse these run dirs instead (no sweep)")
    ap.add_argument('--plots_dir', help="where plots and results.md go (default: --out)")
    ap.add_argument('--label', action='append', default=[], metavar='STEM=NAME', help="rename a variant (repeatable)")
    ap.add_argument('--baseline', help="variant drawn as reference and diffed against "
                                       "(default: the first with r=1 and a plain signature)")
    ap.add_argument('--n_boot', type=int, default=1000, help="bootstrap resamples for fit CIs (default 1000)")
    ap.add_argument('--fit_seed', type=int, default=0, help="seed of the fit bootstrap (default 0)")
    args = ap.parse_args(argv)

    plots_dir = args.plots_dir or args.out
    if plots_dir is None:
        raise SystemExit("compare.py: no output directory; give --out or --plots_dir")
    labels = parse_pairs(args.label, '--label')
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
            budgets = parse_list(args.budgets, float, '--budgets')
            seeds = parse_list(args.seeds, int, '--seeds')
            lrs = parse_list(args.lrs, float, '--lrs') if args.lrs else None
            overrides = parse_pairs(args.set, '--set')
            if lrs and 'learning_rate' in overrides:
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
        dirs = [os.path.dirname(p) for p in glob.glob(os.path.join(args.out, '**', 'log.jsonl'), recursive=True)]
    analyse(dirs, plots_dir, labels, args.baseline, args.n_boot, args.fit_seed)

if __name__ == '__main__':
    main()
