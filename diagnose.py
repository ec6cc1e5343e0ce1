"""
Look inside a trained language model, one plan application at a time.

    python diagnose.py --out_dir=out/rins_small            # at the trained depth
    python diagnose.py --out_dir=out/rins_small --r=4 --batches=8

On fixed validation batches (the first windows train.py scores) it measures after every application:
the logit-lens loss (ln_f and the head applied to the stream there: what the plan has achieved so far),
the stream's RMS norm, and its cosine similarity to the previous application and to the same point of
the unit one round earlier (near 1: the extra round hardly changes anything). Per physical block it gives
the share of the gradient (one gradient of the mean loss; a shared block sums its applications').
For a latent model (injection), it also asks whether the unit reads the state it carries from round to
round: the loss when that state is replaced by zeros, noise or another sequence's state (state_use).
On a grammar (prepare.py grammar_*: windows start at chunk starts, as train.py draws them), it also splits the lens
loss by the nesting depth of the predicted token, less the true process's -ln p of the same tokens (by_depth): how
far from perfect each application is at each depth, so you see where in a sentence the extra rounds help.
Writes out_dir/diagnose_r<r>.png (and _depth.png) and out_dir/diagnose_r<r>.md and prints the tables.
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.nn import functional as F

import grammar
from checkpoint import load_checkpoint, load_model_state
from model import GPT, GPTConfig
from plan import applications, block_letters, colour, segments


def streams(model: GPT, x, y, r: int | None = None) -> tuple[list, list, torch.Tensor]:
    """Run the model once; return the stream entering the first application, each application's output
    (forward hooks on the blocks: every call is one application, in plan order), its block index, and the loss."""
    states, blocks = [], []

    def hook(block, args, output):
        if not states:
            states.append(args[0])
        states.append(output)
        blocks.append(index[block])

    index = {block: i for i, block in enumerate(model.transformer.h)}
    handles = [block.register_forward_hook(hook) for block in model.transformer.h]
    try:
        _, loss = model(x, y, r=r)
    finally:
        for handle in handles:
            handle.remove()
    return states, blocks, loss


def lens_loss(model: GPT, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss of the model's own final norm and head read off an intermediate stream (the logit lens)."""
    # exercise 6: the logit lens
    logits = model.lm_head(model.transformer.ln_f(h))  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)
    # end of exercise 6


def rms(h: torch.Tensor) -> torch.Tensor:
    return h.pow(2).mean(-1).sqrt().mean()  # per token over channels, then averaged over tokens


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a, b, dim=-1).mean()  # per token, averaged over tokens


def block_grad_norms(model: GPT) -> list[float]:
    """L2 norm of each physical block's gradient; autograd already summed a shared block's applications."""
    return [sum(p.grad.pow(2).sum() for p in block.parameters() if p.grad is not None).sqrt().item()
            for block in model.transformer.h]


def diagnose(model: GPT, batches: list, r: int | None = None) -> dict:
    """Per application: lens loss, RMS norm, cosine to the previous application and to one round earlier;
    per block: gradient norm and its share of all blocks' squared gradient norm. Averages over batches."""
    apps = applications(model, r)
    unit = len(model.plan.unit)
    later = [name.startswith("round ") and name != "round 1" for _, name in apps]  # has a previous round
    n = len(apps)
    lens, norm, cos_app, cos_round, loss_sum = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), 0.0
    model.eval()
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        states, _, loss = streams(model, x, y, r)
        (loss / len(batches)).backward()  # gradients accumulate to those of the mean loss
        loss_sum += loss.item()
        with torch.no_grad():
            for t in range(n):
                h = states[t + 1]  # states[0] is the stream entering the first application
                lens[t] += lens_loss(model, h, y).item()
                norm[t] += rms(h).item()
                cos_app[t] += cosine(h, states[t]).item()
                if later[t]:
                    cos_round[t] += cosine(h, states[t + 1 - unit]).item()
    grads = np.array(block_grad_norms(model))
    model.zero_grad(set_to_none=True)
    k = len(batches)
    return {"apps": apps, "lens": lens / k, "norm": norm / k, "cos_app": cos_app / k,
            "cos_round": np.where(later, cos_round / k, np.nan),
            "loss": loss_sum / k, "grad": grads, "share": grads ** 2 / (grads ** 2).sum()}


@torch.no_grad()
def state_use(model: GPT, batches: list, r: int | None = None) -> dict:
    """Does a model with injection read the state it carries from round to round? The loss when the state
    entering rounds 2..r is replaced by zeros, by noise of its own std, or by another sequence's state (the batch
    rolled by one row: the same statistics, none of the content), against the loss as trained and at r = 1; and
    the RMS of the state's and the input's contributions to what a round starts from (W_s s and W_e e, or s and e)."""
    extras, r = model.extras, model.plan.check_r(r)
    original, calls, parts = extras.before_round, [0], {"state": [], "input": []}

    def probe(replace):
        def before_round(s, e):
            k, calls[0] = calls[0] % r, calls[0] + 1  # eval runs exactly r rounds per forward
            if k and replace:
                s = replace(s)
            elif not replace:
                normed = F.layer_norm(s, s.shape[-1:]) if extras.state_norm else s
                w = extras.inject.weight if extras.inject is not None else None
                state, inp = (normed, e) if w is None else (normed @ w[:, :s.size(-1)].T, e @ w[:, s.size(-1):].T)
                parts["state"].append(rms(state).item())
                parts["input"].append(rms(inp).item())
            return original(s, e)
        return before_round

    replacements = {"as trained": None, "zeros": torch.zeros_like,
                    "noise of the state's std": lambda s: torch.randn_like(s) * s.std(),
                    "another sequence's state": lambda s: s.roll(1, dims=0)}
    losses = {}
    model.eval()
    try:
        for name, replace in replacements.items():
            extras.before_round = probe(replace)
            losses[name] = sum(model(x, y, r=r)[1].item() for x, y in batches) / len(batches)
    finally:
        del extras.before_round  # back to the class's method
    losses["r = 1"] = sum(model(x, y, r=1)[1].item() for x, y in batches) / len(batches)
    return {"r": r, "losses": losses, "state_rms": np.mean(parts["state"]), "input_rms": np.mean(parts["input"])}


def state_table(u: dict) -> str:
    rows = [f"| state entering rounds 2..{u['r']} | loss | vs as trained |", "|---|---:|---:|"]
    rows += [f"| {name} | {v:.4f} | {v - u['losses']['as trained']:+.4f} |" for name, v in u["losses"].items()]
    return "\n".join(rows + ["", f"RMS of what a round starts from: state part {u['state_rms']:.3f}, "
                                  f"input part {u['input_rms']:.3f}"])


KINDS = ("words the parse fixes (p = 1, '.' excluded)", "choices (p < 1)")


@torch.no_grad()
def by_depth(model: GPT, batches: list, depth: list, nll: list, r: int | None = None) -> dict:
    """Per nesting depth of the predicted token (depth, nll: per batch, the targets' depth and true -ln p), and per
    kind (a word the parse fixes, such as a closing bracket, or a choice): its share of the tokens, the floor (mean
    true -ln p) and each application's lens loss less that floor (the excess)."""
    n_app, sums = len(applications(model, r)), {}
    model.eval()
    for (x, y), dep, ll in zip(batches, depth, nll):
        states = streams(model, x, y, r)[0]
        lens = torch.stack([F.cross_entropy(model.lm_head(model.transformer.ln_f(h)).flatten(0, 1), y.flatten(),
                                            reduction="none") for h in states[1:]]).double().cpu()  # (apps, tokens)
        ll, dep = torch.as_tensor(ll, dtype=torch.float64).flatten(), torch.as_tensor(dep).flatten()
        groups = [(k, dep == k) for k in dep.unique().tolist()] + [(KINDS[0], (ll == 0) & (dep > 0)),
                                                                   (KINDS[1], ll > 0)]
        for k, at in groups:
            s = sums.setdefault(k, [0, 0.0, np.zeros(n_app)])
            s[0], s[1] = s[0] + int(at.sum()), s[1] + float(ll[at].sum())
            s[2] = s[2] + (lens[:, at] - ll[at]).sum(1).numpy()
    ks = sorted(k for k in sums if isinstance(k, int)) + [k for k in KINDS if sums.get(k, [0])[0]]
    total = sum(sums[k][0] for k in ks if isinstance(k, int))
    return {"depths": ks, "share": [sums[k][0] / total for k in ks], "floor": [sums[k][1] / sums[k][0] for k in ks],
            "excess": np.array([sums[k][2] / sums[k][0] for k in ks]), "apps": applications(model, r)}


def depth_table(d: dict) -> str:
    apps, depth = d["apps"], [isinstance(k, int) for k in d["depths"]]
    rows = ["| depth of the predicted token | share of tokens | floor | "
            + " | ".join(f"excess after {t + 1} ({name})" for t, (_, name) in enumerate(apps)) + " |",
            "|---:|---:|---:|" + "---:|" * len(apps)]
    line = lambda k, share, fl, ex: f"| {k} | {share:.3f} | {fl:.4f} | " + " | ".join(f"{e:+.4f}" for e in ex) + " |"
    rows += [line(*v) for v, is_depth in zip(zip(d["depths"], d["share"], d["floor"], d["excess"]), depth) if is_depth]
    share = np.array(d["share"]) * depth
    rows.append(line("all", 1.0, share @ np.array(d["floor"]), share @ d["excess"]))
    return "\n".join(rows + [line(*v) for v, is_depth in zip(zip(d["depths"], d["share"], d["floor"], d["excess"]),
                                                               depth) if not is_depth])


def plot_depth(d: dict, title: str, path: str):
    """Excess loss against nesting depth, one line per application (the model's own output in black)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    n = sum(isinstance(k, int) for k in d["depths"])  # the depth rows; the kinds follow them
    for t, (i, name) in enumerate(d["apps"]):
        last = t == len(d["apps"]) - 1
        ax.plot(d["depths"][:n], np.maximum(d["excess"][:n, t], 1e-4), marker="o", ms=3, lw=2 if last else 1,
                color="black" if last else colour(name), alpha=1 if last else 0.6, label=f"{t + 1}: {name} (b{i})")
    ax.set(yscale="log", xlabel="nesting depth of the predicted token (0: the '.' that ends a sentence)",
           ylabel="lens loss - floor (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tables(model: GPT, d: dict) -> str:
    fmt = lambda v: "-" if np.isnan(v) else f"{v:.4f}"
    rows = ["| application | block | round | lens loss | RMS norm | cos to previous application "
            "| cos to previous round |",
            "|---:|---:|---|---:|---:|---:|---:|"]
    rows += [f"| {t + 1} | {i} | {name} | {d['lens'][t]:.4f} | {d['norm'][t]:.3f} | {d['cos_app'][t]:.4f} | "
             f"{fmt(d['cos_round'][t])} |"
             for t, (i, name) in enumerate(d["apps"])]
    runs = [sum(i == j for i, _ in d["apps"]) for j in range(model.config.n_layer)]
    rows += ["", "| block | letter | applications | gradient norm | share of squared gradient norm |",
             "|---:|---|---:|---:|---:|"]
    rows += [f"| {j} | {letter} | {runs[j]} | {d['grad'][j]:.4g} | {d['share'][j]:.3f} |"
             for j, letter in enumerate(block_letters(model.plan))]
    return "\n".join(rows)


def plot(model: GPT, d: dict, r: int | None, title: str, path: str):
    apps, x = d["apps"], np.arange(1, len(d["apps"]) + 1)
    dots = [colour(name) for _, name in apps]
    fig, axes = plt.subplots(2, 2, figsize=(max(10, 0.55 * len(apps) + 4), 7.5))
    panels = [(axes[0, 0], "logit-lens loss after each application", [("lens", "lens loss")]),
              (axes[0, 1], "RMS norm of the residual stream", [("norm", "RMS norm")]),
              (axes[1, 0], "cosine similarity of the stream",
               [("cos_app", "to the previous application"), ("cos_round", "to the same point one round earlier")])]
    for ax, name, series in panels:
        t = 1
        for seg, layers in segments(model, r):  # shade each part of the plan in its plan.py colour
            ax.axvspan(t - 0.5, t + len(layers) - 0.5, color=colour(seg), alpha=0.12, lw=0)
            ax.text(t + (len(layers) - 1) / 2, 1.01, seg, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=7, color=colour(seg), weight="bold")
            t += len(layers)
        for (key, label), style in zip(series, ("-", "--")):
            ax.plot(x, d[key], style, color="black", lw=1, label=label, zorder=1)
            ax.scatter(x, d[key], c=dots, s=28, zorder=2, edgecolors="black", linewidths=0.4)
        if name.startswith("logit"):
            ax.axhline(d["loss"], color="gray", ls="--", lw=1, label=f"model loss {d['loss']:.3f}")
        ax.set_xticks(x, [f"{t}\nb{i}" for t, (i, _) in zip(x, apps)], fontsize=7)
        ax.set_title(name, fontsize=10, pad=14)
        ax.set_xlabel("application and its block", fontsize=8)
        ax.legend(fontsize=7)
    ax = axes[1, 1]
    letters = block_letters(model.plan)
    runs = [sum(i == j for i, _ in apps) for j in range(model.config.n_layer)]
    ax.bar(range(len(runs)), d["share"], color=["tab:gray" if k == 1 else "tab:blue" for k in runs], edgecolor="black",
           lw=0.5)
    ax.set_xticks(range(len(runs)), [f"{j} {letter}\n×{k}" for j, (letter, k) in enumerate(zip(letters, runs))],
                  fontsize=7)
    ax.set_title("share of the squared gradient norm per block (blue: shared)", fontsize=10)
    ax.set_xlabel("physical block, letter, applications", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def val_batches(ckpt: dict, data_dir: str | None, n: int, batch_size: int | None) -> tuple[list, dict]:
    """The first n of train.py's fixed validation batches (same generator seed, same window draw: at chunk starts
    for a grammar), and for a grammar the targets' nesting depth and true -ln p per batch (else {})."""
    cfg, block_size = ckpt["config"], ckpt["model_args"]["block_size"]
    root = os.path.join(data_dir or cfg.get("data_dir", "data"), cfg["dataset"])
    path = os.path.join(root, "val.bin")
    if not os.path.isfile(path):
        sys.exit(f"diagnose.py: {path} is missing; prepare the dataset ({cfg['dataset']}) or pass --data_dir")
    data = np.memmap(path, dtype=np.uint16, mode="r")
    chunk = grammar.chunk_of(root)
    gen, B = torch.Generator().manual_seed(20250211), batch_size or cfg["batch_size"]
    batches, per_batch = [], {"depth": [], "nll": []} if chunk else {}
    for _ in range(n):
        ix = (torch.randint(len(data) // chunk, (B,), generator=gen) * chunk if chunk else
              torch.randint(len(data) - block_size, (B,), generator=gen)).tolist()
        x = torch.from_numpy(np.stack([data[i:i + block_size] for i in ix]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size] for i in ix]).astype(np.int64))
        batches.append((x, y))
        if chunk:
            for k, arr in grammar.targets(root, "val", ix, block_size).items():
                per_batch[k].append(arr)
    return batches, per_batch


def main(argv: list[str]):
    p = argparse.ArgumentParser(prog="diagnose.py", description="Per plan application of a trained LM: logit-lens "
                                "loss, RMS norm, cosine to the previous application and round; per block: gradient "
                                "share. Writes out_dir/diagnose_r<r>.{md,png}.")
    p.error = lambda msg: sys.exit(f"diagnose.py: {msg}; see python diagnose.py --help")  # one line, not usage + error
    p.add_argument("--out_dir", required=True, help="run directory with ckpt.pt (from train.py); outputs go here too")
    p.add_argument("--r", type=int, help="rounds to run (default: the trained r)")
    p.add_argument("--batches", type=int, default=8, help="validation batches (default 8)")
    p.add_argument("--batch_size", type=int, help="sequences per batch (default: the run's batch_size)")
    p.add_argument("--data_dir", help="where <dataset>/val.bin lives (default: the run's data_dir)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    args = p.parse_args(argv)
    if args.batches < 1 or (args.batch_size is not None and args.batch_size < 1):
        p.error(f"need batches >= 1 and batch_size >= 1 (got {args.batches}, {args.batch_size})")
    path = os.path.join(args.out_dir, "ckpt.pt")
    ckpt = load_checkpoint(path, need=("config",))
    task = ckpt["config"].get("task", "lm")
    if task != "lm":
        sys.exit(f"diagnose.py: {path} is a task='{task}' checkpoint; only language-model checkpoints (task='lm') "
                 "are supported")
    model = GPT(GPTConfig(**ckpt["model_args"]))
    load_model_state(model, ckpt["model"], path)
    try:
        text = model.plan.describe(args.r)
    except ValueError as e:
        sys.exit(f"diagnose.py: {e}")
    model.to(args.device)
    batches, grammar = val_batches(ckpt, args.data_dir, args.batches, args.batch_size)
    batches = [(x.to(args.device), y.to(args.device)) for x, y in batches]
    d = diagnose(model, batches, args.r)
    r = args.r or model.config.r
    head = (f"{text}\n{len(batches)} val batches of {tuple(batches[0][0].shape)} tokens, "
            f"checkpoint iter {ckpt['iter_num']}, loss {d['loss']:.4f}")
    table = tables(model, d)
    if model.config.injection != "none":  # a latent model: does it use the state it carries?
        table += "\n\n" + state_table(state_use(model, batches, args.r))
    stem = os.path.join(args.out_dir, f"diagnose_r{r}")
    if grammar:  # a grammar: where in a sentence each application stands against perfect
        deep = by_depth(model, batches, grammar["depth"], grammar["nll"], args.r)
        table += "\n\nExcess over the true process (lens loss - floor, nats/token) by nesting depth:\n\n" + \
            depth_table(deep)
        plot_depth(deep, head.splitlines()[0], stem + "_depth.png")
    print(head + "\n\n" + table)
    with open(stem + ".md", "w") as f:
        f.write(f"# diagnose.py --out_dir={args.out_dir} --r={r} --batches={args.batches}\n\n{head}\n\n{table}\n")
    plot(model, d, args.r, head, stem + ".png")
    print(f"wrote {stem}.md and {stem}.png")


if __name__ == "__main__":
    main(sys.argv[1:])
