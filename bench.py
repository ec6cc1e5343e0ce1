"""
Training steps timed against the FLOPs each variant is charged, the baseline and every variant side by side in one
process: time/FLOP 1.00 means recursion costs exactly its FLOPs, and MFU says what share of the device's peak a step
reaches. It prints, it asserts nothing. The inference benchmarks (KV cache, generation, depth, early exit) are
bench_inference.py's; the helpers below the training step serve both.

    python bench.py                                                # config/*_small.py
    python bench.py config/baseline_small.py config/rins_small.py --n_layer=12 --n_embd=768 --block_size=1024
    python bench.py config/rins_stoch_small.py --compile=True      # 'new graphs' must be 0
    python bench.py config/baseline_small.py config/rins_small.py --compile=model   # the whole forward compiled
    OMP_NUM_THREADS=1 python bench.py --timer=cpu                  # on a CPU machine others are using
    python bench.py config/baseline_small.py config/rins_small.py --profile=12   # where a step's time goes
    python bench.py --help                                         # every key; train.py's keys apply too

A step is train.py's (model(x, y, r=rounds) under autocast, backward, clip, AdamW, zero_grad) on a fixed batch of
random tokens. Config files and --key=value act as in train.py (the latter on every config); the baseline is the
first AB config, else train.py's defaults. Each variant runs `warmup` untimed steps (any compiling happens there),
then `repeats` rounds of `steps` timed steps, variants interleaved in each round so machine noise hits all alike.
ms/iter: median over rounds; time x: median of per-round ratios to the baseline; +-: half the interquartile range.
Sampled-round configs replay one draw of rounds (train.py's seed) every round and are charged its realised FLOPs.
MFU: GFLOP/s (charged FLOPs per second) over the device's peak dense bf16 throughput in train.py's PEAK_BF16_FLOPS;
'-' for a device not in that table or a run not in bfloat16 (the header says 'MFU unknown'). new graphs (--compile,
per block or the whole model as train.py): graphs compiled after warm-up; 0 = changing r recompiled nothing.
TORCH_LOGS=recompiles prints the reason for any recompilation.

Memory. peak MB: one call's peak above what was held before it (activations, gradients, temporaries, caches;
not weights or AdamW state). CUDA: max_memory_allocated; CPU (Linux): growth of the resident-set peak (VmHWM,
reset via /proc/self/clear_refs after malloc_trim hands back freed heap), so allocator slack counts and small
models read ~0. timer 'wall': perf_counter after a CUDA sync; 'cpu': this process's CPU time, blind to time slices
lost to other jobs (with one thread ~ wall time when idle).
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

import torch

from configurator import check, configure
from model import GPT, GPTConfig

# --- benchmark --- (the keys under 'other' are train.py's: python train.py --help explains them)
steps = 5  # timed training steps per round
warmup = 2  # untimed steps before timing (compiling happens here)
repeats = 5  # rounds; every variant runs once per round, in rotated order
timer = "wall"  # 'wall' or, on device cpu, 'cpu' (this process's CPU time)
profile = 0  # > 0: after timing, torch.profiler over `steps` steps of each variant, its top `profile` ops by self time

here = os.path.dirname(os.path.abspath(__file__))
keys = lambda: defaults(__file__, steps=steps, warmup=warmup, profile=profile)  # every key bench.py takes, fresh
SHAPE = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size", "bias", "dropout")  # one per table


def bench_train(files, overrides):
    """Build every variant, warm it up, time its steps in interleaved rounds, measure one step's memory, print."""
    run, cfgs = configs(files, overrides)
    env, base = setup(run), next(iter(cfgs.values()))
    B, T, V = (base[k] for k in ("batch_size", "block_size", "vocab_size"))
    x, y = (torch.randint(V, (B, T), generator=torch.Generator().manual_seed(run["seed"] + i)).to(env.device)
            for i in range(2))
    variants = [variant(name, c, run, env) for name, c in cfgs.items()]
    step = lambda v, r: train_step(v, x, y, r, run, env)
    graphs = lambda: torch._dynamo.utils.counters["stats"]["unique_graphs"]  # dynamo's own tally

    def timed_steps(v):
        n0 = graphs()
        for r in v.seq:
            step(v, r)
        v.new_graphs += graphs() - n0

    for v in variants:  # warm-up, through every r the timed steps will use, so nothing compiles on the clock
        distinct = sorted(set(v.seq), key=lambda r: r or 0)
        for i in range(max(run["warmup"], len(distinct))):
            step(v, distinct[i % len(distinct)])
    load_avg = timed_rounds(variants, timed_steps, run, env)
    for v in variants:  # one step at the largest r drawn
        v.peak_mb = peak_mb(lambda: step(v, max(v.seq) if v.seq[0] is not None else None), env)

    peak = peak_flops(env)
    header(run, env, load_avg, [
        f"shape: n_layer={base['n_layer']} n_head={base['n_head']} n_embd={base['n_embd']} block_size={T} "
        f"vocab_size={V} batch_size={B} ({B * T:,} tokens/iter); {run['repeats']} rounds x {run['steps']} steps "
        f"after {run['warmup']} warm-up steps",
        f"MFU against {peak / 1e12:g} TFLOP/s, this device's dense bf16 peak in train.py's PEAK_BF16_FLOPS" if peak
        else f"MFU unknown: train.py's PEAK_BF16_FLOPS has no peak for this device in {env.dtype}"])
    train_table(variants, B * T, peak, run)
    for v in variants if run["profile"] else []:
        profile_table(v, lambda: [step(v, r) for r in v.seq], run["profile"], env)


def profile_table(v, steps_fn, top: int, env):
    """Where a variant's step spends its time: the ops with the most self time (device time on CUDA) under
    torch.profiler, per step and as a share of all ops' self time. Measure this before optimising anything."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler
    cuda = env.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profiler(activities=activities) as prof:
        steps_fn()
        if cuda:
            torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    ops = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total, n = sum(getattr(e, key) for e in ops), len(v.seq)
    print(f"\nprofile of {v.name} ({n} steps, self {'device' if cuda else 'CPU'} time):")
    print(f"{'op':<56}{'calls/step':>11}{'ms/step':>10}{'share':>8}")
    for e in ops[:top]:
        print(f"{e.key[:55]:<56}{e.count / n:>11.1f}{getattr(e, key) / 1e3 / n:>10.3f}{getattr(e, key) / total:>8.1%}")


def configs(files, overrides):
    """The run-wide settings (defaults + --key=value) and {name: config}, the baseline first, all of one shape."""
    files = files or sorted(glob.glob(os.path.join(here, "config/*_small.py")))
    run = load(keys(), None, overrides)
    cfgs = {os.path.splitext(os.path.basename(f))[0]: load(keys(), f, overrides) for f in files}
    base = next((n for n, c in cfgs.items() if c["signature"] == "AB"), "baseline (defaults)")
    cfgs = {base: cfgs.get(base, run)} | cfgs
    for name, c in cfgs.items():
        if c.get("task", "lm") != "lm":
            sys.exit(f"bench.py: {name} has task={c['task']}; bench.py times language models (task='lm') only")
        if any(c[k] != cfgs[base][k] for k in SHAPE):
            sys.exit(f"bench.py: {name} is shaped unlike {base} ({', '.join(f'{k}={c[k]}' for k in SHAPE)}); "
                     "compare one shape")
    return run, cfgs


def variant(name, c, run, env):
    """A model, its optimizer, and the rounds of its timed steps (one draw of train.py's rounds stream)."""
    torch.manual_seed(run["seed"])  # the same initial weights in every variant
    model = GPT(GPTConfig(**{f.name: c[f.name] for f in fields(GPTConfig)})).to(env.device)
    with redirect_stdout(io.StringIO()):  # drop the per-model parameter-group line
        opt = model.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]),
                                         env.device_type)
    if run["compile"]:  # as train.py: per block, or the whole forward (compile='model')
        model.compile_plan(whole=run["compile"] == "model")
    plan, rounds_gen = model.plan, torch.Generator().manual_seed(run["seed"] + 1_000_003)  # train.py's rounds stream
    seq = [plan.sample_r(rounds_gen) if plan.sampled else None for _ in range(run["steps"])]
    return SimpleNamespace(name=name, model=model, opt=opt, seq=seq, new_graphs=0,
                           scaler=torch.amp.GradScaler(env.device_type, enabled=env.dtype == "float16"),
                           apps=statistics.mean(len(plan.layers(r)) for r in seq),
                           flops=statistics.mean(model.flops_per_token(train=True, r=r) for r in seq))


def train_step(v, x, y, r, run, env):
    """One step as train.py takes it, to the loss read back (train.py reads it every step too)."""
    with env.autocast:
        _, loss = v.model(x, y, r=r)
    v.scaler.scale(loss).backward()
    if run["grad_clip"] > 0:
        v.scaler.unscale_(v.opt)
        torch.nn.utils.clip_grad_norm_(v.model.parameters(), run["grad_clip"])
    v.scaler.step(v.opt)
    v.scaler.update()
    v.opt.zero_grad(set_to_none=True)
    return loss.item()


def peak_flops(env):
    """The device's peak dense bf16 FLOP/s as train.py finds it in PEAK_BF16_FLOPS; None (no MFU) off that table."""
    if env.device_type != "cuda" or env.dtype != "bfloat16":
        return None
    name = torch.cuda.get_device_name(env.device)
    return next((v for k, v in train_literal("PEAK_BF16_FLOPS").items() if k in name), None)


def train_table(variants, tokens, peak, run):
    cols = f"{'variant':<26}{'apps':>5}{'ms/iter':>9}{'+-%':>5}{'tok/s':>8}{'MFLOP/tok':>10}{'time x':>7}{'+-':>6}" \
           f"{'FLOP x':>7}{'time/FLOP':>10}{'MFU':>6}{'GFLOP/s':>10}{'peak MB':>8}" + \
           (f"{'new graphs':>11}" if run["compile"] else "")
    print(cols + "\n" + "-" * len(cols))
    for v in variants:
        t, dt = median_spread([t / len(v.seq) for t in v.times])
        ratio, dratio = median_spread([a / b for a, b in zip(v.times, variants[0].times)])
        flop_ratio, achieved = v.flops / variants[0].flops, v.flops * tokens / t
        mfu = f"{100 * achieved / peak:>5.1f}%" if peak else f"{'-':>6}"
        print(f"{v.name:<26}{v.apps:>5.3g}{1000 * t:>9.1f}{100 * dt / t:>5.1f}{tokens / t:>8,.0f}"
              f"{v.flops / 1e6:>10.2f}{ratio:>7.3f}{dratio:>6.3f}{flop_ratio:>7.3f}{ratio / flop_ratio:>10.3f}{mfu}"
              f"{achieved / 1e9:>10.1f}{v.peak_mb:>8.0f}" + (f"{v.new_graphs:>11}" if run["compile"] else ""))
    for v in variants:
        if v.seq[0] is not None:
            expected = v.model.flops_per_token(train=True)
            print(f"{v.name}: timed rounds {v.seq}: {v.flops / 1e6:.2f} MFLOP/token realised, {expected / 1e6:.2f} "
                  f"expected ({100 * (v.flops / expected - 1):+.1f}%)")


# -----------------------------------------------------------------------------
# shared with bench_inference.py: the keys, the device, timing, memory and the header of every table


def train_py():
    """train.py's top-level statements, read, not run (running it trains)."""
    return ast.parse(open(os.path.join(here, "train.py")).read()).body


def train_literal(name: str):
    """The literal train.py assigns to `name` at its top level."""
    return next(ast.literal_eval(node.value) for node in train_py()
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name)


def defaults(script: str, **own) -> dict:
    """train.py's defaults (its leading literal assignments), then the benchmarks' (repeats, timer) and the
    script's `own` keys."""
    cfg = {}
    for node in train_py():
        if isinstance(node, ast.Assign):
            try:
                cfg[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                break  # train.py's defaults end at its first computed assignment
    cfg["vocab_size"] = 50304  # train.py reads it from the data
    return cfg | dict(repeats=repeats, timer=timer) | own | {"__file__": os.path.abspath(script)}  # --help reads it


def load(cfg: dict, path, overrides) -> dict:
    """cfg (a fresh defaults()) after the config file `path`, if any, and the --key=value overrides."""
    configure(cfg, ([path] if path else []) + overrides, prog(cfg), types={"compile": (bool, str)})
    return cfg


def prog(cfg) -> str:
    return os.path.basename(cfg["__file__"])


def setup(run, compiles: bool = True):
    """Device, dtype, autocast, clock and sync from the run-wide settings; compile checked by train.py's own rule,
    and resolved ('auto': as train.py) only where the benchmark compiles (`compiles`; inference runs eagerly)."""
    if problems := check({"compile": run["compile"]}, {"compile": train_literal("CHECKS")["compile"]}, prog(run)):
        sys.exit(problems[0])
    if not compiles and run["compile"] not in ("auto", False):
        sys.exit(f"{prog(run)}: compile={run['compile']} applies to bench.py's training steps only; inference runs "
                 "eagerly")
    device, dtype = run["device"], run["dtype"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device_type = "cuda" if device.startswith("cuda") else device
    if dtype == "auto":
        dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if run["compile"] == "auto":  # as train.py: on for CUDA only
        run["compile"] = compiles and device_type == "cuda"
    if run["timer"] not in ("wall", "cpu") or (run["timer"] == "cpu" and device_type != "cpu"):
        sys.exit(f"{prog(run)}: timer='{run['timer']}' must be 'wall', or 'cpu' on device cpu")
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
    print(f"# python {prog(run)} {' '.join(sys.argv[1:])}\n# {datetime.now().isoformat(timespec='seconds')}, "
          f"commit {commit or '?'}, torch {torch.__version__}, python {platform.python_version()}\n"
          f"# device {env.device}: {device_name}, {env.dtype}, {torch.get_num_threads()} threads, "
          f"compile={run['compile']}, timer={run['timer']}{load_text}")
    for line in lines:
        print(f"# {line}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    if moved := [a for a in argv if a in ("--kv", "--generate", "--depth", "--exit")]:  # bench.py's modes once
        sys.exit(f"bench.py: {moved[0]} is bench_inference.py's: python bench_inference.py {' '.join(argv)}")
    bench_train([a for a in argv if not a.startswith("-")], [a for a in argv if a.startswith("-")])
