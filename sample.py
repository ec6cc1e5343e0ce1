"""
Sample from a trained nanoRINS model, at any recursion depth.

    python sample.py --out_dir=out/shakespeare_rins --start="ROMEO:" --r=3
    python sample.py --out_dir=out/arena_latent --exit=latent --exit_threshold=0.03 --max_r=6

Generation uses a KV cache with one entry per *application* in the plan: round k of A attends
only to round-k keys and values, exactly as in training. With --exit each new token stops recursing
once its state settles (exits.py: the tests and the cache rule); the prompt runs all max_r rounds.
"""

import json
import os
import sys

import torch

from checkpoint import load_checkpoint, load_model_state
from configurator import check, configure
from exits import Exits, flops, summary
from model import GPT, GPTConfig
from tokenizer import load_tokenizer

# -----------------------------------------------------------------------------
# --- checkpoint ---
out_dir = "out"  # directory holding ckpt.pt (from train.py)
r = 0  # recursion rounds at inference; 0 = the depth the model was trained with
# --- sampling ---
start = "\n"  # prompt, or "FILE:path" to read it from a file
num_samples = 3  # independent samples, each printed after the prompt
max_new_tokens = 300  # tokens generated per sample
temperature = 0.8  # divides the logits: < 1 sharper, > 1 flatter; 0 = greedy
top_k = 200  # sample among the k most likely tokens only
seed = 1337  # seeds the sampling, so equal seeds give equal samples
# --- depth at inference ---
exit = "none"  # per-token early exit while decoding: 'none' | 'latent' (the stream settles) | 'kl' (the prediction)
exit_threshold = 0.03  # a token stops once its test is below this (latent: Huginn's default; kl: try 1e-3)
max_r = 0  # with exit: the most rounds a token runs, >= 1; left out = the depth the model was trained with
# --- system ---
use_cache = True  # KV cache, one entry per application in the plan (False: recompute the whole context per token)
kv_share = "none"  # 'first' | 'last': later rounds read one round's KV cache (less memory, not as trained)
device = "cpu"  # cpu, cuda, cuda:N or mps
# -----------------------------------------------------------------------------
_config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, str, list))]
_given = configure(globals(), sys.argv[1:], "sample.py")
CHECKS = {  # every key's allowed values (see configurator.check)
    "out_dir": ("re", (r".+", "a non-empty path")), "r": (">=", 0), "start": ("re", (r"(?s).+", "a non-empty prompt")),
    "num_samples": (">=", 1), "max_new_tokens": (">=", 0), "temperature": (">=", 0), "top_k": (">=", 1),
    "seed": (">=", 0), "use_cache": ("in", (False, True)), "kv_share": ("in", ("none", "first", "last")),
    "device": ("re", (r"cpu|mps|cuda(:\d+)?", "one of cpu, cuda, cuda:N, mps")),
    "exit": ("in", ("none", "latent", "kl")), "exit_threshold": (">=", 0),
    "max_r": (">=", 1 if "max_r" in _given else 0),  # 0: only as the default, meaning the trained depth
}
if problems := check({k: globals()[k] for k in _config_keys}, CHECKS, "sample.py"):
    raise SystemExit("\n".join(problems))
try:
    torch.empty(0, device=device)
except (RuntimeError, AssertionError) as e:
    raise SystemExit(f"sample.py: device='{device}' is not usable here ({str(e).splitlines()[0][:80]}); "
                     "use cpu, cuda, cuda:N or mps")
if kv_share != "none" and not use_cache:
    raise SystemExit(f"sample.py: kv_share='{kv_share}' shares the KV cache, so it needs use_cache=True")
if exit == "none" and {"exit_threshold", "max_r"} & set(_given):
    raise SystemExit("sample.py: exit_threshold and max_r apply to early exit; add --exit=latent or --exit=kl")
if exit != "none" and (r or kv_share != "none" or not use_cache):
    raise SystemExit(f"sample.py: exit='{exit}' sets the depth per token and keeps KV caches of its own; "
                     "give max_r instead of r, and keep kv_share='none' and use_cache=True")
torch.manual_seed(seed)

ckpt_path = os.path.join(out_dir, "ckpt.pt")
ckpt = load_checkpoint(ckpt_path, need=("config",))  # config names the data set, hence the tokenizer
try:
    model = GPT(GPTConfig(**ckpt["model_args"]))
except (TypeError, ValueError) as e:
    raise SystemExit(f"sample.py: {ckpt_path} has model_args this model.py cannot build ({e})")
load_model_state(model, ckpt["model"], ckpt_path)
model.eval().to(device)
r = r or None  # None: the depth it was trained with
try:
    exits = None if exit == "none" else Exits(model, exit, exit_threshold, max_r or None)
    r = exits.max_r if exits else r
    print(model.plan.describe(r))
except ValueError as e:
    raise SystemExit(f"sample.py: {e}")

meta_path = os.path.join(ckpt["config"].get("data_dir", "data"), ckpt["config"]["dataset"], "meta.json")
try:
    with open(meta_path) as f:
        encode, decode = load_tokenizer(json.load(f))
except FileNotFoundError:
    raise SystemExit(f"sample.py: the tokenizer description {meta_path} is missing; "
                     f"run prepare.py {ckpt['config']['dataset']} again")
except (ValueError, KeyError, TypeError) as e:  # invalid JSON or a meta.json without the tokenizer's fields
    raise SystemExit(f"sample.py: {meta_path} is not a valid tokenizer description ({type(e).__name__}: {e}); "
                     f"run prepare.py {ckpt['config']['dataset']} again")
if start.startswith("FILE:"):
    try:
        with open(start[5:], encoding="utf-8") as f:
            start = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"sample.py: cannot read the prompt file '{start[5:]}' ({e}); "
                         "give --start=FILE:path to a UTF-8 text file")
try:
    ids = encode(start)
except KeyError as e:  # a character-level vocabulary has no entry for it
    raise SystemExit(f"sample.py: the start prompt contains {e.args[0]!r}, which is not in the training data's "
                     "vocabulary; use only characters the model has seen")
if not ids:
    raise SystemExit("sample.py: the start prompt encodes to no tokens; give at least one character")
x = torch.tensor(ids, dtype=torch.long, device=device)[None, ...]
for _ in range(num_samples):
    y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k, r=r, use_cache=use_cache,
                       kv_share=kv_share, exits=exits)
    print(decode(y[0].tolist()))
    print("---------------")
if exits and exits.history:  # the rounds of every decoded token (the first new token comes from the prompt's pass)
    rounds = torch.cat(exits.history).flatten().cpu()
    s, executed = summary(rounds), flops(model, rounds, exit, r).mean().item()
    full = model.flops_per_token(train=False, r=r)
    print(f"exit={exit} threshold {exit_threshold:g}, max_r {r}: mean rounds per token {s['mean']:.2f} over "
          f"{rounds.numel()} decoded tokens (p90 {s['p90']:.0f}; " + ", ".join(
              f"{k}: {v:.0%}" for k, v in s["hist"].items()) + f"); executed {executed / 1e6:.3f} MFLOP/token with "
          f"the test, {1 - executed / full:+.1%} saved against all {r} rounds ({full / 1e6:.3f})")
