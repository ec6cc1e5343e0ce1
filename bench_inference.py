"""
Inference benchmarks of the baseline and each variant side by side, in one process: sharing the KV cache (--kv),
cached generation against recomputing (--generate), depth past the trained r (--depth) and per-token early exit
(--exit). They print, they assert nothing. Training-step time against FLOPs (and MFU) is bench.py's.

    python bench_inference.py --kv out/arena_baseline out/arena_rins --eval_r=[2,3]
    python bench_inference.py --generate config/arena_baseline.py config/arena_rins.py --vocab_size=96
    python bench_inference.py --depth out/arena_rins out/arena_latent --split=test --plot=depth.png
    python bench_inference.py --exit out/arena_rins out/arena_latent --max_r=[2,6] --split=test --plot=exit.png
    python bench_inference.py --help                               # every key; train.py's keys apply too

--kv: KV-cache sharing on trained checkpoints (bare arguments or --out_dir: run directories holding ckpt.pt),
at each depth of eval_r (if given, else the depth each model was trained at). kv_share 'first'/'last' lets
rounds > 1 of the recursed unit attend to the first/last round's keys and values of the same block for past
positions: less memory, but a train/test mismatch (training always gives each round its own). val loss is
teacher-forced, one token per forward call through the caches, on `windows` evenly spaced windows of block_size
tokens of the checkpoint's val.bin; for 'none' the parallel forward's loss on the same windows is printed beside
it (they must agree to float rounding). KV B/tok: bytes of keys and values stored per token (and sequence),
measured from the cache tensors after the evaluation. gen tok/s: greedy generation, batch 1, a one-token prompt
and `new_tokens` new tokens, median over `repeats` interleaved rounds; = none: leading generated tokens equal
to kv_share='none''s at the same depth.

--generate: greedy generation (batch 1, one-token prompt, `new_tokens` new tokens) with the per-application KV
cache vs recomputing the whole context every token (use_cache=False: crop to block_size, full forward, last
position's logits, which is exactly nanoGPT's generate, so it is one row). Bare arguments are config files
(random weights, seed) or run directories (trained weights); none: the arena baseline and A^2B. time x:
median of per-round ratios of time per token to the first model's cached row (+- half the interquartile range).

--depth: deeper (and shallower) than trained. Test loss of each run directory at every r from 1 to 4x the r it
was trained with (its mean r for sampled rounds), teacher-forced on `windows` evenly spaced windows of the `split`,
beside the inference FLOPs per token (flops_per_token(train=False, r)); a model without '^r' is one point. Rounds
past a model's per-round adapters run with zero adapters (exits.with_rounds). The latent noise starts from `seed`.

--exit: per-token early exit (exits.py) against fixed depth on the same weights and windows. For each recursive
run directory, at max_r (one per run; 0 or none = its r): fixed r = 1..max_r; exits.evaluate at every threshold
of thresholds_latent and thresholds_kl; a random-exit control per exit point (the same rounds, shuffled over the
tokens: the same histogram, no test); the oracle (per token the fewest rounds whose fixed-r loss is within `eps`
of max_r's, or whose argmax equals max_r's), scored at fixed r and under the exit rule; AB runs are the
compute-matched baseline. MFLOP/tok: executed per token, tests included (exits.flops, full-square attention as
flops_per_token). below line: the fixed-r curve's loss at the same FLOPs (linear between integer r) minus the
point's (> 0: the exit helps). saves: 1 - FLOPs / the FLOPs at which the fixed-r curve first reaches the same loss.
Then wall time of greedy decoding (`prompt` tokens of the split, `new_tokens` new ones) at batch 1 and at batch
`batch`, masked (every row runs until its last token stops) and compact (only rows still running run a round), for
fixed r and, per test, the exit at threshold 0 (the machinery's own overhead at full depth), the one with the largest
saving within +0.01 nats of max_r and the one nearest the fixed-r line; executed FLOPs there come from the rounds
decoding used. `lock`: a lock file held while timing, so other benchmarks on the machine neither overlap nor wait
for the (untimed) loss sweeps.

Timing, memory and the header as in bench.py (its docstring: peak MB, timer 'wall' or 'cpu'; `repeats` interleaved
rounds). cache KB (--generate): bytes of the keys and values the caches hold at the end, exact on any device.
"""

import fcntl
import os
import sys
from contextlib import nullcontext
from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import torch
from torch.nn import functional as F

import grammar
from analysis import plan_name
from bench import defaults, header, here, load, median_spread, peak_mb, setup, timed_rounds
from checkpoint import load_checkpoint, load_model_state
from exits import TESTS, Exits, evaluate, flops, summary, with_rounds
from model import GPT, GPTConfig

# --- inference --- (repeats and timer are bench.py's; the other keys under 'other' are train.py's)
windows = 16  # --kv: val windows of block_size tokens for the teacher-forced loss
new_tokens = 128  # --kv, --generate, --exit: greedy tokens generated per timed call (at most block_size)
split = "val"  # --kv, --depth, --exit: the data split scored ('val' or 'test')
max_r = []  # --exit: the most rounds per token, one per run directory in order; [] or 0 = its trained r
thresholds_latent = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]  # --exit: latent test thresholds
thresholds_kl = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]  # --exit: kl test thresholds
eps = 0.01  # --exit: the oracle's tolerance, nats per token
batch = 16  # --exit: rows of the batched decoding
prompt = 32  # --exit: prompt tokens per row in the timed decoding (prompt + new_tokens <= block_size)
plot = ""  # --depth, --exit: path of the figure (PNG); '' = none
lock = ""  # --exit: a file to hold an exclusive flock on while decoding is timed (a shared machine's timing lock)

keys = lambda: defaults(__file__, windows=windows, new_tokens=new_tokens, split=split, max_r=max_r,
                        thresholds_latent=thresholds_latent, thresholds_kl=thresholds_kl, eps=eps, batch=batch,
                        prompt=prompt, plot=plot, lock=lock)  # a fresh dict of every key bench_inference.py takes


def fail(why: str):
    sys.exit(f"bench_inference.py: {why}")  # bad input: one line, no traceback


# -----------------------------------------------------------------------------
# --kv and --generate: the KV cache and generation


def bench_kv(args, overrides):
    run, given = load(keys(), None, overrides), {a.split("=")[0][2:] for a in overrides}
    runs = args + ([run["out_dir"]] if "out_dir" in given else [])
    if not runs:
        fail("--kv needs trained run directories holding ckpt.pt (bare arguments or --out_dir=DIR)")
    env = setup(run, compiles=False)
    models = load_models(runs, overrides, env, configs=False)
    check_inference(run, models)
    rows, data_lines = [], {}
    for m in models:
        plan, T = m.model.plan, m.model.config.block_size
        rs = (run["eval_r"] if "eval_r" in given else [plan.r]) if plan.recursive else [None]
        for r in rs:
            try:
                plan.check_r(r)
            except ValueError as e:
                fail(f"{m.name}: {e}")
        x, y, path, _ = val_windows(m.data, run["windows"], T, env.device, run["split"])
        data_lines[path] = f"val loss on {run['windows']} evenly spaced windows x {T} tokens of {path}"
        for r in rs:
            with torch.no_grad(), env.autocast:
                parallel = m.model(x, y, r=r)[1].item()
            for share in ("none", "first", "last") if plan.recursive else ("none",):
                with env.autocast:
                    loss, stored = teacher_forced_loss(m.model, x, y, r, share)
                rows.append(SimpleNamespace(m=m, r=r, share=share, loss=loss, stored=stored,
                                            parallel=parallel if share == "none" else None,
                                            api=m.model.kv_cache_bytes_per_token(share, r, getattr(torch, env.dtype))))
    n = run["new_tokens"]
    gen = lambda v: greedy(v.m.model, n, v.r, kv_share=v.share)
    with env.autocast:
        for v in rows:  # warm-up, and the tokens to compare with 'none'
            v.tokens = gen(v)
        load_avg = timed_rounds(rows, gen, run, env)

    header(run, env, load_avg, list(data_lines.values()) + [
        f"gen tok/s: greedy, batch 1, {n} new tokens after a one-token prompt, median of {run['repeats']} "
        "interleaved rounds",
        "kv_share 'first'/'last' are a TRAIN/TEST MISMATCH: training gives every round its own keys and values"])
    print("\n| model | trained r | r | kv_share | val loss | vs none | parallel | KV B/tok | KV x | gen tok/s | +-% "
          "| = none | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for v in rows:
        none = next(w for w in rows if w.m is v.m and w.r == v.r and w.share == "none")
        t, dt = median_spread(v.times)
        same = next((i for i, (a, b) in enumerate(zip(v.tokens, none.tokens)) if a != b), len(v.tokens))
        note = "reference (no '^r' unit)" if v.r is None else "" if v.share == "none" else \
            "same as none (r=1)" if v.r == 1 else "train/test mismatch"
        print(f"| {v.m.name} | {v.m.model.plan.r if v.r else '-'} | {v.r or '-'} | {v.share} | {v.loss:.4f} | "
              f"{v.loss - none.loss:+.4f} | {'' if v.parallel is None else f'{v.parallel:.4f}'} | {v.stored:,.0f} | "
              f"{v.stored / none.stored:.2f} | {n / t:,.0f} | {100 * dt / t:.1f} | {same}/{n} | {note} |")
    nones = [v for v in rows if v.share == "none"]
    worst = max(abs(v.loss - v.parallel) for v in nones)
    print(f"\ncached (kv_share='none', token by token) vs parallel forward: max |loss difference| {worst:.2e} over "
          f"{len(nones)} rows ({'float rounding' if worst < 1e-4 else 'NOT EQUAL: a bug in the cache'})")
    off = [v for v in rows if v.stored != v.api]
    print("KV B/tok measured from the cache tensors " + ("= kv_cache_bytes_per_token() in every row" if not off else
          f"!= kv_cache_bytes_per_token() in {len(off)} rows (e.g. {off[0].stored:.0f} vs {off[0].api}): a bug"))


def bench_generate(args, overrides):
    run = load(keys(), None, overrides)
    env = setup(run, compiles=False)
    models = load_models(args or [os.path.join(here, f"config/arena_{n}.py") for n in ("baseline", "rins")],
                         overrides, env)
    check_inference(run, models)
    n = run["new_tokens"]
    variants = [SimpleNamespace(m=m, use_cache=c) for m in models for c in (True, False)]
    gen = lambda v: greedy(v.m.model, n, use_cache=v.use_cache)
    with env.autocast:
        for v in variants:  # warm-up, and the tokens that must agree with and without the cache
            v.tokens = gen(v)
        load_avg = timed_rounds(variants, gen, run, env)
        for v in variants:
            v.peak_mb = peak_mb(lambda: gen(v), env)
            caches = v.m.model.new_caches() if v.use_cache else []
            if caches:  # what generate's caches hold at the end: the prompt and all but the last new token
                with torch.no_grad():
                    v.m.model(torch.tensor([[0] + v.tokens[:-1]], device=env.device), caches=caches)
            v.cache_kb = sum(c.k.nbytes + c.v.nbytes for c in caches) / 1024

    c = models[0].model.config
    header(run, env, load_avg, [
        f"greedy, batch 1, {n} new tokens after a one-token prompt; median of {run['repeats']} interleaved rounds",
        "no cache = use_cache=False = nanoGPT's generate (crop to block_size, full forward, last logits): "
        "one code path, one row",
        f"shape of {models[0].name}: n_layer={c.n_layer} n_head={c.n_head} n_embd={c.n_embd} "
        f"block_size={c.block_size} vocab_size={c.vocab_size}"])
    print("\n| model | apps | method | tok/s | +-% | time x | +- | cache KB | peak MB |\n" + "|---" * 9 + "|")
    for v in variants:
        t, dt = median_spread(v.times)
        ratio, dratio = median_spread([a / b for a, b in zip(v.times, variants[0].times)])
        print(f"| {v.m.name} | {len(v.m.model.plan.layers())} | {'KV cache' if v.use_cache else 'no cache'} | "
              f"{n / t:,.0f} | {100 * dt / t:.1f} | {ratio:.3f} | {dratio:.3f} | {v.cache_kb:,.1f} | {v.peak_mb:.1f} |")
    for m in models:
        with_cache, without = (v.tokens for v in variants if v.m is m)
        print(f"{m.name}: greedy tokens with the cache {'==' if with_cache == without else '!='} without")


@torch.no_grad()
def teacher_forced_loss(model: GPT, x, y, r: int | None = None, kv_share: str = "none") -> tuple[float, float]:
    """Next-token loss with x fed one token per forward call through fresh KV caches, as generation reads it,
    and the bytes of keys and values the caches then hold per token (per sequence)."""
    caches = model.new_caches(r, kv_share)
    logits = torch.cat([model(x[:, t:t + 1], r=r, caches=caches)[0] for t in range(x.size(1))], dim=1)  # (B, T, V)
    stored = sum(c.k.nbytes + c.v.nbytes for c in caches if c.owner is None)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()).item(), stored / x.numel()


def greedy(model: GPT, n: int, r: int | None = None, use_cache: bool = True, kv_share: str = "none"):
    """n greedy tokens after a one-token prompt (token 0), batch 1."""
    idx = torch.zeros((1, 1), dtype=torch.long, device=model.lm_head.weight.device)
    return model.generate(idx, n, temperature=0, r=r, use_cache=use_cache, kv_share=kv_share)[0, 1:].tolist()


# -----------------------------------------------------------------------------
# --depth and --exit: depth at inference (exits.py)


def bench_depth(args, overrides):
    run, env, models = inference_setup(args, overrides, "--depth")
    rows, data_lines = [], {}
    for m in models:
        plan, T = m.model.plan, m.model.config.block_size
        x, y, path, extra = val_windows(m.data, run["windows"], T, env.device, run["split"])
        data_lines[path] = f"{run['split']} loss on {run['windows']} evenly spaced windows x {T} tokens of {path}"
        m.floor = extra["nll"].mean().item() if extra else None
        if extra:
            data_lines[path] += f" (chunk starts; the true process's floor on them {m.floor:.4f})"
        for r in range(1, 4 * plan.r + 1) if plan.recursive else [None]:
            model = with_rounds(m.model, r) if r else m.model
            loss = token_losses(model, x, y, r, env, run["seed"])[0].mean().item()
            rows.append(SimpleNamespace(m=m, r=r, loss=loss, flops=model.flops_per_token(train=False, r=r),
                                        padded=model is not m.model))
    header(run, env, (None, None), list(data_lines.values()) + [
        "MFLOP/token: inference, flops_per_token(train=False, r) (full-square attention at block_size)",
        f"the latent noise and every window set are the same for every r (seed {run['seed']})"])
    print(f"\n| model | plan | trained r | r | {run['split']} loss | - floor | vs trained r | MFLOP/token | note |\n"
          + "|---" * 9 + "|")
    for v in rows:
        plan, trained = v.m.model.plan, next(w for w in rows if w.m is v.m and w.r in (v.m.model.plan.r, None))
        best = min((w for w in rows if w.m is v.m), key=lambda w: w.loss)
        note = ", ".join(filter(None, ["trained" if v.r == plan.r else "", "best" if v is best else "",
                                       f"rounds {plan.max_r + 1}+ without adapters" if v.padded else ""]))
        print(f"| {v.m.name} | {v.m.plan_name} | {plan.r if plan.recursive else '-'} | {v.r or '-'} | "
              f"{v.loss:.4f} | {'' if v.m.floor is None else f'{v.loss - v.m.floor:.4f}'} | "
              f"{v.loss - trained.loss:+.4f} | {v.flops / 1e6:.3f} | {note} |")
    if run["plot"]:
        plot_depth(rows, run)


def plot_depth(rows, run):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (by_r, by_flops) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for m in models_of(rows):
        pts = [v for v in rows if v.m is m]
        if pts[0].r is None:
            for ax in (by_r, by_flops):
                ax.axhline(pts[0].loss, color="k", ls=":", label=m.plan_name)
            continue
        line = by_r.plot([v.r for v in pts], [v.loss for v in pts], marker="o", label=m.plan_name)[0]
        by_flops.plot([v.flops / 1e6 for v in pts], [v.loss for v in pts], marker="o", color=line.get_color())
        trained = next(v for v in pts if v.r == m.model.plan.r)
        for ax, xv in ((by_r, trained.r), (by_flops, trained.flops / 1e6)):
            ax.plot([xv], [trained.loss], marker="*", ms=14, color=line.get_color(), ls="none")
    by_r.set(xlabel="rounds r at inference", ylabel=f"{run['split']} loss (nats/token)",
             title="Depth at inference (star: the trained r)")
    by_flops.set(xlabel="inference MFLOP/token", ylabel=f"{run['split']} loss (nats/token)",
                 title="The same points against compute")
    lo = min(v.loss for v in rows)
    for ax in (by_r, by_flops):
        ax.set_ylim(lo - 0.02, lo + 0.6)  # the far deeper points of fixed-depth models run off the top
        ax.grid(alpha=0.3)
    fig.legend(*by_r.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize="small")
    fig.savefig(run["plot"], dpi=120)
    print(f"wrote {run['plot']}")


def bench_exit(args, overrides):
    run, env, models = inference_setup(args, overrides, "--exit")
    recursive = [m for m in models if m.model.plan.recursive]
    if run["max_r"] and len(run["max_r"]) != len(recursive):
        fail(f"max_r={run['max_r']} needs one value per recursive run directory ({len(recursive)})")
    if run["prompt"] + run["new_tokens"] > min(m.model.config.block_size for m in models):
        fail(f"prompt + new_tokens = {run['prompt'] + run['new_tokens']} exceeds block_size")
    rows, timed, data_lines, seed, passes = [], [], {}, run["seed"], {}
    for m in models:
        T = m.model.config.block_size
        x, y, path, extra = val_windows(m.data, run["windows"], T, env.device, run["split"])
        data_lines[path] = f"{run['split']} loss on {run['windows']} evenly spaced windows x {T} tokens of {path}"
        m.prompts, m.depth = x[:, :run["prompt"]], extra.get("depth")
        if m not in recursive:  # the compute-matched baseline: one point
            rows.append(SimpleNamespace(m=m, kind="baseline", setting="-", loss=token_losses(
                m.model, x, y, None, env, seed)[0].mean().item(), rounds=None, flops=m.model.flops_per_token(False)))
            continue
        R = (run["max_r"][recursive.index(m)] if run["max_r"] else 0) or m.model.plan.r
        model = m.model = with_rounds(m.model, R)
        m.max_r, per_r = R, [token_losses(model, x, y, r, env, seed) for r in range(1, R + 1)]
        add = lambda kind, setting, loss, rounds, test: rows.append(SimpleNamespace(
            m=m, kind=kind, setting=setting, loss=loss.mean().item(), rounds=rounds, windows=loss.mean(1),
            flops=flops(model, rounds, test, R).mean().item()))
        for r, (loss, _) in enumerate(per_r, 1):
            add("fixed r", str(r), loss, torch.full_like(loss, r, dtype=torch.long), None)
        for name, same in (("oracle", lambda r: per_r[r][0] <= per_r[-1][0] + run["eps"]),
                           ("oracle argmax", lambda r: per_r[r][1] == per_r[-1][1])):
            first = torch.stack([same(r) for r in range(R)]).int().argmax(0) + 1  # the fewest rounds that match
            at_fixed = torch.stack([loss for loss, _ in per_r]).gather(0, first[None] - 1)[0]
            add(name, f"eps {run['eps']:g}, fixed-r losses" if name == "oracle" else "fixed-r argmax", at_fixed,
                first, None)
            add(name, "its rounds under the exit rule", exit_losses(model, x, y, env, seed, "given", max_r=R,
                                                                   given=first)[0], first, None)
        for test in TESTS:
            for thr in run[f"thresholds_{test}"]:
                loss, rounds, n = exit_losses(model, x, y, env, seed, test, thr, R)
                passes[test] = max(passes.get(test, 0), n)
                add(f"exit {test}", f"{thr:g}", loss, rounds, test)
                shuffled = rounds.flatten()[torch.randperm(rounds.numel(), generator=torch.Generator().manual_seed(
                    seed))].view(rounds.shape)
                add(f"random {test}", f"as {thr:g}", exit_losses(model, x, y, env, seed, "given", max_r=R,
                                                                 given=shuffled)[0], shuffled, None)
        full = next(v for v in rows if v.m is m and v.kind == "fixed r" and v.setting == str(R))
        line = fixed_curve(rows, m)[0]
        for test in TESTS:  # timed: threshold 0, the biggest saving within +0.01 nats of max_r, the nearest the line
            mine = [v for v in rows if v.m is m and v.kind == f"exit {test}"]
            cheap = min((v for v in mine if v.loss <= full.loss + 0.01), key=lambda v: v.flops, default=None)
            near = max(mine, key=lambda v: (fixed_line(line, v.flops) or float("-inf")) - v.loss, default=None)
            for thr in dict.fromkeys([0.0] + [float(v.setting) for v in (cheap, near) if v]):
                timed += [SimpleNamespace(m=m, test=test, thr=thr, r=R, batch=b, mode=mode)
                          for b, mode in ((1, "masked"), (run["batch"], "masked"), (run["batch"], "compact"))]
        timed += [SimpleNamespace(m=m, test=None, thr=None, r=r, batch=b, mode="-")
                  for r in range(1, R + 1) for b in (1, run["batch"])]
    load_avg = time_decoding(timed, run, env)
    header(run, env, load_avg, list(data_lines.values()) + [
        f"exits: exits.evaluate, every token may stop (no prompt); oracle eps {run['eps']:g} nats; "
        f"random: the exit's rounds shuffled over tokens (seed {seed})",
        "evaluate() passes per chunk of 64 windows, at most: " + ", ".join(f"{t} {n}" for t, n in passes.items()),
        f"decoding: greedy, {run['prompt']}-token prompts from the split's windows, {run['new_tokens']} new tokens, "
        f"median of {run['repeats']} interleaved rounds"])
    exit_tables(rows, timed, run)
    depth_rounds(rows)
    if run["plot"]:
        plot_exit(rows, run)


def depth_rounds(rows):
    """On a grammar: the mean rounds per nesting depth of the predicted token, for the oracles and, per test, the
    exit setting that saves most within +0.01 nats of max_r (do deeper positions take more rounds?)."""
    for m in [m for m in models_of(rows) if m.model.plan.recursive and m.depth is not None]:
        full, depths = fixed_curve(rows, m)[1], m.depth.unique().tolist()
        picked = [v for v in rows if v.m is m and v.kind.startswith("oracle")] + [
            min(mine, key=lambda v: v.flops) for test in TESTS
            if (mine := [v for v in rows if v.m is m and v.kind == f"exit {test}" and v.loss <= full.loss + 0.01])]
        print(f"\n{m.name}: mean rounds by nesting depth of the predicted token (0: the '.' ending a sentence); "
              "share of tokens in the last row\n\n| method | setting | loss | "
              + " | ".join(map(str, depths)) + " |\n" + "|---" * (3 + len(depths)) + "|")
        for v in picked:
            print(f"| {v.kind} | {v.setting} | {v.loss:.4f} | "
                  + " | ".join(f"{v.rounds[m.depth == k].double().mean():.2f}" for k in depths) + " |")
        print("| share | | | " + " | ".join(f"{(m.depth == k).double().mean():.3f}" for k in depths) + " |")


def time_decoding(timed, run, env):
    """Greedy decoding of every timed variant: its rounds (warm-up) and its times (timed_rounds)."""
    def gen(v):
        v.exits = Exits(v.m.model, v.test, v.thr, v.r, v.mode if v.batch > 1 else "masked") if v.test else None
        return v.m.model.generate(v.m.prompts[:v.batch], run["new_tokens"], temperature=0, r=v.r, exits=v.exits)

    with env.autocast, open(run["lock"], "a") if run["lock"] else nullcontext() as held:
        if held:
            fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes
        for v in timed:
            gen(v)  # warm-up; greedy, so every call decodes the same tokens and rounds
            steps = torch.cat(v.exits.history, dim=1) if v.test else torch.full(
                (v.batch, run["new_tokens"] - 1), v.r)  # (rows, decoding steps)
            model, test = v.m.model, v.test
            if v.mode == "masked" and v.batch > 1:  # every row runs until the step's last token stops
                v.flops = flops(model, steps.max(0).values, test, v.m.max_r).mean().item()
            else:
                v.flops = flops(model, steps, test, v.m.max_r).mean().item()
            v.rounds = steps.double().mean().item()
        return timed_rounds(timed, gen, run, env)


def exit_tables(rows, timed, run):
    print(f"\n| model | plan | max_r | method | setting | {run['split']} loss | vs max_r | mean rounds | p90 | "
          "rounds histogram | MFLOP/tok | saves vs max_r | below line | saves at equal loss |\n" + "|---" * 14 + "|")
    for v in rows:
        m = v.m
        if v.kind == "baseline":
            print(f"| {m.name} | {m.plan_name} | - | baseline | - | {v.loss:.4f} | | | | | "
                  f"{v.flops / 1e6:.3f} | | | |")
            continue
        line, full = fixed_curve(rows, m)
        s, at, reach = summary(v.rounds), fixed_line(line, v.flops), fixed_flops_at(line, v.loss)
        below = "" if v.kind == "fixed r" else "beyond max_r" if at is None else f"{at - v.loss:+.4f}"
        saves = "" if v.kind == "fixed r" else "no r reaches it" if reach is None else f"{1 - v.flops / reach:+.1%}"
        print(f"| {m.name} | {m.plan_name} | {m.max_r} | {v.kind} | {v.setting} | {v.loss:.4f} | "
              f"{v.loss - full.loss:+.4f} | {s['mean']:.2f} | {s['p90']:.0f} | "
              f"{' '.join(f'{k}:{p:.0%}' for k, p in s['hist'].items())} | {v.flops / 1e6:.3f} | "
              f"{1 - v.flops / full.flops:.1%} | {below} | {saves} |")
    print("\n| model | decoding | batch | mode | mean rounds | MFLOP/tok | FLOP saving | tok/s | +-% | time saving |\n"
          + "|---" * 10 + "|")
    for v in timed:
        t, dt = median_spread(v.times)
        flop_save, time_save = savings(v, timed)
        print(f"| {v.m.name} | {f'exit {v.test} {v.thr:g}' if v.test else f'fixed r={v.r}'} | {v.batch} | {v.mode} | "
              f"{v.rounds:.2f} | {v.flops / 1e6:.3f} | {flop_save:.1%} | {v.batch * run['new_tokens'] / t:,.0f} | "
              f"{100 * dt / t:.1f} | {time_save:.1%} |")
    print("\nTargets (issue 24), per model:")
    for m in [m for m in models_of(rows) if m.model.plan.recursive]:
        line, full = fixed_curve(rows, m)
        exits = [v for v in rows if v.m is m and v.kind.startswith("exit")]
        best = max((v for v in exits if v.loss <= full.loss + 0.01), key=lambda v: -v.rounds.double().mean())
        cut = 1 - best.rounds.double().mean().item() / m.max_r  # threshold 0 (no exit) is always within 0.01
        gap, below = max((((fixed_line(line, v.flops) or float("-inf")) - v.loss, v) for v in exits),
                         key=lambda g: g[0])
        lo, hi = gap_ci(rows, m, below) if gap > float("-inf") else (gap, gap)
        fixed = min(int(v.setting) for v in rows if v.m is m and v.kind == "fixed r" and v.loss <= full.loss + 0.01)
        print(f"{m.name}: {cut:.0%} fewer unit applications within +0.01 nats of max_r ({best.kind} {best.setting}; "
              f"fixed r={fixed} alone: {1 - fixed / m.max_r:.0%})"
              f" -> {'met' if cut >= 0.25 else 'NOT met'} (target 25%); best point {gap:+.4f} [{lo:+.4f}, {hi:+.4f}] "
              f"nats below the fixed-r line ({below.kind} {below.setting}) -> {'met' if gap >= 0.005 else 'NOT met'} "
              "(target 0.005)")
        for v in timed:
            if v.m is m and v.test and v.thr and (v.batch == 1 or v.mode == "compact"):
                flop_save, time_save = savings(v, timed)
                goal = abs(time_save - flop_save) <= 0.05 if v.batch == 1 else time_save >= flop_save / 2
                print(f"  exit {v.test} {v.thr:g}, batch {v.batch} {v.mode}: time saving {time_save:.1%} vs "
                      f"FLOP saving {flop_save:.1%} -> {'met' if goal else 'NOT met'} (target: "
                      + ("within 5 points)" if v.batch == 1 else "at least half)"))


def fixed_curve(rows, m):
    """The fixed-r points (flops, loss) of model m, sorted, and its row at max_r."""
    fixed = [v for v in rows if v.m is m and v.kind == "fixed r"]
    return sorted((v.flops, v.loss) for v in fixed), next(v for v in fixed if v.setting == str(m.max_r))


def fixed_line(points, f):
    """The fixed-r curve's loss at FLOPs f (linear between the points (flops, loss)); None outside it."""
    for (f0, l0), (f1, l1) in zip(points, points[1:]):
        if f0 <= f <= f1:
            return l0 + (l1 - l0) * (f - f0) / (f1 - f0)
    return points[0][1] if abs(f - points[0][0]) < 1e-9 * f else None


def fixed_flops_at(points, loss):
    """The fewest FLOPs at which the fixed-r curve reaches `loss` (linear between points); None if it never does."""
    if points[0][1] <= loss:
        return points[0][0]
    for (f0, l0), (f1, l1) in zip(points, points[1:]):
        if l1 <= loss:
            return f0 + (f1 - f0) * (l0 - loss) / (l0 - l1)
    return None


def gap_ci(rows, m, v, n_boot=2000):
    """95% bootstrap interval over windows of v's distance below the fixed-r line (paired: the same windows)."""
    fixed = sorted((w for w in rows if w.m is m and w.kind == "fixed r"), key=lambda w: w.flops)
    a, b = next(((a, b) for a, b in zip(fixed, fixed[1:]) if a.flops <= v.flops <= b.flops), (fixed[0], fixed[0]))
    t = (v.flops - a.flops) / (b.flops - a.flops) if b is not a else 0.0
    d = (1 - t) * a.windows + t * b.windows - v.windows  # (windows,)
    i = torch.randint(len(d), (n_boot, len(d)), generator=torch.Generator().manual_seed(0))
    return tuple(d[i].mean(1).quantile(torch.tensor([0.025, 0.975])).tolist())


def savings(v, timed):
    """(FLOP saving, time saving) of a timed decoding against fixed max_r at the same batch."""
    ref = next(w for w in timed if w.m is v.m and w.test is None and w.r == v.m.max_r and w.batch == v.batch)
    return 1 - v.flops / ref.flops, 1 - median_spread(v.times)[0] / median_spread(ref.times)[0]


def plot_exit(rows, run):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = [m for m in models_of(rows) if m.model.plan.recursive]
    base = [v for v in rows if v.kind == "baseline"]
    cols = min(3, len(models))
    rows_ = -(-len(models) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(6 * cols, 4.8 * rows_), layout="constrained", squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_axis_off()
    style = {"fixed r": dict(color="k", marker="o", ls="-", lw=2), "exit latent": dict(color="C0", marker="s"),
             "exit kl": dict(color="C1", marker="D"), "random latent": dict(color="C0", marker="x", ls="none"),
             "random kl": dict(color="C1", marker="x", ls="none")}
    for ax, m in zip(axes.flat, models):
        mine = [v for v in rows if v.m is m]
        full = fixed_curve(rows, m)[1]
        for kind, st in style.items():  # exits in threshold order (fewer rounds along the line), fixed r by r
            pts = [(v.flops / 1e6, v.loss) for v in mine if v.kind == kind]
            if pts:
                ax.plot(*zip(*pts), label=kind, ms=5, **dict(lw=0.8) | st)
        for v in mine:
            if v.kind == "fixed r":
                ax.annotate(f"r={v.setting}", (v.flops / 1e6, v.loss), textcoords="offset points", xytext=(4, 4))
            if v.kind == "oracle":
                rule = "rule" in v.setting
                ax.plot([v.flops / 1e6], [v.loss], marker="*", ms=13, ls="none", color="C2",
                        mfc="C2" if rule else "none", label=f"oracle (eps {run['eps']:g}), "
                        + ("scored under the exit rule" if rule else "fixed-r losses"))
        for b in base:
            ax.plot([b.flops / 1e6], [b.loss], marker="P", ms=11, color="0.4", ls="none",
                    label=f"compute-matched baseline {b.m.model.config.signature}")
        ys = [v.loss for v in mine if v.kind in ("fixed r", "exit latent", "exit kl")] + [b.loss for b in base]
        ax.set_ylim(min(ys) - 0.01, min(max(ys), full.loss + 0.15) + 0.01)
        ax.set(xlabel="executed MFLOP/token (exit tests included)", ylabel=f"{run['split']} loss (nats/token)",
               title=f"{m.plan_name}, max_r {m.max_r}")
        ax.grid(alpha=0.3)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize="small")
    fig.savefig(run["plot"], dpi=120)
    print(f"wrote {run['plot']}")


@torch.no_grad()
def token_losses(model: GPT, x, y, r, env, seed: int, chunk: int = 64):
    """Per-token losses and argmax predictions (windows, T) of the parallel forward at r, the random stream (latent
    noise) seeded once for all chunks."""
    torch.manual_seed(seed)
    losses, top = [], []
    for xs, ys in zip(x.split(chunk), y.split(chunk)):
        with env.autocast:
            logits, _ = model(xs, ys, r=r)
        losses.append(F.cross_entropy(logits.flatten(0, 1).float(), ys.flatten(), reduction="none").view(ys.shape))
        top.append(logits.argmax(-1))
    return torch.cat(losses), torch.cat(top)


def exit_losses(model: GPT, x, y, env, seed: int, test: str, threshold: float = 0.0, max_r: int = 1, given=None,
                chunk: int = 64):
    """Per-token losses and rounds (windows, T) under exits.evaluate, in chunks, seeded as token_losses, and the
    most forward passes evaluate() took for a chunk (1 but for kl)."""
    torch.manual_seed(seed)
    losses, rounds, passes = [], [], 0
    for i, (xs, ys) in enumerate(zip(x.split(chunk), y.split(chunk))):
        exits = Exits(model, test, threshold, max_r, given=None if given is None else given[i * chunk:][:len(xs)])
        with env.autocast:
            loss, ran, _ = evaluate(model, xs, ys, exits)
        losses.append(loss)
        rounds.append(ran)
        passes = max(passes, len(exits.history))
    return torch.cat(losses), torch.cat(rounds), passes


# -----------------------------------------------------------------------------
# shared by the modes: the models, their data, the checks


def inference_setup(args, overrides, need):
    run = load(keys(), None, overrides)
    env = setup(run, compiles=False)
    if not args:
        fail(f"{need} needs trained run directories holding ckpt.pt (bare arguments)")
    models = load_models(args, overrides, env, configs=False)
    check_inference(run, models)
    if run["split"] not in ("val", "test"):
        fail(f"split='{run['split']}' is not one of val, test")
    return run, env, models


def load_models(args, overrides, env, configs=True):
    """One model per bare argument: a run directory (its ckpt.pt: trained weights) or, where `configs`, a config
    file (random weights from seed). Named by the shortest path tails that tell them apart."""
    models = []
    for arg in args:
        if os.path.isdir(arg):
            path = os.path.join(arg, "ckpt.pt")
            ckpt = load_checkpoint(path, need=("config",))  # config names the data set
            try:
                model = GPT(GPTConfig(**ckpt["model_args"]))
            except (TypeError, ValueError) as e:
                fail(f"{path} has model_args this model.py cannot build ({e})")
            load_model_state(model, ckpt["model"], path)
            data = ckpt["config"]
        elif configs and os.path.isfile(arg):
            c = load(keys(), arg, overrides)
            torch.manual_seed(c["seed"])
            model, data = GPT(GPTConfig(**{f.name: c[f.name] for f in fields(GPTConfig)})), None
        else:
            fail(f"'{arg}' is not a run directory (holding ckpt.pt)" + (" or a config file" * configs))
        models.append(SimpleNamespace(model=model.eval().to(env.device), data=data, path=os.path.normpath(arg),
                                      plan_name=plan_name(vars(model.config))))  # the plan trained, before with_rounds
    for k in range(1, 1 + max(len(m.path.split(os.sep)) for m in models)):
        names = [os.sep.join(m.path.split(os.sep)[-k:]) for m in models]
        if len(set(names)) == len(names):
            break
    for m, name in zip(models, names):
        m.name = name
    return models


def val_windows(data: dict, n: int, T: int, device, split: str = "val"):
    """n evenly spaced windows (x, y) of T tokens of the checkpoint's data set's split (val.bin), its path, and for a
    grammar (windows then start at evenly spaced chunk starts, where the true process's floor holds) the targets'
    nesting depth and true -ln p as {'depth', 'nll'} (n, T) tensors; {} otherwise."""
    root = os.path.join(data.get("data_dir", "data"), data["dataset"])
    path = os.path.join(root, f"{split}.bin")
    if not os.path.isfile(path):
        fail(f"{path} is missing; run: python prepare.py {data['dataset']} (from the repository root)")
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    if len(tokens) <= T:
        fail(f"{path} has {len(tokens)} tokens, fewer than block_size + 1 = {T + 1}")
    chunk = grammar.chunk_of(root)
    starts = chunk * np.linspace(0, len(tokens) // chunk - 1, n).astype(np.int64) if chunk else \
        np.linspace(0, len(tokens) - T - 1, n).astype(np.int64)
    x, y = (torch.from_numpy(np.stack([tokens[i + s:i + s + T] for i in starts]).astype(np.int64)) for s in (0, 1))
    extra = {k: torch.from_numpy(a) for k, a in grammar.targets(root, split, starts, T).items()} if chunk else {}
    return x.to(device), y.to(device), path, extra


def check_inference(run, models):
    for key in ("repeats", "windows", "new_tokens"):
        if type(run[key]) is not int or run[key] < 1:
            fail(f"{key}={run[key]!r} is not allowed; need a whole number >= 1")
    for m in models:
        if run["new_tokens"] > m.model.config.block_size:
            fail(f"new_tokens={run['new_tokens']} exceeds {m.name}'s block_size={m.model.config.block_size}; "
                 "beyond it the window slides and every token rebuilds the cache")


def models_of(rows) -> list:  # the distinct models of table rows, in order
    return list({id(v.m): v.m for v in rows}.values())


MODES = {"--kv": bench_kv, "--generate": bench_generate, "--depth": bench_depth, "--exit": bench_exit}

if __name__ == "__main__":
    argv = sys.argv[1:]
    modes, rest = [a for a in argv if a in MODES], [a for a in argv if a not in MODES]
    bare, overrides = [a for a in rest if not a.startswith("-")], [a for a in rest if a.startswith("-")]
    load(keys(), None, overrides)  # --help, and a bad key, stop here whatever the mode
    if len(modes) != 1:
        fail(f"choose one mode of {', '.join(MODES)}, got {' '.join(modes) or 'none'} (training steps: bench.py)")
    MODES[modes[0]](bare, overrides)
