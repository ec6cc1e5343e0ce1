"""
Time training steps of the baseline and each variant in one run, against the FLOPs each is charged:
time/FLOP 1.00 means recursion costs exactly its FLOPs. A benchmark: it prints, it asserts nothing.

    python bench.py                                                # config/*_small.py
    python bench.py config/baseline_small.py config/rins_small.py --n_layer=12 --n_embd=768 --block_size=1024
    python bench.py config/shakespeare_baseline.py config/shakespeare_rins.py --vocab_size=65
    python bench.py config/rins_stoch_small.py --compile=True      # 'new graphs' must be 0
    OMP_NUM_THREADS=1 python bench.py --timer=cpu                  # on a CPU machine others are using

A step is train.py's (model(x, y, r=rounds) under autocast, backward, clip, AdamW, zero_grad) on a fixed
batch of random tokens. Config files and --key=value act as in train.py (the latter on every config); the
baseline is the first AB config, else train.py's defaults. Each variant runs `warmup` untimed steps (any
compiling happens there), then `repeats` rounds of `steps` timed steps, variants interleaved in each round
so machine noise hits all alike. ms/iter: median over rounds; time x: median of per-round ratios to the
baseline; +-: half the interquartile range. Sampled-round configs replay one draw of rounds (train.py's
seed) every round and are charged its realised FLOPs. timer 'wall': perf_counter after a CUDA sync; 'cpu':
this process's CPU time, blind to time slices lost to other jobs (with one thread ~ wall time when idle).
peak MB: one more step's peak above what was held before it (activations, gradients, temporaries; not
weights or AdamW state). CUDA: max_memory_allocated; CPU (Linux): growth of the resident-set peak (VmHWM,
reset via /proc/self/clear_refs after malloc_trim hands back freed heap), so allocator slack counts.
new graphs (--compile, per block as train.py): graphs compiled after warm-up; 0 = changing r recompiled
nothing. TORCH_LOGS=recompiles prints the reason for any recompilation.
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

from configurator import configure
from model import GPT, GPTConfig

# defaults: train.py's own (its leading literal assignments, read, not run), plus the benchmark's
here = os.path.dirname(os.path.abspath(__file__))
defaults = {}
for node in ast.parse(open(os.path.join(here, "train.py")).read()).body:
    if isinstance(node, ast.Assign):
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            break  # train.py's defaults end at its first computed assignment
# train.py reads vocab_size from the data; bench.py has none, so it uses GPT-2's padded vocabulary
defaults |= dict(vocab_size=50304, steps=5, warmup=2, repeats=5, timer="wall")
files = [a for a in sys.argv[1:] if not a.startswith("--")]
files = files or sorted(glob.glob(os.path.join(here, "config/*_small.py")))
overrides = [a for a in sys.argv[1:] if a.startswith("--")]


def load(path):
    cfg = dict(defaults)
    configure(cfg, ([path] if path else []) + overrides, "bench.py", types={"compile": (bool, str)})
    return cfg


run = load(None)  # run-wide settings (device, steps, ...): defaults + --key=value
cfgs = {os.path.splitext(os.path.basename(f))[0]: load(f) for f in files}
base = next((n for n, c in cfgs.items() if c["signature"] == "AB"), "baseline (defaults)")
cfgs = {base: cfgs.get(base, run)} | cfgs  # baseline first
SHAPE = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size", "bias", "dropout")
for name, c in cfgs.items():
    if c.get("task", "lm") != "lm":
        sys.exit(f"bench.py: {name} has task={c['task']}; bench.py times language models (task='lm') only")
    if any(c[k] != cfgs[base][k] for k in SHAPE):
        shape = ", ".join(f"{k}={c[k]}" for k in SHAPE)
        sys.exit(f"bench.py: {name} is shaped unlike {base} ({shape}); compare one shape")

device, dtype, seed = run["device"], run["dtype"], run["seed"]
if device == "auto":
    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
device_type = "cuda" if device.startswith("cuda") else device
if dtype == "auto":
    dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
if run["compile"] == "auto":  # as train.py: on for CUDA only
    run["compile"] = device_type == "cuda"
if run["timer"] not in ("wall", "cpu") or (run["timer"] == "cpu" and device_type != "cpu"):
    sys.exit(f"bench.py: timer='{run['timer']}' must be 'wall', or 'cpu' on device cpu")
clock = time.process_time if run["timer"] == "cpu" else time.perf_counter
autocast = nullcontext() if dtype == "float32" else torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))
sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
graphs = lambda: torch._dynamo.utils.counters["stats"]["unique_graphs"]  # noqa: E731 (dynamo's own tally)
B, T, V = (cfgs[base][k] for k in ("batch_size", "block_size", "vocab_size"))
x, y = (torch.randint(V, (B, T), generator=torch.Generator().manual_seed(seed + i)).to(device) for i in range(2))

variants = []
for name, c in cfgs.items():
    torch.manual_seed(seed)  # the same initial weights in every variant
    model = GPT(GPTConfig(**{f.name: c[f.name] for f in fields(GPTConfig)})).to(device)
    with redirect_stdout(io.StringIO()):  # drop the per-model parameter-group line
        opt = model.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]), device_type)
    if run["compile"]:
        for block in model.transformer.h:  # as train.py: one graph serves every application of a block
            block.compile(dynamic=False)
    rec, rounds_gen = model.plan, torch.Generator().manual_seed(seed + 1_000_003)  # train.py's rounds stream
    seq = [rec.sample_r(rounds_gen) if rec.sampled else None for _ in range(run["steps"])]
    variants.append(SimpleNamespace(name=name, model=model, opt=opt, seq=seq, times=[], new_graphs=0,
                                    scaler=torch.amp.GradScaler(device_type, enabled=dtype == "float16"),
                                    apps=statistics.mean(len(rec.layers(r)) for r in seq),
                                    flops=statistics.mean(model.flops_per_token(train=True, r=r) for r in seq)))


def step(v, r):
    with autocast:
        _, loss = v.model(x, y, r=r)
    v.scaler.scale(loss).backward()
    if run["grad_clip"] > 0:
        v.scaler.unscale_(v.opt)
        torch.nn.utils.clip_grad_norm_(v.model.parameters(), run["grad_clip"])
    v.scaler.step(v.opt)
    v.scaler.update()
    v.opt.zero_grad(set_to_none=True)
    return loss.item()  # train.py reads the loss every step too


def peak_mb(v):
    """Peak memory of one step (at the largest r drawn) above what was held before it; nan if unknown."""
    r = max(v.seq) if v.seq[0] is not None else None
    if device_type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
        step(v, r)
        return (torch.cuda.max_memory_allocated() - held) / 2**20
    kb = lambda key: int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1))  # noqa: E731
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
    except OSError:  # not Linux with glibc
        return float("nan")
    held = kb("VmRSS")
    step(v, r)
    return (kb("VmHWM") - held) / 1024


def median_spread(xs):
    """(median, half the interquartile range)"""
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else xs * 3
    return q[1], (q[2] - q[0]) / 2


for v in variants:  # warm-up, through every r the timed steps will use, so nothing compiles on the clock
    distinct = sorted(set(v.seq), key=lambda r: r or 0)
    for i in range(max(run["warmup"], len(distinct))):
        step(v, distinct[i % len(distinct)])
load_avg = os.getloadavg() if hasattr(os, "getloadavg") else None
for i in range(run["repeats"]):
    for v in variants[i % len(variants):] + variants[:i % len(variants)]:  # rotated: nobody always follows the same
        n0 = graphs()
        sync()
        t0 = clock()
        for r in v.seq:
            step(v, r)
        sync()
        v.times.append((clock() - t0) / len(v.seq))
        v.new_graphs += graphs() - n0
for v in variants:
    v.peak_mb = peak_mb(v)

# the header makes a pasted table self-describing
cpu = re.search(r"model name\s*: (.*)", open("/proc/cpuinfo").read()) if os.path.exists("/proc/cpuinfo") else None
device_name = torch.cuda.get_device_name(device) if device_type == "cuda" else \
    f"{cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cores"
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                        cwd=here).stdout.strip()
load_text = f", load average {load_avg[0]:.1f} -> {os.getloadavg()[0]:.1f}" if load_avg else ""
c = cfgs[base]
print(f"# python bench.py {' '.join(sys.argv[1:])}\n"
      f"# {datetime.now().isoformat(timespec='seconds')}, commit {commit or '?'}, "
      f"torch {torch.__version__}, python {platform.python_version()}\n# device {device}: {device_name}, {dtype}, "
      f"{torch.get_num_threads()} threads, compile={run['compile']}, timer={run['timer']}{load_text}\n"
      f"# shape: n_layer={c['n_layer']} n_head={c['n_head']} n_embd={c['n_embd']} block_size={T} vocab_size={V} "
      f"batch_size={B} ({B * T:,} tokens/iter); "
      f"{run['repeats']} rounds x {run['steps']} steps after {run['warmup']} warm-up steps")
cols = (f"{'variant':<26}{'apps':>5}{'ms/iter':>9}{'+-%':>5}{'tok/s':>8}{'MFLOP/tok':>10}{'time x':>7}{'+-':>6}"
        f"{'FLOP x':>7}{'time/FLOP':>10}{'GFLOP/s':>8}{'peak MB':>8}"
        + (f"{'new graphs':>11}" if run["compile"] else ""))
print(cols + "\n" + "-" * len(cols))
for v in variants:
    t, dt = median_spread(v.times)
    ratio, dratio = median_spread([t / tb for t, tb in zip(v.times, variants[0].times)])
    flop_ratio = v.flops / variants[0].flops
    print(f"{v.name:<26}{v.apps:>5.3g}{1000 * t:>9.1f}{100 * dt / t:>5.1f}{B * T / t:>8,.0f}{v.flops / 1e6:>10.2f}"
          f"{ratio:>7.3f}{dratio:>6.3f}{flop_ratio:>7.3f}{ratio / flop_ratio:>10.3f}"
          f"{v.flops * B * T / t / 1e9:>8.1f}{v.peak_mb:>8.0f}"
          + (f"{v.new_graphs:>11}" if run["compile"] else ""))
for v in variants:
    if v.seq[0] is not None:
        expected = v.model.flops_per_token(train=True)
        print(f"{v.name}: timed rounds {v.seq}: {v.flops / 1e6:.2f} MFLOP/token realised, "
              f"{expected / 1e6:.2f} expected "
              f"({100 * (v.flops / expected - 1):+.1f}%)")
