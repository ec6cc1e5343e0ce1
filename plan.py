"""
Draw an execution plan: which physical block runs at each step, round by round.

    python plan.py 'A^rB' --r=3 --n_layer=8                # writes out/plan.png (out/ is git-ignored)
    python plan.py 'AB^rC' --partition=1:2:1 --r=2 --n_embd=384
    python plan.py --gallery --out=assets/plans.png      # the families side by side
    python plan.py 'A^rB' --r=2 --slides                 # a 16:9 SVG for a slide: out/plan.svg
    python plan.py --gallery --slides                    # one slide per family: out/plans/*.svg

In the figure rows are physical blocks (modules with their own weights) and columns are applications in
execution order, so a row holding several boxes is one block run again with the same weights. Colours mark
the prelude, each round of the '^r' unit and the coda; the title gives the blocks' FLOPs per token along the
plan and the blocks' parameters (the embedding and head are the same in every plan, so they are left out there).
"""

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

from model import GPT, GPTConfig, LETTERS

# signature, family, extra config; drawn with n_layer=4, r=3 so each round is short and three of them are visible
GALLERY = [("AB", "baseline", {}), ("A^rB", "RINS", {}), ("(AB)^r", "RAO (repeat all over)", {}),
           ("AB^r", "late-half recursion", {}), ("blockwise", "MobileLLM block-wise sharing", {}),
           ("reverse", "MobileLLM reverse sharing", {}),
           ("AB^rC", "latent recurrence, partition 1:2:1", {"partition": "1:2:1"})]
ROUND_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:olive", "tab:cyan", "tab:pink", "tab:brown"]


def segments(model, r: int | None = None) -> list[tuple[str, list[int]]]:
    """The plan as named runs of physical block indices: prelude, round 1..r of the unit, coda."""
    plan = model.plan
    r = plan.check_r(r)  # the configured r, or an override the plan accepts (else a one-line ValueError)
    if not plan.recursive:
        return [("single pass", plan.prelude)]
    rounds = [(f"round {k + 1}", plan.unit) for k in range(r)]
    return [(name, layers) for name, layers in [("prelude", plan.prelude), *rounds, ("coda", plan.coda)] if layers]


def applications(model, r: int | None = None) -> list[tuple[int, str]]:
    """(physical block, segment name) for each application, in execution order."""
    return [(i, name) for name, layers in segments(model, r) for i in layers]


def colour(segment: str) -> str:
    if segment.startswith("round "):
        return ROUND_COLOURS[(int(segment.split()[1]) - 1) % len(ROUND_COLOURS)]
    return {"prelude": "tab:gray", "coda": "tab:purple", "single pass": "tab:gray"}[segment]


def block_letters(plan) -> list[str]:
    """Each physical block's letter; at degree d > 1 the letters of every nesting level ('AB' = B inside A)."""
    names = [""] * plan.n_layer

    def split(lo: int, hi: int, degree: int):
        for letter in LETTERS[:len(plan.weights)]:
            part = plan.expand(letter, lo, hi, 1)  # the model's own slicing of [lo, hi)
            for i in part:
                names[i] += letter
            if degree > 1:
                split(part[0], part[-1] + 1, degree - 1)

    split(0, plan.n_layer, plan.degree)
    return names


def summary(model, r: int | None = None) -> str:
    fwd, train = model.flops_per_token(train=False, r=r), model.flops_per_token(train=True, r=r)
    extra = model.get_num_extra_params()
    return (f"FLOPs/token: {fwd / 1e6:.2f} M forward, {train / 1e6:.2f} M to train (every application and the head)\n"
            f"parameters: {model.get_num_params():,} (without position table; {block_params(model):,} in the blocks"
            + (f", {extra:,} of them recursion extras)" if extra else ")"))


def draw(ax, model, r: int | None = None, title: str = "", columns: int = 0, scale: float = 1.0):
    """Rows = physical blocks, columns = applications; `columns` fixes the x extent so several panels share a scale;
    `scale` multiplies every font size (slides)."""
    apps, names = applications(model, r), block_letters(model.plan)
    L, N = model.config.n_layer, len(apps)
    w, h = 0.7, 0.62  # application box size (column and row pitch are 1)
    runs = [sum(j == i for j, _ in apps) for i in range(L)]
    for i, name in enumerate(names):  # the physical blocks with how often each runs, and their lanes
        ax.add_patch(Rectangle((-2.75, -i - h / 2), 1.9, h, facecolor="whitesmoke", edgecolor="black", lw=1))
        ax.text(-1.8, -i, f"block {i}  {name}" + (f"  ×{runs[i]}" if runs[i] > 1 else ""), ha="center", va="center",
                fontsize=8 * scale)
        ax.plot([-0.75, N - 0.3], [-i, -i], color="lightgray", lw=0.8, zorder=0)
    t = 0
    for name, layers in segments(model, r):  # a band above each segment, a faint rule between segments
        ax.add_patch(Rectangle((t - 0.45, 0.55), len(layers) - 0.1, 0.4, facecolor=colour(name), alpha=0.85))
        ax.text(t + (len(layers) - 1) / 2, 0.75, name, ha="center", va="center", fontsize=7.5 * scale, color="white",
                weight="bold")
        if t:
            ax.plot([t - 0.5, t - 0.5], [0.5, -L + 0.5], color="gray", lw=0.6, ls=":", zorder=0)
        t += len(layers)
    for t, (i, name) in enumerate(apps):
        ax.add_patch(Rectangle((t - w / 2, -i - h / 2), w, h, facecolor=colour(name), edgecolor="black", lw=0.6,
                               zorder=2))
        ax.text(t, -i, str(t + 1), ha="center", va="center", fontsize=8 * scale, color="white", weight="bold",
                zorder=3)
        if t:  # from the previous application's right edge to this one's left edge: always one column to the right
            j = apps[t - 1][0]
            ax.add_patch(FancyArrowPatch((t - 1 + w / 2, -j), (t - w / 2, -i), arrowstyle="-|>", mutation_scale=8,
                                         color="black", lw=0.8, shrinkA=0, shrinkB=0, zorder=1))
    ax.set_xlim(-2.85, max(columns, N) - 0.4)
    ax.set_ylim(-L + 0.4, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9 * scale, loc="left")


def build(signature: str, r: int, n_layer: int, n_embd: int = 256, n_head: int = 4, block_size: int = 256,
          vocab_size: int = 50304, degree: int = 1, partition: str = "") -> GPT:
    return GPT(GPTConfig(signature=signature, r=r, n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
                         vocab_size=vocab_size, degree=degree, partition=partition))


def block_params(model) -> int:
    """Parameters of the physical blocks and the recursion extras: what a plan reuses, without embedding or head."""
    return sum(p.numel() for p in model.transformer.h.parameters()) + model.get_num_extra_params()


def title_of(model, head: str) -> str:
    N, c = len(applications(model)), model.config
    fwd = model.blocks_flops(model.transformer.h, c.block_size, train=False, r=None)
    return (f"{head}\n{N} applications of {c.n_layer} blocks: {fwd / 1e6:.2f} MFLOPs/token forward in the blocks "
            f"(at context {c.block_size}), {block_params(model) / 1e6:.3g} M block parameters")


SLIDE = (40 / 3, 7.5)  # inches: 16:9


def slide(model, head: str, path: str):
    """One plan on a 16:9 SVG with type large enough for a lecture hall."""
    fig, ax = plt.subplots(figsize=SLIDE)
    draw(ax, model, title=title_of(model, head), scale=1.8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


def gallery(shape: dict, out: str, slides: bool = False):
    models = [(build(sig, 3 if "^r" in sig else 1, 4, **shape, **kw), f"{sig}: {family}")
              for sig, family, kw in GALLERY]
    if slides:  # one slide per family: out is a folder
        os.makedirs(out, exist_ok=True)
        for (model, head), (_, family, _) in zip(models, GALLERY):
            print(model.plan.describe())
            slide(model, head, os.path.join(out, family.split(",")[0].split(" (")[0].replace(" ", "_") + ".svg"))
        return
    columns = max(len(applications(m)) for m, _ in models)
    fig, axes = plt.subplots(4, 2, figsize=(2 * 0.62 * (columns + 3.4), 4 * 0.62 * 6.2))
    for ax, (model, head) in zip(axes.flat, models):
        print(model.plan.describe())
        draw(ax, model, title=title_of(model, head), columns=columns)
    legend = axes.flat[-1]
    legend.axis("off")
    handles = [Patch(color=colour(s), label=s) for s in ("prelude", "round 1", "round 2", "round 3", "coda")]
    handles[0].set_label("prelude, or single pass (no '^r')")
    legend.legend(handles=handles, loc="upper left", fontsize=9, frameon=False, title="colour: part of the plan",
                  title_fontsize=9, alignment="left")
    legend.text(0.5, 0.98, "rows: physical blocks, each with its own weights\n"
                "columns: applications in execution order (= compute)\n"
                "several boxes in one row (×k): the same block runs again\n"
                f"n_layer=4, r=3; FLOPs/token at n_embd={shape['n_embd']}, block_size={shape['block_size']}",
                transform=legend.transAxes, fontsize=9, va="top", linespacing=1.6)
    fig.suptitle("Execution plans over the same physical blocks", fontsize=12)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: list[str]):
    p = argparse.ArgumentParser(prog="plan.py", description="Print an execution plan with its FLOPs/token and "
                                "parameters and draw it: rows are physical blocks, columns are applications in order.")
    p.error = lambda msg: sys.exit(f"plan.py: {msg}; see python plan.py --help")  # one line, not usage + error
    p.add_argument("signature", nargs="?", help="AB, A^rB, (AB)^r, AB^r, AB^rC, blockwise, reverse, ...")
    p.add_argument("--r", type=int, help="rounds of the '^r' unit (default 3 if the signature has '^r', else 1)")
    p.add_argument("--n_layer", type=int, default=8, help="physical blocks (default 8)")
    p.add_argument("--degree", type=int, default=1, help="fractal substitution depth (default 1)")
    p.add_argument("--partition", default="", help="letter sizes, e.g. 1:2:1 (default: equal slices)")
    p.add_argument("--n_embd", type=int, default=256, help="width, for FLOPs and params (default 256)")
    p.add_argument("--n_head", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--block_size", type=int, default=256, help="context length, for FLOPs (default 256)")
    p.add_argument("--vocab_size", type=int, default=50304, help="vocabulary, for the head (default 50304)")
    p.add_argument("--gallery", action="store_true",
                   help="draw AB, A^rB, (AB)^r, AB^r, blockwise, reverse, AB^rC in one figure")
    p.add_argument("--slides", action="store_true", help="a 16:9 SVG with large type (with --gallery: one per family)")
    p.add_argument("--out", help="file to write (default out/plan.png, out/plan.svg with --slides, and out/plans.png "
                                 "or the folder out/plans with --gallery)")
    args = p.parse_args(argv)
    out = args.out or os.path.join("out", ("plans" if args.gallery else "plan")
                                   + ("" if args.gallery and args.slides else ".svg" if args.slides else ".png"))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    shape = dict(n_embd=args.n_embd, n_head=args.n_head, block_size=args.block_size, vocab_size=args.vocab_size)
    try:
        if args.gallery:
            return gallery(shape, out, args.slides)
        if args.signature is None:
            p.error("give a signature such as 'A^rB', or --gallery")
        r = args.r if args.r is not None else 3 if "^r" in args.signature else 1
        model = build(args.signature, r, args.n_layer, **shape, degree=args.degree, partition=args.partition)
    except ValueError as e:
        sys.exit(f"plan.py: {e}")
    print(model.plan.describe())
    print(summary(model))
    head = (args.signature + (f", degree {args.degree}" if args.degree > 1 else "")
            + (f", partition {args.partition}" if args.partition else "") + f", r={r}")
    if args.slides:
        return slide(model, head, out)
    N = len(applications(model))
    fig, ax = plt.subplots(figsize=(0.62 * (N + 3.4), 0.62 * (args.n_layer + 2.6)))
    draw(ax, model, title=title_of(model, head))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
