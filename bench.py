"""
Benchmarks of the baseline and each variant side by side, in one process. They print, they assert nothing.

    python bench.py                                                # --train (the default), config/*_small.py
    python bench.py config/baseline_small.py config/rins_small.py --n_layer=12 --n_embd=768 --block_size=1024
    python bench.py config/rins_stoch_small.py --compile=True      # 'new graphs' must be 0
    OMP_NUM_THREADS=1 python bench.py --timer=cpu                  # on a CPU machine others are using
    python bench.py --kv out/arena_baseline out/arena_rins --eval_r=[2,3]
    python bench.py --generate config/arena_baseline.py config/arena_rins.py --vocab_size=96
    python bench.py --help                                         # every key; train.py's keys apply too

--train: time training steps against the FLOPs each variant is charged: time/FLOP 1.00 means recursion costs
exactly its FLOPs. A step is train.py's (model(x, y, r=rounds) under autocast, backward, clip, AdamW, zero_grad)
on a fixed batch of random tokens. Config files and --key=value act as in train.py (the latter on every config);
the baseline is the first AB config, else train.py's defaults. Each variant runs `warmup` untimed steps (any
compiling happens there), then `repeats` rounds of `steps` timed steps, variants interleaved in each round so
machine noise hits all alike. ms/iter: median over rounds; time x: median of per-round ratios to the baseline;
+-: half the interquartile range. Sampled-round configs replay one draw of rounds (train.py's seed) every round
and are charged its realised FLOPs. new graphs (--compile, per block as train.py): graphs compiled after warm-up;
0 = changing r recompiled nothing. TORCH_LOGS=recompiles prints the reason for any recompilation.

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

Memory. peak MB: one call's peak above what was held before it (activations, gradients, temporaries, caches;
not weights or AdamW state). CUDA: max_memory_allocated; CPU (Linux): growth of the resident-set peak (VmHWM,
reset via /proc/self/clear_refs after malloc_trim hands back freed heap), so allocator slack counts and small
models read ~0. cache KB (--generate): bytes of the keys and values the caches hold at the end, exact on any
device. timer 'wall': perf_counter after a CUDA sync; 'cpu': this process's CPU time, blind to time slices lost
to other jobs (with one thread ~ wall time when idle).
"""

import ast
import ctypes
import glob
import io
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext, redirect_stdout
from dataclasses import fields
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import torch
from torch.nn import functional as F

from checkpoint import load_checkpoint, load_model_state
from configurator import configure
from model import GPT, GPTConfig

# --- benchmark --- (the keys under 'other' are train.py's: python train.py --help explains them)
steps = 5  # --train: timed training steps per round
warmup = 2  # --train: untimed steps before timing (compiling happens here)
repeats = 5  # rounds; every variant runs once per round, in rotated order
timer = "wall"  # 'wall' or, on device cpu, 'cpu' (this process's CPU time)
windows = 16  # --kv: val windows of block_size tokens for the teacher-forced loss
new_tokens = 128  # --kv, --generate: greedy tokens generated per timed call (at most block_size)

MODES = ("--train", "--kv", "--generate")
here = os.path.dirname(os.path.abspath(__file__))


def defaults() -> dict:
    """train.py's defaults (its leading literal assignments, read, not run), then the benchmark's."""
    cfg = {}
    for node in ast.parse(open(os.path.join(here, "train.py")).read()).body:
        if isinstance(node, ast.Assign):
            try:
                cfg[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                break  # train.py's defaults end at its first computed assignment
    cfg["vocab_size"] = 50304  # train.py reads it from the data
    own = dict(steps=steps, warmup=warmup, repeats=repeats, timer=timer, windows=windows, new_tokens=new_tokens)
    return cfg | own | {"__file__": os.path.abspath(__file__)}  # __file__: --help reads this docstring


def load(path, overrides):
    cfg = defaults()
    configure(cfg, ([path] if path else []) + overrides, "bench.py", types={"compile": (bool, str)})
    return cfg


def setup(run):
    """Device, dtype, autocast, clock and sync from the run-wide settings."""
    device, dtype = run["device"], run["dtype"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device_type = "cuda" if device.startswith("cuda") else device
    if dtype == "auto":
        dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if run["compile"] == "auto":  # as train.py: on for CUDA only
        run["compile"] = device_type == "cuda"
    if run["timer"] not in ("wall", "cpu") or (run["timer"] == "cpu" and device_type != "cpu"):
        sys.exit(f"bench.py: timer='{run['timer']}' must be 'wall', or 'cpu' on device cpu")
    autocast = nullcontext() if dtype == "float32" else \
        torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))
    return SimpleNamespace(device=device, device_type=device_type, dtype=dtype, autocast=autocast,
                           clock=time.process_time if run["timer"] == "cpu" else time.perf_counter,
                           sync=torch.cuda.synchronize if device_type == "cuda" else (lambda: None))


def peak_mb(fn, env):
    """Peak memory of one fn() above what was held before it; nan if unknown."""
    if env.device_type == "cuda":
        env.sync()
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
        fn()
        return (torch.cuda.max_memory_allocated() - held) / 2**20
    kb = lambda key: int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1))
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
    except OSError:  # not Linux with glibc
        return float("nan")
    held = kb("VmRSS")
    fn()
    return (kb("VmHWM") - held) / 1024


def median_spread(xs):
    """(median, half the interquartile range)"""
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else xs * 3
    return q[1], (q[2] - q[0]) / 2


def timed_rounds(variants, fn, run, env):
    """`repeats` rounds of fn(v) for every variant, rotated so nobody always follows the same; v.times gets the
    seconds of each call. Returns the load average before and after."""
    load_avg = os.getloadavg() if hasattr(os, "getloadavg") else None
    for v in variants:
        v.times = []
    for i in range(run["repeats"]):
        for v in variants[i % len(variants):] + variants[:i % len(variants)]:
            env.sync()
            t0 = env.clock()
            fn(v)
            env.sync()
            v.times.append(env.clock() - t0)
    return load_avg, os.getloadavg() if load_avg else None


def header(run, env, load_avg, lines):
    """The lines that make a pasted table self-describing: command, date, commit, versions, device, load."""
    cpu = re.search(r"model name\s*: (.*)", open("/proc/cpuinfo").read()) if os.path.exists("/proc/cpuinfo") else None
    device_name = torch.cuda.get_device_name(env.device) if env.device_type == "cuda" else \
        f"{cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cores"
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=here).stdout.strip()
    load_text = f", load average {load_avg[0][0]:.1f} -> {load_avg[1][0]:.1f}" if load_avg[0] else ""
    print(f"# python bench.py {' '.join(sys.argv[1:])}\n# {datetime.now().isoformat(timespec='seconds')}, "
          f"commit {commit or '?'}, torch {torch.__version__}, python {platform.python_version()}\n"
          f"# device {env.device}: {device_name}, {env.dtype}, {torch.get_num_threads()} threads, "
          f"compile={run['compile']}, timer={run['timer']}{load_text}")
    for line in lines:
        print(f"# {line}")


# -----------------------------------------------------------------------------
# --train: time per training step vs FLOPs


def bench_train(files, overrides):
    files = files or sorted(glob.glob(os.path.join(here, "config/*_small.py")))
    run = load(None, overrides)  # run-wide settings (device, steps, ...): defaults + --key=value
    cfgs = {os.path.splitext(os.path.basename(f))[0]: load(f, overrides) for f in files}
    base = next((n for n, c in cfgs.items() if c["signature"] == "AB"), "baseline (defaults)")
    cfgs = {base: cfgs.get(base, run)} | cfgs  # baseline first
    shape = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size", "bias", "dropout")
    for name, c in cfgs.items():
        if c.get("task", "lm") != "lm":
            sys.exit(f"bench.py: {name} has task={c['task']}; bench.py times language models (task='lm') only")
        if any(c[k] != cfgs[base][k] for k in shape):
            sys.exit(f"bench.py: {name} is shaped unlike {base} ({', '.join(f'{k}={c[k]}' for k in shape)}); "
                     "compare one shape")
    env, seed = setup(run), run["seed"]
    graphs = lambda: torch._dynamo.utils.counters["stats"]["unique_graphs"]  # noqa: E731 (dynamo's own tally)
    B, T, V = (cfgs[base][k] for k in ("batch_size", "block_size", "vocab_size"))
    x, y = (torch.randint(V, (B, T), generator=torch.Generator().manual_seed(seed + i)).to(env.device)
            for i in range(2))

    variants = []
    for name, c in cfgs.items():
        torch.manual_seed(seed)  # the same initial weights in every variant
        model = GPT(GPTConfig(**{f.name: c[f.name] for f in fields(GPTConfig)})).to(env.device)
        with redirect_stdout(io.StringIO()):  # drop the per-model parameter-group line
            opt = model.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]),
                                             env.device_type)
        if run["compile"]:
            for block in model.transformer.h:  # as train.py: one graph serves every application of a block
                block.compile(dynamic=False)
        rec, rounds_gen = model.plan, torch.Generator().manual_seed(seed + 1_000_003)  # train.py's rounds stream
        seq = [rec.sample_r(rounds_gen) if rec.sampled else None for _ in range(run["steps"])]
        variants.append(SimpleNamespace(name=name, model=model, opt=opt, seq=seq, new_graphs=0,
                                        scaler=torch.amp.GradScaler(env.device_type, enabled=env.dtype == "float16"),
                                        apps=statistics.mean(len(rec.layers(r)) for r in seq),
                                        flops=statistics.mean(model.flops_per_token(train=True, r=r) for r in seq)))

    def step(v, r):
        with env.autocast:
            _, loss = v.model(x, y, r=r)
        v.scaler.scale(loss).backward()
        if run["grad_clip"] > 0:
            v.scaler.unscale_(v.opt)
            torch.nn.utils.clip_grad_norm_(v.model.parameters(), run["grad_clip"])
        v.scaler.step(v.opt)
        v.scaler.update()
        v.opt.zero_grad(set_to_none=True)
        return loss.item()  # train.py reads the loss every step too

    def steps(v):
        n0 = graphs()
        for r in v.seq:
            step(v, r)
        v.new_graphs += graphs() - n0

    for v in variants:  # warm-up, through every r the timed steps will use, so nothing compiles on the clock
        distinct = sorted(set(v.seq), key=lambda r: r or 0)
        for i in range(max(run["warmup"], len(distinct))):
            step(v, distinct[i % len(distinct)])
    load_avg = timed_rounds(variants, steps, run, env)
    for v in variants:  # one step at the largest r drawn
        v.peak_mb = peak_mb(lambda: step(v, max(v.seq) if v.seq[0] is not None else None), env)

    c = cfgs[base]
    header(run, env, load_avg, [
        f"shape: n_layer={c['n_layer']} n_head={c['n_head']} n_embd={c['n_embd']} block_size={T} vocab_size={V} "
        f"batch_size={B} ({B * T:,} tokens/iter); {run['repeats']} rounds x {run['steps']} steps after "
        f"{run['warmup']} warm-up steps"])
    cols = f"{'variant':<26}{'apps':>5}{'ms/iter':>9}{'+-%':>5}{'tok/s':>8}{'MFLOP/tok':>10}{'time x':>7}{'+-':>6}" \
           f"{'FLOP x':>7}{'time/FLOP':>10}{'GFLOP/s':>8}{'peak MB':>8}" + \
           (f"{'new graphs':>11}" if run["compile"] else "")
    print(cols + "\n" + "-" * len(cols))
    for v in variants:
        times = [t / len(v.seq) for t in v.times]
        t, dt = median_spread(times)
        ratio, dratio = median_spread([a / b for a, b in zip(v.times, variants[0].times)])
        flop_ratio = v.flops / variants[0].flops
        print(f"{v.name:<26}{v.apps:>5.3g}{1000 * t:>9.1f}{100 * dt / t:>5.1f}{B * T / t:>8,.0f}{v.flops / 1e6:>10.2f}"
              f"{ratio:>7.3f}{dratio:>6.3f}{flop_ratio:>7.3f}{ratio / flop_ratio:>10.3f}"
              f"{v.flops * B * T / t / 1e9:>8.1f}"
              f"{v.peak_mb:>8.0f}" + (f"{v.new_graphs:>11}" if run["compile"] else ""))
    for v in variants:
        if v.seq[0] is not None:
            expected = v.model.flops_per_token(train=True)
            print(f"{v.name}: timed rounds {v.seq}: {v.flops / 1e6:.2f} MFLOP/token realised, {expected / 1e6:.2f} "
                  f"expected ({100 * (v.flops / expected - 1):+.1f}%)")


# -----------------------------------------------------------------------------
# --kv and --generate: inference


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
                sys.exit(f"bench.py: {path} has model_args this model.py cannot build ({e})")
            load_model_state(model, ckpt["model"], path)
            data = ckpt["config"]
        elif configs and os.path.isfile(arg):
            c = load(arg, overrides)
            torch.manual_seed(c["seed"])
            model, data = GPT(GPTConfig(**{f.name: c[f.name] for f in fields(GPTConfig)})), None
        else:
            sys.exit(f"bench.py: '{arg}' is not a run directory (holding ckpt.pt)" + (" or a config file" * configs))
        models.append(SimpleNamespace(model=model.eval().to(env.device), data=data, path=os.path.normpath(arg)))
    for k in range(1, 1 + max(len(m.path.split(os.sep)) for m in models)):
        names = [os.sep.join(m.path.split(os.sep)[-k:]) for m in models]
        if len(set(names)) == len(names):
            break
    for m, name in zip(models, names):
        m.name = name
    return models


def val_windows(data: dict, n: int, T: int, device):
    """n evenly spaced windows (x, y) of T tokens from the val.bin of the checkpoint's data set, and its path."""
    path = os.path.join(data.get("data_dir", "data"), data["dataset"], "val.bin")
    if not os.path.isfile(path):
        sys.exit(f"bench.py: {path} is missing; run: python prepare.py {data['dataset']} (from the repository root)")
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    if len(tokens) <= T:
        sys.exit(f"bench.py: {path} has {len(tokens)} tokens, fewer than block_size + 1 = {T + 1}")
    starts = np.linspace(0, len(tokens) - T - 1, n).astype(np.int64)
    x, y = (torch.from_numpy(np.stack([tokens[i + s:i + s + T] for i in starts]).astype(np.int64)) for s in (0, 1))
    return x.to(device), y.to(device), path


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


def check_inference(run, models):
    if run["compile"] is True:
        sys.exit("bench.py: compile=True applies to --train only; --kv and --generate run eagerly")
    run["compile"] = False
    for key in ("repeats", "windows", "new_tokens"):
        if type(run[key]) is not int or run[key] < 1:
            sys.exit(f"bench.py: {key}={run[key]!r} is not allowed; need a whole number >= 1")
    for m in models:
        if run["new_tokens"] > m.model.config.block_size:
            sys.exit(f"bench.py: new_tokens={run['new_tokens']} exceeds {m.name}'s block_size="
                     f"{m.model.config.block_size}; beyond it the window slides and every token rebuilds the cache")


def bench_kv(args, overrides):
    run, given = load(None, overrides), {a.split("=")[0][2:] for a in overrides}
    runs = args + ([run["out_dir"]] if "out_dir" in given else [])
    if not runs:
        sys.exit("bench.py: --kv needs trained run directories holding ckpt.pt (bare arguments or --out_dir=DIR)")
    env = setup(run)
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
                sys.exit(f"bench.py: {m.name}: {e}")
        x, y, path = val_windows(m.data, run["windows"], T, env.device)
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
    run = load(None, overrides)
    env = setup(run)
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


if __name__ == "__main__":
    argv = sys.argv[1:]
    modes = [a for a in argv if a in MODES]
    if len(modes) > 1:
        sys.exit(f"bench.py: choose one mode of {', '.join(MODES)}, got {' '.join(modes)}")
    rest = [a for a in argv if a not in MODES]
    bare, overrides = [a for a in rest if not a.startswith("-")], [a for a in rest if a.startswith("-")]
    load(None, overrides)  # --help, and a bad key, stop here whatever the mode
    {"--train": bench_train, "--kv": bench_kv, "--generate": bench_generate}[modes[0] if modes else "--train"](
        bare, overrides)
