"""
Train a nanoRINS model, compute-matched: give it a FLOP budget and it derives its own length.

    python train.py config/rins_small.py                      # one CPU or GPU
    python train.py config/baseline_small.py --flop_budget=2e14
    torchrun --standalone --nproc_per_node=4 train.py config/rins_small.py
    python train.py config/rins_small.py --help               # every key: value, type, meaning

Every eval appends one JSON line to out_dir/log.jsonl (read by compare.py); ckpt.pt always holds
the latest complete state, and --init_from=resume continues the same run bit for bit.
"""

import json
import math
import os
import platform
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import fields

import numpy as np
import torch
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

import vision  # a module, so its constants never become config keys
from checkpoint import load_checkpoint, load_model_state, save_checkpoint
from configurator import check, configure
from model import GPT, GPTConfig, Plan, ViT, ViTConfig
from siglip import SigLIP, SigLIPConfig

# -----------------------------------------------------------------------------
# default config: the "small" family shared by every config/*_small.py (8 layers, d=256, GPT-2 BPE on the
# english corpus, 1e15 training FLOPs); config files and --key=value override these
# --- I/O ---
out_dir = "out"  # ckpt.pt and log.jsonl go here
eval_interval = 250  # iterations between evals (and checkpoints); the last iteration is always evaluated
log_interval = 10  # iterations between progress lines (loss, ms/iter, tok/s, MFU, ETA)
eval_iters = 20  # validation batches per eval: the same fixed batches at every eval and in every run
init_from = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt)
dry_run = False  # print the run table (plan, FLOPs/token, tokens, iterations) and exit without training
# --- data ---
task = "lm"  # 'lm': a GPT on {train,val}.bin; fashion_mnist images: 'vit' classifies, 'siglip' pairs with captions
dataset = "english"  # data_dir/<dataset>/{train,val}.bin + meta.json, written by prepare.py
data_dir = "data"  # the folder prepare.py wrote its datasets to
gradient_accumulation_steps = 1  # micro-steps per optimizer step
batch_size = 16  # sequences (or images) per micro-step, per process
block_size = 256  # context length in tokens
# --- model --- (GPTConfig / ViTConfig / SigLIPConfig in model.py)
n_layer = 8  # physical blocks
n_head = 4  # attention heads per block
n_embd = 256  # width of the residual stream
dropout = 0.0  # dropout probability in attention and MLP
bias = False  # biases in linear layers and LayerNorms
patch_size = 7  # vit/siglip: square patches (28x28 images -> 16 patches)
# --- recursion --- (RecursionConfig in model.py)
signature = "AB"  # AB = baseline, A^rB = RINS, (AB)^r = RAO, AB^rC = latent, blockwise, reverse, ...
r = 1  # rounds of the signature's '^r' unit (round_sampler 'poisson': their mean)
degree = 1  # fractal substitution depth: each letter becomes the whole signature again
partition = ""  # layers per letter as ratios, e.g. '1:2:1'; empty = equal slices
round_sampler = "fixed"  # training rounds: 'fixed' | 'binomial' (stochastic RINS) | 'poisson' (latent)
stochastic_p = 0.5  # binomial: each extra round is skipped with this probability
bptt_rounds = 0  # backprop through only the last k rounds (0 = all)
injection = "none"  # the input added to each round's state: 'none' | 'add' | 'concat'
state_init = "input"  # first state of the unit: 'input' (the stream) | 'noise' (latent recurrence)
state_norm = False  # normalise the state (no weights) before each injection
adapter = "none"  # linear adapters after each round: 'none' | 'per_round' | 'per_count'
adapter_rank = 0  # adapter size: 0 = full d x d, k > 0 = rank-k factors
rins_tower = "image"  # siglip: the tower(s) the recursion fields apply to, 'image' | 'text' | 'both'; others run AB
eval_r = [1]  # extra inference depths evaluated on recursive models (val_loss_r in the log)
# --- training --- AdamW with warmup then cosine decay to min_lr at this run's own last iteration
learning_rate = 1e-3  # peak learning rate, after warmup
min_lr = 1e-4  # learning rate at the last iteration
warmup_iters = 100  # linear warmup, capped at a tenth of the run's iterations
max_iters = 2000  # used only with --flop_budget=0
flop_budget = 1e15  # total training FLOPs; > 0 sets max_iters = budget / (FLOPs per iteration)
weight_decay = 0.1  # AdamW decay of matrices and embeddings (never norms or biases)
beta1 = 0.9  # AdamW's first-moment decay
beta2 = 0.95  # AdamW's second-moment decay
grad_clip = 1.0  # clip the global gradient norm to this (0 = no clipping)
# --- system ---
device = "auto"  # 'auto' picks cuda, then mps, then cpu; or cpu, cuda, cuda:N, mps
dtype = "auto"  # 'auto': bfloat16 autocast on GPUs that support it, else float32; or float16 (with loss scaling)
compile = "auto"  # torch.compile: True each block, 'model' the whole forward; 'auto' = on for CUDA (True), else off
seed = 1337  # seeds weights, data order and sampled rounds: equal seeds give equal runs
# -----------------------------------------------------------------------------
_config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, str, list))]
overridden = configure(globals(), sys.argv[1:], "train.py", types={"compile": (bool, str)})
config = {k: globals()[k] for k in _config_keys}

def fail(msg: str):
    raise SystemExit(f"train.py: {msg}")

# --- validation: every key's allowed values, checked before any data or device is touched ---
CHECKS = {  # key: (">=", min) | ("[)", (lo, hi)): lo <= value < hi | ("in", choices) | ("re", (pattern, meaning))
    "out_dir": ("re", (r".+", "a non-empty path")), "eval_interval": (">=", 1), "log_interval": (">=", 1),
    "eval_iters": (">=", 1), "init_from": ("in", ("scratch", "resume")), "dry_run": ("in", (False, True)),
    "task": ("in", ("lm", "vit", "siglip")), "dataset": ("re", (r".+", "a dataset name such as english")),
    "data_dir": ("re", (r".+", "a non-empty path")), "gradient_accumulation_steps": (">=", 1), "batch_size": (">=", 1),
    "block_size": (">=", 1), "n_layer": (">=", 1), "n_head": (">=", 1), "n_embd": (">=", 1), "dropout": ("[)", (0, 1)),
    "bias": ("in", (False, True)), "patch_size": (">=", 1),
    "signature": ("re", (r"\S+", "a signature such as AB, A^rB, (AB)^r")),  # model.py checks its grammar
    "r": (">=", 1), "degree": (">=", 1),
    "partition": ("re", (r"(\d+(:\d+)*)?", "colon-separated positive integers, one per letter (e.g. 1:2:1), or ''")),
    "round_sampler": ("in", ("fixed", "binomial", "poisson")), "stochastic_p": ("[)", (0, 1)), "bptt_rounds": (">=", 0),
    "injection": ("in", ("none", "add", "concat")), "state_init": ("in", ("input", "noise")),
    "state_norm": ("in", (False, True)),
    "adapter": ("in", ("none", "per_round", "per_count")), "adapter_rank": (">=", 0),
    "rins_tower": ("in", ("image", "text", "both")), "eval_r": ("each >=", 1), "learning_rate": (">=", 0),
    "min_lr": (">=", 0), "warmup_iters": (">=", 0), "max_iters": (">=", 1), "flop_budget": (">=", 0),
    "weight_decay": (">=", 0), "beta1": ("[)", (0, 1)), "beta2": ("[)", (0, 1)), "grad_clip": (">=", 0),
    "device": ("re", (r"auto|cpu|mps|cuda(:\d+)?", "one of auto, cpu, cuda, cuda:N, mps")),
    "dtype": ("in", ("auto", "float32", "bfloat16", "float16")), "compile": ("in", ("auto", True, False, "model")),
    "seed": (">=", 0),
}
problems = check(config, CHECKS, "train.py")  # one line per key, in this (the defaults') order
if flop_budget > 0 and "max_iters" in overridden:  # the one rule between keys
    problems.append(f"train.py: max_iters={max_iters} and flop_budget={flop_budget:g} both set the run length; "
                    "pass --flop_budget=0 to use max_iters")
if problems:
    raise SystemExit("\n".join(problems))
ModelConfig, Model = {"lm": (GPTConfig, GPT), "vit": (ViTConfig, ViT), "siglip": (SigLIPConfig, SigLIP)}[task]
try:  # the model's own settings (a signature's grammar, layers it cuts evenly, heads) before any data is looked for
    Plan(ModelConfig(**{f.name: config[f.name] for f in fields(ModelConfig) if f.name in config}))
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
except ValueError as e:
    raise SystemExit(f"train.py: {e}")

# --- processes, device, precision ---
ddp = int(os.environ.get("RANK", -1)) != -1
torch.set_num_threads(int(os.environ.get("NANORINS_THREADS", torch.get_num_threads())))  # sweeps split the cores
if device == "auto":
    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
if not {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}[device.split(":")[0]]:
    fail(f"device='{device}' is not available on this machine; use --device=auto or --device=cpu")
if ddp:
    init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
rank, world_size = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
master, device_type = rank == 0, "cuda" if device.startswith("cuda") else device
if dtype == "auto":
    dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
if compile == "auto":
    compile = device_type == "cuda"
if device_type == "cuda":  # fp32 matmuls (the few outside autocast) on tensor cores; CPU numerics untouched
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
autocast = nullcontext() if dtype == "float32" else torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))
scaler = torch.amp.GradScaler(device_type, enabled=dtype == "float16")
torch.manual_seed(seed + rank)  # dropout and latent noise differ per rank; data and rounds do not (below)
device_name = torch.cuda.get_device_name(device) if device_type == "cuda" else platform.processor() or device
# Peak dense bf16 tensor throughput per device (FLOP/s), for MFU; unknown devices report no MFU
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
                   "RTX 4090": 165.2e12, "A10G": 70e12, "L4": 121e12}
peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), None) if dtype == "bfloat16" else None
# The share of peak a step reached when last measured (bench.py on an H200, bf16, compiled: 36-38%); the dry run's
# predicted hours divide the planned FLOPs by it. Re-measure on your card with bench.py and scale the hours.
PREDICTED_MFU = 0.37

# --- data: uint16 token ids (lm) or uint8 images and labels (vit, siglip) from prepare.py ---
data_path = os.path.join(data_dir, dataset)

def load_tokens(split: str) -> np.memmap:
    path = os.path.join(data_path, f"{split}.bin")
    if not os.path.isfile(path) or os.path.getsize(path) % 2:
        fail(f"{path} is missing or has an odd size (uint16 tokens expected); re-run: python prepare.py {dataset}")
    data = np.memmap(path, dtype=np.uint16, mode="r")
    if len(data) <= block_size:
        fail(f"{path} has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}; use a smaller block_size")
    if int(data.max()) >= vocab_size:
        fail(f"{path} holds token id {int(data.max())} >= vocab_size {vocab_size}; re-run: python prepare.py {dataset}")
    return data

def to_device(*tensors):
    pin = device_type == "cuda"  # pinned host memory lets the copy overlap compute
    return tuple((t.pin_memory() if pin else t).to(device, non_blocking=pin) for t in tensors)

def window_starts(split: str, generator: torch.Generator) -> torch.Tensor:
    """Where the windows of one global batch start: anywhere in the split, or at a chunk's start when the data
    comes in chunks (a grammar: each chunk starts a sentence, so a window sees all the true process saw)."""
    n = len(tokens[split]) // chunk if chunk else len(tokens[split]) - block_size
    ix = torch.randint(n, (world_size * batch_size,), generator=generator)
    return ix * chunk if chunk else ix

def get_batch(split: str, generator: torch.Generator | None, ix: torch.Tensor | None = None):
    """A random batch: windows of text (or the global batch's windows ix), or images with labels or captions. Every
    process draws the same global batch and keeps its own slice, so N processes see exactly what one process with
    N times the batch would."""
    if task == "lm":
        ix = window_starts(split, generator) if ix is None else ix
    else:
        ix = torch.randint(len(arrays[f"{split}_images"]), (world_size * batch_size,), generator=generator)
    ix = ix[rank * batch_size:(rank + 1) * batch_size]
    if task != "lm":
        return to_device(*vision.get_batch(arrays, split, task, ix, generator))
    data = tokens[split]
    x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix.tolist()]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix.tolist()]).astype(np.int64))
    return to_device(x, y)

def fresh_batch(k: int):
    """The k-th global training batch of chunked data: the next chunks of a seeded permutation, so no token is
    trained on twice (the run's length was checked against the split's size) and a resume continues exactly."""
    return get_batch("train", None, train_order[k * world_size * batch_size:(k + 1) * world_size * batch_size] * chunk)

def floor(split: str) -> float | None:
    """The true process's loss (a grammar's per-token -ln p) on exactly the windows evaluated: loss - floor is how
    far a model is from perfect, with no sampling noise from the choice of windows."""
    path = os.path.join(data_path, f"{split}_nll.bin")
    if not os.path.isfile(path):
        return None
    nll, gen = np.memmap(path, dtype=np.float32, mode="r"), torch.Generator().manual_seed(EVAL_SEEDS[split])
    starts = [i for _ in range(eval_iters) for i in window_starts(split, gen).tolist()]
    return float(sum(nll[i + 1:i + 1 + block_size].sum(dtype=np.float64) for i in starts) / (len(starts) * block_size))

BPE_DATASETS = ("english", "shakespeare", "fineweb_edu", "web")  # prepare.py writes these as GPT-2 BPE
prepared = True
try:
    with open(os.path.join(data_path, "meta.json")) as f:
        meta = json.load(f)
except FileNotFoundError:
    if not (dry_run and task == "lm" and dataset in BPE_DATASETS):
        fail(f"no prepared dataset at {data_path}; run: python prepare.py {dataset}")
    meta, prepared = {"tokenizer": "gpt2"}, False  # a dry run can plan a GPT-2 BPE run before the download
except json.JSONDecodeError as e:
    fail(f"{data_path}/meta.json is not valid JSON ({e.msg}); re-run: python prepare.py {dataset}")
EVAL_SEEDS = {"val": 20250211, "test": 20250212}  # the same windows in every run and every eval
val_gen = torch.Generator().manual_seed(EVAL_SEEDS["val"])
test_batches, prompts, chunk, floors = None, None, None, {}
if task == "lm":
    if not isinstance(meta, dict) or meta.get("tokenizer") not in ("char", "words", "gpt2") or (
            meta["tokenizer"] != "gpt2" and not (type(meta.get("vocab_size")) is int and meta["vocab_size"] > 0)):
        fail(f"{data_path}/meta.json needs tokenizer 'char' or 'words' (with a positive int vocab_size) or 'gpt2'; "
             f"re-run: python prepare.py {dataset}")
    vocab_size = meta["vocab_size"] if meta["tokenizer"] != "gpt2" else 50304  # GPT-2's 50257 padded for fast matmuls
    chunk = meta.get("chunk")  # a grammar: windows start at chunk starts, training chunks are never repeated
    if chunk and block_size + 1 > chunk:
        fail(f"block_size={block_size} needs windows of {block_size + 1} tokens, but {dataset} comes in chunks of "
             f"{chunk}; use block_size <= {chunk - 1}, or prepare it with --chunk={block_size + 1}")
    data_args, tokens_per_example = {"vocab_size": vocab_size}, block_size  # what the model takes from the data
    if not prepared:  # dry run only: nothing to read, nothing to check against the data
        print(f"{data_path} is not prepared yet: planning for GPT-2 BPE (vocab {vocab_size}); the run itself needs "
              f"python prepare.py {dataset}")
    else:
        # test.bin (english, english_char) is scored once, at the end; val alone guides choices such as the lr
        splits = ("train", "val", "test") if os.path.isfile(os.path.join(data_path, "test.bin")) else ("train", "val")
        tokens = {split: load_tokens(split) for split in splits}
        val_batches = [get_batch("val", val_gen) for _ in range(eval_iters)]
        if "test" in tokens:
            test_gen = torch.Generator().manual_seed(EVAL_SEEDS["test"])  # its own stream: moves no val window
            test_batches = [get_batch("test", test_gen) for _ in range(eval_iters)]
        floors = {split: f for split in ("val", "test") if (f := floor(split)) is not None}
        # a fixed slice of the *training* split, scored at every eval: past one epoch, train - val on the same
        # windows each time tells memorising from learning (the running batch loss cannot: its windows change)
        fixed_train_batches = [get_batch("train", torch.Generator().manual_seed(20250213)) for _ in range(eval_iters)]
        train_order = torch.randperm(len(tokens["train"]) // chunk, generator=torch.Generator().manual_seed(seed)) \
            if chunk else None
else:  # siglip draws fresh captions per batch
    try:
        arrays = vision.load(data_path, task, meta.get("classes"))
    except ValueError as e:
        fail(str(e))
    image_size = arrays["train_images"].shape[1]
    data_args = {"image_size": image_size, "channels": 1} | (
        {"num_classes": len(meta["classes"])} if task == "vit"
        else {"vocab_size": len(vision.CAPTION_VOCAB), "text_len": vision.CAPTION_LEN})
    tokens_per_example = (image_size // patch_size) ** 2 + (vision.CAPTION_LEN if task == "siglip" else 0)  # + words
    val_batches = [to_device(*b) for b in vision.val_batches(arrays, task, eval_iters * batch_size, batch_size,
                                                             val_gen)]
    prompts = vision.prompt_ids().to(device) if task == "siglip" else None  # (classes, held-out templates, T)

# --- model ---
model_args = {f.name: config[f.name] for f in fields(ModelConfig) if f.name in config} | data_args
ckpt_path = os.path.join(out_dir, "ckpt.pt")
resume_keys = ("optimizer", "flops", "best_val_loss", "rng")
ckpt = load_checkpoint(ckpt_path, need=resume_keys) if init_from == "resume" else None
diff = [k for k in model_args if ckpt["model_args"].get(k) != model_args[k]] if ckpt is not None else []
if diff:
    fail(f"checkpoint {ckpt_path} was trained with {diff[0]}={ckpt['model_args'].get(diff[0])!r}, "
         f"but the config says {model_args[diff[0]]!r}; resume with the run's own config")
try:
    model = Model(ModelConfig(**model_args))
except ValueError as e:
    fail(str(e))
if ckpt is not None:
    load_model_state(model, ckpt["model"], ckpt_path)
model.to(device)
plan = model.plan  # the execution plan: its r, its sampler (plan.sampled: a new r every step) and its depths
train_r = plan.r if plan.recursive else None  # stochastic runs are scored at their full r
for extra_r in eval_r if train_r else []:
    try:
        plan.check_r(extra_r)
    except ValueError as e:
        fail(f"eval_r={eval_r}: {e}")
rs = sorted({train_r, *eval_r}) if train_r else [None]  # the depths every eval scores

# --- compute matching: the budget fixes the length, and the length fixes the schedule ---
tokens_per_iter = gradient_accumulation_steps * world_size * batch_size * tokens_per_example
flops_per_token = model.flops_per_token(train=True)  # expected value under sampled rounds
flops_per_iter = flops_per_token * tokens_per_iter
if flop_budget > 0:
    # exercise 4: compute matching, the run's length from its FLOP budget
    max_iters = round(flop_budget / flops_per_iter)
    if max_iters < 1:
        fail(f"flop_budget={flop_budget:.3g} is less than one iteration ({flops_per_iter:.3g} FLOPs); raise it")
    # end of exercise 4
needed = max_iters * gradient_accumulation_steps * world_size * batch_size  # training windows the run reads
if chunk and needed > len(train_order):
    fail(f"this run reads {needed:,} training chunks but {data_path}/train.bin holds {len(train_order):,}, so tokens "
         f"would repeat; prepare more: python prepare.py {dataset} --train_tokens={needed * chunk} "
         "(or lower the budget)")
warmup = min(warmup_iters, max_iters // 10)  # a short run, whatever set its length, keeps 90% for the decay

# --- optimizer, resume, compile ---
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
data_gen = torch.Generator().manual_seed(seed)  # identical on every rank: ranks slice one global batch
r_gen = torch.Generator().manual_seed(seed + 1_000_003)  # stochastic depth: untouched by data or dropout
iter_num, flops_done, best_val_loss = 0, 0.0, float("inf")
if ckpt is not None:
    optimizer.load_state_dict(ckpt["optimizer"])
    iter_num, flops_done, best_val_loss = ckpt["iter_num"], ckpt["flops"], ckpt["best_val_loss"]
    data_gen.set_state(ckpt["rng"]["data"])
    r_gen.set_state(ckpt["rng"]["rounds"])
    torch.set_rng_state(ckpt["rng"]["torch"][rank] if rank < len(ckpt["rng"]["torch"]) else ckpt["rng"]["torch"][0])
    if scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])  # float16's loss scale and its growth counter
ckpt = None  # free the copy of the weights
raw_model = model
if compile:
    if master:
        print(f"compiling {'the whole model' if compile == 'model' else 'each block'} (takes a minute)...")
    model.compile_plan(whole=compile == "model", eval_r=max(eval_r))
if ddp:
    model = DDP(model, device_ids=[int(os.environ["LOCAL_RANK"])] if device_type == "cuda" else None)

# --- helpers ---
def get_lr(it: int) -> float:
    """Linear warmup, then cosine decay reaching min_lr exactly at this run's own max_iters."""
    if it < warmup:
        return learning_rate * (it + 1) / (warmup + 1)
    progress = (it - warmup) / max(1, max_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (learning_rate - min_lr)

def mean_over_ranks(values: list[float]) -> list[float]:  # each rank scores its own slice of a global batch
    if not ddp:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return (t / world_size).tolist()

def gather_rng() -> list:  # every rank's dropout/noise RNG state, so a resumed DDP run continues each one
    states = [torch.get_rng_state()] * world_size
    if ddp:
        torch.distributed.all_gather_object(states, states[0])
    return states

@torch.no_grad()
def estimate_loss(batches: list, depths: list | None = None) -> tuple[dict, dict]:
    """Loss (averaged over the ranks' slices) and, for images, accuracy over fixed batches at every depth in
    depths (default rs)."""
    raw_model.eval()
    losses, accs = {}, {}
    for r in depths or rs:
        with autocast:
            if task == "lm":
                losses[r] = sum(raw_model(x, y, r=r)[1].item() for x, y in batches) / len(batches)
            else:
                losses[r], accs[r] = vision.score(raw_model, batches, r, prompts)
    raw_model.train()
    return dict(zip(losses, mean_over_ranks(list(losses.values())))), accs

def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None

def last_good() -> str:
    return f"last good checkpoint: {ckpt_path} (iter {saved_iter})" if saved_iter is not None else (
        "no checkpoint was written")

def save(rng: list):
    try:
        save_checkpoint({"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict(), "model_args": model_args, "config": config,
                         "iter_num": iter_num, "flops": flops_done, "best_val_loss": best_val_loss,
                         "rng": {"data": data_gen.get_state(), "rounds": r_gen.get_state(), "torch": rng}}, ckpt_path)
    except OSError as e:
        fail(f"cannot write checkpoint {ckpt_path} ({e.strerror}); {last_good()} is intact; "
             "free space or fix out_dir, then resume")

def by_r(name: str, values: dict) -> dict:  # a log entry at the trained depth, and per scored depth if recursive
    return {name: values[train_r]} | ({f"{name}_r": {str(k): v for k, v in values.items()}} if train_r else {})

# --- the run table and the log's start line ---
n_params, n_extra = raw_model.get_num_params(), raw_model.get_num_extra_params()
log_path = os.path.join(out_dir, "log.jsonl")
if master:
    plan_text = plan.describe() + (f", in the {rins_tower} tower(s)" if task == "siglip" and train_r else "")
    planned = max_iters * flops_per_iter
    rows = [("overrides", ", ".join(f"{k}={v!r}" for k, v in overridden.items()) or "none (train.py defaults)"),
            ("device", f"{device_name} ({dtype}, {world_size} process{'es' if world_size > 1 else ''})"),
            ("plan", plan_text),
            ("parameters", f"{n_params:,} non-embedding-position" + (
                f" + {n_extra:,} recursion extras ({100 * n_extra / n_params:.2f}%)" if n_extra else "")),
            ("FLOPs/token (train)", f"{flops_per_token / 1e6:.3f} M (every application counted, head included)"),
            ("tokens/iteration", f"{tokens_per_iter:,}"),
            ("iterations", f"{max_iters:,} (warmup {warmup}, cosine to {min_lr:g} at {max_iters})"),
            ("tokens to see", f"{max_iters * tokens_per_iter:,}"),
            ("FLOP budget", f"{flop_budget:.4g} -> planned {planned:.4g} ({100 * (planned / flop_budget - 1):+.2f}%)"
             if flop_budget else "none (max_iters)"),
            ("predicted time", f"{planned / (PREDICTED_MFU * (peak or PEAK_BF16_FLOPS['H100'])) / 3600:.3g} h on "
             f"{'this device' if peak else 'an H100'} at {PREDICTED_MFU:.0%} MFU (bf16)")]
    if floors:
        rows.append(("floor", ", ".join(f"{k} {v:.4f}" for k, v in floors.items()) + " nats/token (the true process "
                     "on the eval windows)"))
    if plan.sampled:
        rows.append(("training rounds", ", ".join(f"P({k})={p:.3f}" for k, p in plan.round_probs.items() if p > 5e-4)))
    print("\n".join(f"{k:>20}: {v}" for k, v in rows))
if master and not dry_run:
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    start_line = {"event": "start", "config": config, "commit": git_commit(), "device": device_name,
                  "versions": versions, "n_params": n_params, "n_extra_params": n_extra, "plan": plan_text,
                  "flops_per_token": flops_per_token, "tokens_per_iter": tokens_per_iter, "max_iters": max_iters,
                  "flop_budget": flop_budget or None, "resumed_from": iter_num if init_from == "resume" else None,
                  "train_tokens": len(tokens["train"]) if task == "lm" else None}
    start_line |= {"floor": floors} if floors else {}
    try:
        os.makedirs(out_dir, exist_ok=True)
        with open(log_path, "a") as f:
            f.write(json.dumps(start_line) + "\n")
    except OSError as e:
        fail(f"cannot write to out_dir '{out_dir}' ({e.strerror}); choose a writable --out_dir")
if dry_run:  # every rank stops here, before anything is written
    sys.exit(0)

# --- the loop ---
start = time.time()
skip_eval = init_from == "resume"  # the checkpoint was written right after this iteration's eval
saved_iter = iter_num if init_from == "resume" else None  # the iteration ckpt.pt holds
loss_sum, loss_count, t_log, it_log, ms_per_iter = 0.0, 0, time.time(), iter_num, 0.0
grad_norms = []  # pre-clip global gradient norms since the last eval: shared blocks sum their applications' gradients
while True:
    lr = get_lr(iter_num)
    for group in optimizer.param_groups:
        group["lr"] = lr
    last = iter_num == max_iters
    if (iter_num % eval_interval == 0 or last) and not skip_eval:
        losses, accs = estimate_loss(val_batches)
        train_loss = mean_over_ranks([loss_sum])[0] / loss_count if loss_count else None
        loss_sum, loss_count = 0.0, 0
        if not all(math.isfinite(v) for v in losses.values()):
            fail(f"validation loss is not finite at iter {iter_num} ({losses}); stopping. "
                 f"{last_good()}; lower learning_rate and resume with --init_from=resume")
        test = estimate_loss(test_batches)[0] if last and test_batches else None
        fixed_train = None
        if task == "lm":  # its own RNG fork: latent noise drawn here must not shift the training stream's
            with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device_type == "cuda" else []):
                fixed_train = estimate_loss(fixed_train_batches, [train_r])[0][train_r]
        grads = {"grad_norm": sum(grad_norms) / len(grad_norms), "grad_norm_max": max(grad_norms),
                 "clip_frac": sum(g > grad_clip for g in grad_norms) / len(grad_norms) if grad_clip > 0 else 0.0
                 } if grad_norms else {}
        grad_norms = []
        if master:
            record = ({"event": "done" if last else "eval", "iter": iter_num, "tokens": iter_num * tokens_per_iter,
                       "flops": flops_done, "lr": lr, "train_loss": train_loss, "ms_per_iter": ms_per_iter,
                       "elapsed_s": time.time() - start} | grads | by_r("val_loss", losses)
                      | (by_r("test_loss", test) if test else {})
                      | ({"fixed_train_loss": fixed_train} if fixed_train is not None else {})
                      | (by_r("val_acc" if task == "vit" else "zeroshot_acc", accs) if accs else {}))
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            shown = ", ".join(f"r={k} {v:.4f}" for k, v in record.get("val_loss_r", {}).items())
            print(f"eval iter {iter_num}: val loss {record['val_loss']:.4f}" + (f" ({shown})" if shown else "")
                  + (f", train loss {train_loss:.4f}" if train_loss else "")
                  + (f" (fixed train windows {fixed_train:.4f})" if fixed_train is not None else "")
                  + f", {flops_done:.3g} FLOPs"
                  + (f", test loss {record['test_loss']:.4f}" if "test_loss" in record else "")
                  + (f", grad norm {grads['grad_norm']:.3f} ({100 * grads['clip_frac']:.0f}% clipped)" if grads else "")
                  + (", accuracy " + ", ".join(f"r={k} {v:.4f}" if k else f"{v:.4f}" for k, v in accs.items())
                     if accs else ""))
            best_val_loss = min(best_val_loss, record["val_loss"])
        t_log, it_log = time.time(), iter_num  # keep eval time out of ms/iter
        rng = gather_rng()  # a collective under DDP: every rank takes part
        if master:
            save(rng)
        saved_iter = iter_num
    skip_eval = False
    if last:
        break
    step_r = plan.sample_r(r_gen) if plan.sampled else None
    for micro_step in range(gradient_accumulation_steps):
        x, y = get_batch("train", data_gen) if chunk is None else fresh_batch(
            iter_num * gradient_accumulation_steps + micro_step)
        if ddp:  # all-reduce gradients once, on the last micro-step
            model.require_backward_grad_sync = micro_step == gradient_accumulation_steps - 1
        with autocast:
            _, loss = model(x, y, r=step_r)
        scaler.scale(loss / gradient_accumulation_steps).backward()
        loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
    if not math.isfinite(loss_sum):
        fail(f"training loss is not finite at iter {iter_num}; stopping before it spreads. "
             f"{last_good()}; lower learning_rate and resume with --init_from=resume")
    scaler.unscale_(optimizer)  # a no-op unless float16's loss scaling is on
    params = raw_model.parameters()
    grad_norms.append((torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else
                       torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])).item())
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    flops_done += raw_model.flops_per_token(train=True, r=step_r) * tokens_per_iter  # realised, at the drawn depth
    iter_num += 1
    if iter_num % log_interval == 0 and master:
        if device_type == "cuda":
            torch.cuda.synchronize()
        dt = (time.time() - t_log) / (iter_num - it_log)
        ms_per_iter, t_log, it_log = 1000 * dt, time.time(), iter_num
        achieved, eta = flops_per_iter / dt, (max_iters - iter_num) * dt
        mfu = f", MFU {100 * achieved / world_size / peak:.1f}%" if peak else ""
        print(f"iter {iter_num}/{max_iters}: loss {loss.item():.4f}, {ms_per_iter:.0f} ms/iter, "
              f"{tokens_per_iter / dt:,.0f} tok/s, {achieved / 1e12:.3f} TFLOP/s{mfu}, "
              f"ETA {eta // 60:.0f}m{eta % 60:02.0f}s")
if master:
    print(f"done: {iter_num} iterations, {flops_done:.4g} FLOPs"
          + (f" ({100 * (flops_done / flop_budget - 1):+.2f}% of budget)" if flop_budget else "")
          + f", best val loss {best_val_loss:.4f}, {time.time() - start:.0f}s")
if ddp:
    destroy_process_group()
    # Everything is saved, so skip the interpreter's teardown (atexit hooks too): there gloo's leftover threads
    # abort a rank (SIGABRT) in about 1 of 20 two-process CPU runs under torch 2.13, failing a finished run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
