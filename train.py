"""
Train a nanoRINS model, compute-matched: give it a FLOP budget and it derives its own length.

    python train.py config/rins_small.py                      # one CPU or GPU
    python train.py config/baseline_small.py --flop_budget=2e14
    torchrun --standalone --nproc_per_node=4 train.py config/rins_small.py

Every eval appends one JSON line to out_dir/log.jsonl (read by compare.py); ckpt.pt always holds
the latest complete state, and --init_from=resume continues the same run bit for bit.
"""

import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import fields

import numpy as np
import torch
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

from checkpoint import load_checkpoint, load_model_state, save_checkpoint
from configurator import configure
from model import GPT, Block, GPTConfig, SigLIP, SigLIPConfig, ViT, ViTConfig
import prepare  # siglip's captions; a module, so its constants never become config keys

# -----------------------------------------------------------------------------
# default config: the "small" family shared by every config/*_small.py (8 layers, d=256, GPT-2 BPE on the
# english corpus, 1e15 training FLOPs); config files and --key=value override these
# I/O
out_dir = "out"
eval_interval = 250  # iterations between evals (and checkpoints); the last iteration is always evaluated
log_interval = 10
eval_iters = 20  # validation batches per eval: the same fixed batches at every eval and in every run
init_from = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt)
dry_run = False  # print the run table (plan, FLOPs/token, tokens, iterations) and exit without training
# data
task = "lm"  # 'lm': a GPT on {train,val}.bin; images (dataset fashion_mnist): 'vit' classifies, 'siglip' pairs with captions
dataset = "english"  # data/<dataset>/{train,val}.bin + meta.json, written by prepare.py
data_dir = "data"
gradient_accumulation_steps = 1
batch_size = 16  # sequences per micro-step (per process)
block_size = 256
# model (see GPTConfig / RecursionConfig in model.py)
n_layer = 8
n_head = 4
n_embd = 256
dropout = 0.0
bias = False
signature = "AB"  # AB = baseline, A^rB = RINS, (AB)^r = RAO, ...
r = 1
degree = 1
partition = ""
round_sampler = "fixed"
stochastic_p = 0.5
bptt_rounds = 0
injection = "none"
state_init = "input"
adapter = "none"
adapter_rank = 0
patch_size = 7  # vit/siglip: square patches (28x28 images -> 16 patches)
rins_tower = "image"  # siglip: the tower(s) the recursion fields apply to, 'image' | 'text' | 'both'; others run AB
eval_r = [1]  # extra inference depths evaluated on recursive models (val_loss_r in the log)
# optimizer: AdamW with warmup then cosine decay to min_lr at this run's own last iteration
learning_rate = 1e-3
min_lr = 1e-4
warmup_iters = 100
max_iters = 2000  # used only with --flop_budget=0
flop_budget = 1e15  # total training FLOPs; > 0 sets max_iters = budget / (FLOPs per iteration)
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
# system
device = "auto"  # 'auto' picks cuda, then mps, then cpu
dtype = "auto"  # 'auto': bfloat16 autocast on GPUs that support it, else float32
compile = False  # torch.compile each block (GPU: turn it on; CPU: no gain, slow to start)
seed = 1337
# -----------------------------------------------------------------------------
_config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str, list))]
overridden = configure(globals(), sys.argv[1:], "train.py")
config = {k: globals()[k] for k in _config_keys}

# Peak dense bf16 tensor throughput per device (FLOP/s), for MFU; unknown devices report no MFU
PEAK_BF16_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
                   "RTX 4090": 165.2e12, "A10G": 70e12, "L4": 121e12}


def fail(msg: str):
    raise SystemExit(f"train.py: {msg}")


def peak_flops(device_name: str, dtype_name: str) -> float | None:
    if dtype_name != "bfloat16":
        return None
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), None)


# --- processes, device, precision ---
for _k in ("batch_size", "block_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd"):
    if config[_k] < 1:
        fail(f"{_k}={config[_k]} must be >= 1")
ddp = int(os.environ.get("RANK", -1)) != -1
torch.set_num_threads(int(os.environ.get("NANORINS_THREADS", torch.get_num_threads())))  # sweeps split the cores
if device == "auto":
    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
try:
    _available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}[torch.device(device).type]
except (RuntimeError, KeyError):
    fail(f"device='{device}' is not one of auto, cpu, cuda, cuda:N, mps")
if not _available:
    fail(f"device='{device}' is not available on this machine; use --device=auto or --device=cpu")
if ddp:
    init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
else:
    rank, world_size = 0, 1
master = rank == 0
device_type = "cuda" if device.startswith("cuda") else device
if dtype == "auto":
    dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
if dtype not in ("float32", "bfloat16", "float16"):
    fail(f"dtype='{dtype}' is not one of auto, float32, bfloat16, float16")
autocast = nullcontext() if dtype == "float32" else torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))
scaler = torch.amp.GradScaler(device_type, enabled=dtype == "float16")
torch.manual_seed(seed + rank)  # dropout and latent noise differ per rank; data and rounds do not (below)
device_name = torch.cuda.get_device_name(device) if device_type == "cuda" else platform.processor() or device

# --- data ---
data_path = os.path.join(data_dir, dataset)
try:
    with open(os.path.join(data_path, "meta.json")) as f:
        meta = json.load(f)
except FileNotFoundError:
    fail(f"no prepared dataset at {data_path}; run: python prepare.py {dataset}")
except json.JSONDecodeError as e:
    fail(f"{data_path}/meta.json is not valid JSON ({e.msg}); re-run: python prepare.py {dataset}")
if task not in ("lm", "vit", "siglip"):
    fail(f"task='{task}' is not one of lm, vit, siglip")
if task == "lm" and (not isinstance(meta, dict) or meta.get("tokenizer") not in ("char", "gpt2") or (
        meta["tokenizer"] == "char" and not (type(meta.get("vocab_size")) is int and meta["vocab_size"] > 0))):
    fail(f"{data_path}/meta.json needs tokenizer 'char' (with a positive int vocab_size) or 'gpt2'; re-run: python prepare.py {dataset}")
vocab_size = meta["vocab_size"] if meta.get("tokenizer") == "char" else 50304  # GPT-2's 50257 padded for fast matmuls
data_args, tokens_per_example = {"vocab_size": vocab_size}, block_size  # what the model takes from the data


def to_device(*tensors):
    if device_type == "cuda":
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)
    return tuple(t.to(device) for t in tensors)


# --- text: uint16 token ids from prepare.py ---
if task == "lm":
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

    def get_batch(split: str, generator: torch.Generator):
        """A batch of random windows. Every process draws the same global batch and keeps its own
        slice, so N processes see exactly what one process with N times the batch would."""
        data = tokens[split]
        ix = torch.randint(len(data) - block_size, (world_size * batch_size,), generator=generator)
        ix = ix[rank * batch_size:(rank + 1) * batch_size].tolist()
        x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix]).astype(np.int64))
        return to_device(x, y)

    tokens = {split: load_tokens(split) for split in ("train", "val")}

else:  # --- image tasks: uint8 images and labels from prepare.py; siglip draws fresh captions per batch ---
    try:
        arrays = {f"{s}_{k}": np.load(os.path.join(data_path, f"{s}_{k}.npy")) for s in ("train", "val") for k in ("images", "labels")}
    except FileNotFoundError as e:
        fail(f"{e.filename} is missing; task='{task}' needs images: python prepare.py fashion_mnist")
    if task == "siglip" and meta.get("classes") != prepare.FASHION_CLASSES:
        fail(f"task='siglip' has captions for Fashion-MNIST's classes only, not {meta.get('classes')}")
    image_size = arrays["train_images"].shape[1]
    data_args = {"image_size": image_size, "channels": 1} | ({"num_classes": len(meta["classes"])} if task == "vit" else
                                                             {"vocab_size": len(prepare.CAPTION_VOCAB), "text_len": prepare.CAPTION_LEN})
    tokens_per_example = (image_size // patch_size) ** 2 + (prepare.CAPTION_LEN if task == "siglip" else 0)  # patches (+ words)
    if task == "siglip":  # zero-shot prompts: (classes, held-out templates, T)
        prompts = torch.from_numpy(np.stack([prepare.encode_captions(p) for p in prepare.zero_shot_prompts()])).to(device)

    def get_batch(split: str, generator: torch.Generator, ix: torch.Tensor | None = None):
        """Random images (or those at ix) as (B, 1, H, W) in [0, 1], with labels (vit) or caption ids (siglip)."""
        if ix is None:  # one global batch, sliced per rank, as for text
            ix = torch.randint(len(arrays[f"{split}_images"]), (world_size * batch_size,), generator=generator)
            ix = ix[rank * batch_size:(rank + 1) * batch_size]
        images, labels = arrays[f"{split}_images"][ix.numpy()], arrays[f"{split}_labels"][ix.numpy()]
        x = torch.from_numpy(images).unsqueeze(1).float() / 255  # (B, 1, H, W)
        if task == "vit":
            return to_device(x, torch.from_numpy(labels.astype(np.int64)))
        rng = random.Random(torch.randint(2 ** 62, (1,), generator=generator).item())  # from data_gen: resumes replay it
        return to_device(x, torch.from_numpy(prepare.encode_captions(prepare.captions(labels, images, rng))))

    def score_images(depth: int | None) -> tuple[float, float]:
        """Mean val loss and accuracy at one depth: top-1 (vit) or zero-shot from held-out prompts (siglip)."""
        loss = correct = 0.0
        for x, y, labels in val_batches:
            logits, batch_loss = raw_model(x, y, r=depth)
            predicted = logits.argmax(1) if task == "vit" else raw_model.zero_shot(x, prompts, r=depth)
            loss, correct = loss + batch_loss.item(), correct + (predicted == labels).sum().item()
        return loss / len(val_batches), correct / sum(len(labels) for *_, labels in val_batches)


# --- model ---
ModelConfig, Model = {"lm": (GPTConfig, GPT), "vit": (ViTConfig, ViT), "siglip": (SigLIPConfig, SigLIP)}[task]
model_fields = {f.name for f in fields(ModelConfig)}
model_args = {k: config[k] for k in model_fields if k in config} | data_args
ckpt_path = os.path.join(out_dir, "ckpt.pt")
if init_from not in ("scratch", "resume"):
    fail(f"init_from='{init_from}' is not one of scratch, resume")
ckpt = load_checkpoint(ckpt_path, need=("optimizer", "flops", "best_val_loss", "rng")) if init_from == "resume" else None
if ckpt is not None:
    diff = [k for k in model_args if ckpt["model_args"].get(k) != model_args[k]]
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
recursion = model.recursion
if recursion.recursive:
    for r_eval in eval_r:
        try:
            if type(r_eval) is not int:
                raise ValueError(f"r={r_eval!r} must be a whole number")
            recursion.rounds(r_eval)
        except ValueError as e:
            fail(f"eval_r={eval_r}: {e}")

# --- compute matching: the budget fixes the length, and the length fixes the schedule ---
tokens_per_iter = gradient_accumulation_steps * world_size * batch_size * tokens_per_example
flops_per_token = model.flops_per_token(train=True)  # expected value under sampled rounds
flops_per_iter = flops_per_token * tokens_per_iter
if flop_budget < 0:
    fail(f"flop_budget={flop_budget} must be >= 0 (0 = train for max_iters)")
if flop_budget > 0 and "max_iters" in overridden:
    fail(f"max_iters={max_iters} and flop_budget={flop_budget:g} both set the run length; pass --flop_budget=0 to use max_iters")
if flop_budget > 0:
    max_iters = round(flop_budget / flops_per_iter)
    if max_iters < 1:
        fail(f"flop_budget={flop_budget:.3g} is less than one iteration ({flops_per_iter:.3g} FLOPs); raise it")
if max_iters < 1 or warmup_iters < 0 or eval_interval < 1 or log_interval < 1 or eval_iters < 1:
    fail(f"need max_iters >= 1, warmup_iters >= 0, eval_interval, log_interval, eval_iters >= 1 "
         f"(got {max_iters}, {warmup_iters}, {eval_interval}, {log_interval}, {eval_iters})")
warmup = min(warmup_iters, max_iters // 10) if flop_budget > 0 else warmup_iters  # short runs keep 90% for decay


def get_lr(it: int) -> float:
    """Linear warmup, then cosine decay reaching min_lr exactly at this run's own max_iters."""
    if it < warmup:
        return learning_rate * (it + 1) / (warmup + 1)
    progress = (it - warmup) / max(1, max_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (learning_rate - min_lr)


try:
    optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
except ValueError as e:  # AdamW's own check of learning_rate, betas, weight_decay
    fail(f"{e}; need learning_rate >= 0, 0 <= beta1, beta2 < 1, weight_decay >= 0")
data_gen = torch.Generator().manual_seed(seed)  # identical on every rank: ranks slice one global batch
rounds_gen = torch.Generator().manual_seed(seed + 1_000_003)  # stochastic depth: untouched by data or dropout
iter_num, flops_done, best_val_loss = 0, 0.0, float("inf")
if ckpt is not None:
    optimizer.load_state_dict(ckpt["optimizer"])
    iter_num, flops_done, best_val_loss = ckpt["iter_num"], ckpt["flops"], ckpt["best_val_loss"]
    data_gen.set_state(ckpt["rng"]["data"])
    rounds_gen.set_state(ckpt["rng"]["rounds"])
    torch.set_rng_state(ckpt["rng"]["torch"][rank] if rank < len(ckpt["rng"]["torch"]) else ckpt["rng"]["torch"][0])
    if scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])  # float16's loss scale and its growth counter
ckpt = None  # free the copy of the weights
raw_model = model
if compile:
    if master:
        print("compiling each block (takes a minute)...")
    for block in [m for m in model.modules() if isinstance(m, Block)]:  # per block: a new r never recompiles
        block.compile(dynamic=False)
if ddp:
    model = DDP(model, device_ids=[int(os.environ["LOCAL_RANK"])] if device_type == "cuda" else None)

val_gen = torch.Generator().manual_seed(20250211)  # the same validation windows in every run and every eval
if task == "lm":
    val_batches = [get_batch("val", val_gen) for _ in range(eval_iters)]
else:  # the first eval_iters * batch_size val images in order (all 10,000 at 40 x 250), with their labels
    val_batches = [(*get_batch("val", val_gen, ix), torch.from_numpy(arrays["val_labels"][ix.numpy()].astype(np.int64)).to(device))
                   for ix in torch.arange(min(eval_iters * batch_size, len(arrays["val_images"]))).split(batch_size)]
train_depth = recursion.cfg.r if recursion.recursive else None  # stochastic runs are scored at their full r
depths = sorted({train_depth, *eval_r}) if recursion.recursive else [None]


@torch.no_grad()
def estimate_val_loss() -> tuple[dict, dict]:
    """Mean validation loss over the fixed batches, at every evaluated depth (under DDP: over all ranks' slices),
    and for image tasks the accuracy at every depth (every rank scores the same images)."""
    raw_model.eval()
    out, accs = {}, {}
    for depth in depths:
        with autocast:
            if task == "lm":
                out[depth] = sum(raw_model(x, y, r=depth)[1].item() for x, y in val_batches) / len(val_batches)
            else:
                out[depth], accs[depth] = score_images(depth)
    raw_model.train()
    return dict(zip(out, mean_over_ranks(list(out.values())))), accs


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


n_params, n_extra = raw_model.get_num_params(), raw_model.get_num_extra_params()
log_path = os.path.join(out_dir, "log.jsonl")
if master:
    plan_text = recursion.describe() + (f", in the {rins_tower} tower(s)" if task == "siglip" and recursion.recursive else "")
    rows = [("overrides", ", ".join(f"{k}={v!r}" for k, v in overridden.items()) or "none (train.py defaults)"),
            ("device", f"{device_name} ({dtype}, {world_size} process{'es' if world_size > 1 else ''})"),
            ("plan", plan_text),
            ("parameters", f"{n_params:,} non-embedding-position" + (f" + {n_extra:,} recursion extras "
                                                                    f"({100 * n_extra / n_params:.2f}%)" if n_extra else "")),
            ("FLOPs/token (train)", f"{flops_per_token / 1e6:.3f} M (every application counted, head included)"),
            ("tokens/iteration", f"{tokens_per_iter:,}"),
            ("iterations", f"{max_iters:,} (warmup {warmup}, cosine to {min_lr:g} at {max_iters})"),
            ("tokens to see", f"{max_iters * tokens_per_iter:,}"),
            ("FLOP budget", f"{flop_budget:.4g} -> planned {max_iters * flops_per_iter:.4g} "
                            f"({100 * (max_iters * flops_per_iter / flop_budget - 1):+.2f}%)" if flop_budget else "none (max_iters)")]
    print("\n".join(f"{k:>20}: {v}" for k, v in rows))
    if recursion.cfg.round_sampler != "fixed":
        print(f"{'training rounds':>20}: " + ", ".join(f"P({k})={p:.3f}" for k, p in recursion.round_probs.items() if p > 5e-4))
if master and not dry_run:
    try:
        os.makedirs(out_dir, exist_ok=True)
        with open(log_path, "a"):
            pass
    except OSError as e:
        fail(f"cannot write to out_dir '{out_dir}' ({e.strerror}); choose a writable --out_dir")
    with open(log_path, "a") as f:
        f.write(json.dumps({"event": "start", "config": config, "commit": git_commit(), "device": device_name,
                            "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
                            "n_params": n_params, "n_extra_params": n_extra, "plan": plan_text,
                            "flops_per_token": flops_per_token, "tokens_per_iter": tokens_per_iter, "max_iters": max_iters,
                            "flop_budget": flop_budget or None, "resumed_from": iter_num if init_from == "resume" else None}) + "\n")


def log_eval(event: str, losses: dict, lr: float, train_loss: float | None, ms_per_iter: float, elapsed: float, accs: dict):
    record = {"event": event, "iter": iter_num, "tokens": iter_num * tokens_per_iter, "flops": flops_done, "lr": lr,
              "train_loss": train_loss, "val_loss": losses[train_depth],
              "ms_per_iter": ms_per_iter, "elapsed_s": elapsed}
    if recursion.recursive:
        record["val_loss_r"] = {str(d): v for d, v in losses.items()}
    if accs:  # image tasks
        name = "val_acc" if task == "vit" else "zeroshot_acc"
        record[name] = accs[train_depth]
        record |= {f"{name}_r": {str(d): v for d, v in accs.items()}} if recursion.recursive else {}
    with open(log_path, "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def save(rng: list):
    try:
        save_checkpoint({"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                         "model_args": model_args, "config": config, "iter_num": iter_num, "flops": flops_done,
                         "best_val_loss": best_val_loss,
                         "rng": {"data": data_gen.get_state(), "rounds": rounds_gen.get_state(), "torch": rng}}, ckpt_path)
    except OSError as e:
        fail(f"cannot write checkpoint {ckpt_path} ({e.strerror}); {last_good()} is intact; free space or fix out_dir, then resume")


def last_good() -> str:
    return f"last good checkpoint: {ckpt_path} (iter {saved_iter})" if saved_iter is not None else "no checkpoint was written"


def mean_over_ranks(values: list[float]) -> list[float]:
    """Average per-rank numbers (each rank scores its own slice of a global batch)."""
    if not ddp:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return (t / world_size).tolist()


def gather_rng() -> list:
    """Every rank's dropout/noise RNG state, so a resumed DDP run continues each one."""
    state = torch.get_rng_state()
    if not ddp:
        return [state]
    states = [None] * world_size
    torch.distributed.all_gather_object(states, state)
    return states


if dry_run:  # every rank stops here, before anything is written
    sys.exit(0)
# --- the loop ---
start = time.time()
skip_eval = init_from == "resume"  # the checkpoint was written right after this iteration's eval
saved_iter = iter_num if init_from == "resume" else None  # the iteration ckpt.pt holds
loss_sum, loss_count, t_log, it_log = 0.0, 0, time.time(), iter_num
ms_per_iter, lr = 0.0, get_lr(iter_num)
peak = peak_flops(device_name, dtype)
while True:
    lr = get_lr(iter_num)
    for group in optimizer.param_groups:
        group["lr"] = lr
    last = iter_num == max_iters
    if (iter_num % eval_interval == 0 or last) and not skip_eval:
        losses, accs = estimate_val_loss()
        train_loss = mean_over_ranks([loss_sum])[0] / loss_count if loss_count else None
        loss_sum, loss_count = 0.0, 0
        if not all(math.isfinite(v) for v in losses.values()):
            fail(f"validation loss is not finite at iter {iter_num} ({losses}); stopping. "
                 f"{last_good()}; lower learning_rate and resume with --init_from=resume")
        if master:
            record = log_eval("done" if last else "eval", losses, lr, train_loss, ms_per_iter, time.time() - start, accs)
            shown = ", ".join(f"r={k} {v:.4f}" for k, v in record.get("val_loss_r", {}).items())
            print(f"eval iter {iter_num}: val loss {record['val_loss']:.4f}" + (f" ({shown})" if shown else "")
                  + (f", train loss {train_loss:.4f}" if train_loss else "") + f", {flops_done:.3g} FLOPs"
                  + (", accuracy " + ", ".join(f"r={k} {v:.4f}" if k else f"{v:.4f}" for k, v in accs.items()) if accs else ""))
            best_val_loss = min(best_val_loss, record["val_loss"])
        t_log, it_log = time.time(), iter_num  # keep eval time out of ms/iter
        rng = gather_rng()  # a collective under DDP: every rank takes part
        if master:
            save(rng)
        saved_iter = iter_num
    skip_eval = False
    if last:
        break
    rounds = recursion.sample_rounds(rounds_gen) if recursion.cfg.round_sampler != "fixed" else None
    for micro_step in range(gradient_accumulation_steps):
        x, y = get_batch("train", data_gen)
        if ddp:  # all-reduce gradients once, on the last micro-step
            model.require_backward_grad_sync = micro_step == gradient_accumulation_steps - 1
        with autocast:
            _, loss = model(x, y, r=rounds)
        scaler.scale(loss / gradient_accumulation_steps).backward()
        loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
    if not math.isfinite(loss_sum):
        fail(f"training loss is not finite at iter {iter_num}; stopping before it spreads. "
             f"{last_good()}; lower learning_rate and resume with --init_from=resume")
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    flops_done += raw_model.flops_per_token(train=True, r=rounds) * tokens_per_iter  # realised, at the drawn depth
    iter_num += 1
    if iter_num % log_interval == 0 and master:
        if device_type == "cuda":
            torch.cuda.synchronize()
        dt = (time.time() - t_log) / (iter_num - it_log)
        ms_per_iter, t_log, it_log = 1000 * dt, time.time(), iter_num
        achieved = flops_per_iter / dt
        mfu = f", MFU {100 * achieved / world_size / peak:.1f}%" if peak else ""
        eta = (max_iters - iter_num) * dt
        print(f"iter {iter_num}/{max_iters}: loss {loss.item():.4f}, {ms_per_iter:.0f} ms/iter, "
              f"{tokens_per_iter / dt:,.0f} tok/s, {achieved / 1e12:.3f} TFLOP/s{mfu}, ETA {eta // 60:.0f}m{eta % 60:02.0f}s")
if master:
    print(f"done: {iter_num} iterations, {flops_done:.4g} FLOPs"
          + (f" ({100 * (flops_done / flop_budget - 1):+.2f}% of budget)" if flop_budget else "")
          + f", best val loss {best_val_loss:.4f}, {time.time() - start:.0f}s")
if ddp:
    destroy_process_group()
