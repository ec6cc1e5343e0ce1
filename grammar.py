"""
A self-similar language with a known floor: text from a seeded stochastic context-free grammar (prepare.py grammar).

One rule table applies at every depth (a fractal): nonterminal X expands by one of its rules wherever it sits in the
tree, and only at the maximum depth are its recursive rules switched off. Every rule begins with a terminal of its
own (its *announcer*), so the prefix of a sentence fixes its parse: the exact probability of each next token under the
true process is known while it is generated, and so is the Bayes-optimal loss (the *floor*, nats/token).

    python grammar.py --depth_max=12 --depth_mean=6       # a sample sentence with its tree, and the grammar's rules
    python grammar.py --tree=out/tree.png                 # draw one derivation tree

A rule is its announcer, then slots and children: `A3 -> A3 [noun] B kelo`, i.e. announce, draw a word of a class,
expand a B, emit a fixed word. Recursive rules have one or two children; terminal rules none. With agree > 0 a slot
after a child may be `=`: the same word the rule opened with, so the word that closes a subtree names the one that
opened it, however deep the subtree is (matching brackets; the true automaton still predicts it with certainty).
With track > 0 a slot after a child may be `#`: a word that names the product, in the group S3, of the elements its
announcers stand for along the path from the sentence's root to this node. Matching needs a lookup; `#` needs a
computation at every level of the path, in order (S3 is the smallest group where order matters), which is what
re-applying the same layers could supply. It is certain too, so the floor stays exact.
Text is cut into chunks of `chunk` tokens that each start a new sentence (the last one cut off), so a model whose
context starts at a chunk start sees everything the true automaton sees: the floor holds for it exactly.
"""
import json
import math
import os
import random
import sys
from bisect import bisect
from dataclasses import asdict, dataclass
from itertools import permutations

import numpy as np

END = 0  # token 0 ends every sentence but a chunk's first (see chunks)
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
S3 = list(permutations(range(3)))  # the group of `#` slots; element 0 is the identity
TIMES = [[S3.index(tuple(a[i] for i in b)) for b in S3] for a in S3]  # TIMES[x][y]: x after y, by index


@dataclass
class GrammarConfig:
    vocab: int = 96  # tokens in all: '.', one announcer per rule, the rest words
    nonterminals: int = 4  # symbol types A, B, ...; A starts every sentence
    rules: int = 6  # per nonterminal: 2 with one child, 2 with two, 2 terminal
    branching: float = 1.2  # mean children of a recursive expansion, in [1, 2]
    depth_mean: float = 2.0  # expected nesting depth of a token (the root's tokens have depth 1)
    depth_max: int = 4  # no recursive rule below this depth
    entropy: float = 0.7  # each choice among n options has entropy entropy * ln(n), in (0, 1]
    agree: float = 0.0  # chance that a slot after a child repeats its rule's opening word (brackets that must match)
    track: float = 0.0  # chance that a slot after a child names its path's product in S3 (a state to compute)
    seed: int = 0  # the rule table's seed (the text's seeds come from it and the split)


def check(c: GrammarConfig) -> list[str]:
    """What is impossible about a config, one line each (nothing is built)."""
    problems = []
    words = c.vocab - 1 - c.nonterminals * c.rules
    if c.depth_max < 1:
        problems.append(f"depth_max={c.depth_max}: a sentence needs depth >= 1")
    if not 1 <= c.branching <= 2:
        problems.append(f"branching={c.branching}: a recursive rule has 1 or 2 children, so it must be in [1, 2]")
    if c.nonterminals < 1 or c.nonterminals > 26 or c.rules < 6 or c.rules % 3:
        problems.append(f"nonterminals={c.nonterminals}, rules={c.rules}: need 1-26 nonterminals and a multiple of 3 "
                        ">= 6 rules each (a third with one child, a third with two, a third terminal)")
    elif words < 2 * c.nonterminals:
        problems.append(f"vocab={c.vocab} is too small for the rules: '.', {c.nonterminals * c.rules} announcers and "
                        f">= 2 words per class need vocab >= {1 + c.nonterminals * c.rules + 2 * c.nonterminals}")
    elif c.track and words < len(S3):  # one line per cause: the vocabulary is checked in this chain only
        problems.append(f"track={c.track} names the {len(S3)} elements of S3 with words: need vocab >= "
                        f"{1 + c.nonterminals * c.rules + len(S3)}")
    if not 0 < c.entropy <= 1:
        problems.append(f"entropy={c.entropy} must be in (0, 1]")
    for knob in ("agree", "track"):
        if not 0 <= getattr(c, knob) <= 1:
            problems.append(f"{knob}={getattr(c, knob)} is a probability: it must be in [0, 1]")
    if not problems:
        lo, hi = depth_range(c)
        if not lo < c.depth_mean < hi:
            problems.append(f"depth_mean={c.depth_mean} cannot be reached with depth_max={c.depth_max} and "
                            f"branching={c.branching}: choose it in ({lo:.3f}, {hi:.3f})")
    return problems


def zipf(n: int, entropy: float) -> list[float]:
    """p_i ~ i^-s over n options with s >= 0 chosen so that H(p) = entropy * ln(n) (s = 0 is uniform)."""
    def h(s):
        w = [i ** -s for i in range(1, n + 1)]
        z = sum(w)
        return -sum(x / z * math.log(x / z) for x in w)
    if n == 1 or entropy >= 1:
        return [1.0 / n] * n
    lo, hi = 0.0, 1.0
    while h(hi) > entropy * math.log(n):
        hi *= 2
    for _ in range(100):
        lo, hi = (lo, (lo + hi) / 2) if h((lo + hi) / 2) < entropy * math.log(n) else ((lo + hi) / 2, hi)
    w = [i ** -hi for i in range(1, n + 1)]
    return [x / sum(w) for x in w]


def token_depths(c: GrammarConfig, q: float, t_rec: float, t_term: float) -> tuple[float, float]:
    """(mean nesting depth of a token, mean tokens per sentence) when each node below depth_max recurses with
    probability q: depth d holds (q * branching)^(d-1) nodes on average, each emitting t_rec or t_term tokens."""
    num, den, nodes = 0.0, 1.0, 1.0  # den starts at 1: the sentence's '.', at depth 0
    for d in range(1, c.depth_max + 1):
        t = q * t_rec + (1 - q) * t_term if d < c.depth_max else t_term
        num, den, nodes = num + d * nodes * t, den + nodes * t, nodes * (q * c.branching if d < c.depth_max else 0)
    return num / den, den


def own_tokens(c: GrammarConfig) -> tuple[float, float]:
    """Tokens a node emits itself, on average: a recursive rule 2 + children (announcer, opening word, a slot after
    each child); a terminal rule 2 or 3 (announcer, opening word, one slot for the second terminal rule)."""
    p = zipf(c.rules // 3, c.entropy)
    return 2 + c.branching, 2 + sum(pj * (j % 2) for j, pj in enumerate(p, start=2 * (c.rules // 3)))


def depth_range(c: GrammarConfig) -> tuple[float, float]:
    return token_depths(c, 0.0, *own_tokens(c))[0], token_depths(c, 1.0, *own_tokens(c))[0]


class Grammar:
    """The rule table of a config: rules[X] = [(announcer, rhs)], rhs items ('w', word) | ('c', class) | ('n', Y);
    probs[X][capped] = each rule's probability below depth_max (capped=0) and at it (capped=1)."""

    def __init__(self, config: GrammarConfig):
        if problems := check(config):
            raise ValueError("; ".join(problems))
        c, rng = config, random.Random(f"grammar-table-{config.seed}")
        agree = random.Random(f"grammar-agree-{config.seed}")  # its own stream: agree=0 leaves the table as it was
        track = random.Random(f"grammar-track-{config.seed}")  # and the same for track
        self.config, K, R = c, c.nonterminals, c.rules
        n_words = c.vocab - 1 - K * R
        self.words = list(range(1 + K * R, c.vocab))
        classes = [self.words[i::K] for i in range(K)]  # class k: the words of nonterminal k's part of speech
        self.classes, self.class_probs = classes, [zipf(len(ws), c.entropy) for ws in classes]
        names = rng.sample([a + b for a in SYLLABLES for b in SYLLABLES], n_words)
        self.names = ["."] + [f"{chr(65 + x)}{j + 1}" for x in range(K) for j in range(R)] + names
        third = R // 3
        self.rules, self.probs = [], []
        for x in range(K):
            rules = []
            for j in range(R):
                children = 1 if j < third else 2 if j < 2 * third else 0
                slot = lambda: ("w", rng.choice(self.words)) if rng.random() < 0.5 else ("c", rng.randrange(K))
                rhs = [("c", x)]  # a rule opens with a word of its own nonterminal's class
                for _ in range(children):
                    rhs += [("n", rng.randrange(K)), slot()]  # a slot after each child: what the parser must recall
                    if c.agree and agree.random() < c.agree:
                        rhs[-1] = ("m", 0)
                    if c.track and track.random() < c.track:
                        rhs[-1] = ("s", 0)
                if not children:
                    rhs += [slot()] * (j % 2)  # terminal rules: one or two slots
                rules.append((1 + x * R + j, rhs))
            self.rules.append(rules)
        within = zipf(third, c.entropy)
        self.t_rec, self.t_term = own_tokens(c)
        self.q = self.solve_q()
        one, two = (2 - c.branching) * self.q, (c.branching - 1) * self.q
        normal = [one * p for p in within] + [two * p for p in within] + [(1 - self.q) * p for p in within]
        capped = [0.0] * (2 * third) + within
        self.probs = [[normal, capped] for _ in range(K)]
        self.cum = [[list(np.cumsum(p)) for p in ps] for ps in self.probs]
        self.rule_of = {a: (x, j) for x in range(K) for j, (a, _) in enumerate(self.rules[x])}
        # what each announcer stands for in S3, and the word naming each element (drawn only when track > 0)
        self.element = {a: track.randrange(len(S3)) for a in self.rule_of} if c.track else {}
        self.state_words = track.sample(self.words, len(S3)) if c.track else []

    def solve_q(self) -> float:
        """The recursion probability whose expected token depth is depth_mean (the depth grows with q)."""
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if token_depths(self.config, mid, self.t_rec, self.t_term)[0] < self.config.depth_mean \
                else (lo, mid)
        return (lo + hi) / 2

    def describe(self) -> dict:
        """What meta.json records: the config, the derived recursion probability and every rule with its odds."""
        c = self.config
        show = lambda item: {"w": lambda v: self.names[v], "c": lambda v: f"[{chr(97 + v)}]",
                             "n": lambda v: chr(65 + v), "m": lambda v: "=", "s": lambda v: "#"}[item[0]](item[1])
        return {"config": asdict(c), "recursion_probability": self.q,
                "expected_depth": token_depths(c, self.q, self.t_rec, self.t_term)[0],
                "expected_sentence_tokens": token_depths(c, self.q, self.t_rec, self.t_term)[1],
                "rules": [f"{chr(65 + x)} -> " + " ".join([self.names[a]] + [show(i) for i in rhs])
                          + f"   p={p:.4f} (at depth_max {pc:.4f})"
                          for x in range(c.nonterminals) for (a, rhs), p, pc in zip(self.rules[x], *self.probs[x])],
                "classes": {chr(97 + k): [self.names[w] for w in ws] for k, ws in enumerate(self.classes)}} | \
            ({"S3": {self.names[a]: S3[e] for a, e in self.element.items()},
              "#": {str(S3[e]): self.names[w] for e, w in enumerate(self.state_words)}} if self.element else {})

    def chunks(self, n: int, length: int, seed: str):
        """n chunks of `length` tokens, each a run of whole sentences from A with the last one cut off. Returns
        (tokens uint16, nll float64: -ln p of each token under the true process, depth uint8: its nesting depth;
        0 for '.'), each of shape (n, length)."""
        rng, cap = random.Random(seed), self.config.depth_max
        tok, nll, dep = (np.zeros((n, length), t) for t in (np.uint16, np.float64, np.uint8))
        path = [0] * (cap + 1)  # path[d]: the S3 product of the open node at depth d (path[0]: the identity)
        for i in range(n):
            t, ll, dd, stack = tok[i], nll[i], dep[i], []  # stack: (item, depth) still to emit, top last
            for k in range(length):
                # a new sentence: A at depth 1, then the '.' that ends it (popped after A's subtree). The chunk's first
                # sentence has no '.' after it: a quirk kept so the data behind the committed runs rebuilds byte
                # for byte; predict() parses it the same way, so the floor is exact all the same
                if not stack:
                    stack = [(("w", END), 0), (("n", 0), 1)] if k else [(("n", 0), 1)]
                (kind, v), d = stack.pop()
                if kind == "n":  # choose a rule: its announcer is the token, its right side goes on the stack
                    j = bisect(self.cum[v][d == cap], rng.random() * self.cum[v][d == cap][-1])
                    a, rhs = self.rules[v][j]
                    t[k], ll[k], dd[k] = a, -math.log(self.probs[v][d == cap][j]), d
                    stack += self.expand(rhs, d)
                    self.enter(path, a, d)
                elif kind in ("c", "o"):  # a word of a class; an opener also tells its matching slots the word
                    x = v[0] if kind == "o" else v
                    j = min(bisect(self.class_cum(x), rng.random()), len(self.classes[x]) - 1)
                    t[k], ll[k], dd[k] = self.classes[x][j], -math.log(self.class_probs[x][j]), d
                    if kind == "o":
                        v[1][0] = t[k]
                else:  # a fixed word, a matching word, a path's product or the '.' that ends a sentence: certain
                    t[k], dd[k] = self.certain(kind, v, path, d), d
        return tok, nll, dep

    def enter(self, path, announcer: int, d: int) -> None:  # a node opens at depth d: its path's product
        if self.element:
            path[d] = TIMES[path[d - 1]][self.element[announcer]]

    def certain(self, kind: str, v, path, d: int) -> int:  # the token of an item that leaves no choice
        return v[0] if kind == "m" else self.state_words[path[d]] if kind == "s" else v

    @staticmethod
    def expand(rhs, d: int) -> list:
        """A rule's right side as stack items (top last): children one level deeper; where the rule has matching
        slots its opener becomes ('o', (class, cell)) and each match ('m', cell), sharing the cell the opener fills."""
        if any(kind == "m" for kind, _ in rhs):
            cell = [None]
            rhs = [("o", (v, cell)) if kind == "c" and not i else ("m", cell) if kind == "m" else (kind, v)
                   for i, (kind, v) in enumerate(rhs)]
        return [(item, d + 1 if item[0] == "n" else d) for item in reversed(rhs)]

    def class_cum(self, k: int) -> list[float]:
        if not hasattr(self, "_class_cum"):
            self._class_cum = [list(np.cumsum(p)) for p in self.class_probs]
        return self._class_cum[k]

    def predict(self, chunk) -> np.ndarray:
        """The true automaton as a predictor, independent of the generator's bookkeeping: parse the chunk's prefix
        token by token and return p(next token | prefix) for positions 1.., shape (len(chunk) - 1, vocab)."""
        V, cap, stack = self.config.vocab, self.config.depth_max, [(("n", 0), 1)]
        out, path = np.zeros((len(chunk) - 1, V)), [0] * (cap + 1)
        for k, token in enumerate(chunk):
            if k:  # the distribution over the next item on the stack
                if not stack:
                    stack = [(("w", END), 0), (("n", 0), 1)]
                (kind, v), d = stack[-1]
                if kind == "n":
                    for (a, _), p in zip(self.rules[v], self.probs[v][d == cap]):
                        out[k - 1, a] = p
                elif kind in ("c", "o"):
                    x = v[0] if kind == "o" else v
                    out[k - 1, self.classes[x]] = self.class_probs[x]
                else:
                    out[k - 1, self.certain(kind, v, path, d)] = 1.0
            (kind, v), d = stack.pop()
            if kind == "n":  # consume the announcer: its rule is known from the token alone
                x, j = self.rule_of[int(token)]
                stack += self.expand(self.rules[x][j][1], d)
                self.enter(path, int(token), d)
            elif kind == "o":  # the opener read from the text: what its matching slots will repeat
                v[1][0] = int(token)
        return out

    def tree(self, seed: str = "tree", max_tokens: int = 60):
        """One sentence as nested (label, children) nodes, for the picture in docs/data.md; the first sentence of a
        seed with at most max_tokens tokens."""
        rng = random.Random(seed)
        for _ in range(1000):
            tok, _, dep = self.chunks(1, max_tokens + 1, str(rng.random()))
            t, d = tok[0], dep[0]
            ends = [k for k in range(1, len(t)) if t[k] == END or (d[k] == 1 and t[k] in self.rule_of)]
            if ends:  # the first sentence stops at a '.' or at the next sentence's announcer (depth 1)
                return self.build(t[:ends[0]], d[:ends[0]])
        raise ValueError(f"no sentence of <= {max_tokens} tokens in 1000 tries")

    def build(self, tokens, depths):
        """(label, children) of a sentence from its tokens and their depths: an announcer opens a node at its depth."""
        root, path = ("S", []), []
        for t, d in zip(tokens, depths):
            if int(t) in self.rule_of:
                node = (f"{chr(65 + self.rule_of[int(t)][0])}: {self.names[t]}", [])
                del path[d - 1:]
                (path[-1][1] if path else root[1]).append(node)
                path.append(node)
            else:
                path[d - 1][1].append((self.names[t], []))
        return root


def draw_tree(root, path):
    """A derivation tree: nodes above their children, words along the bottom in sentence order."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    leaves, pos = [], {}

    def place(node, depth):
        label, kids = node
        if not kids:
            leaves.append(node)
            pos[id(node)] = (len(leaves) - 1, depth)
        else:
            xs = [place(k, depth + 1) for k in kids]
            pos[id(node)] = (sum(xs) / len(xs), depth)
        return pos[id(node)][0]

    place(root, 0)
    height = max(d for _, d in pos.values())
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(leaves)), 0.7 * height + 1.5), layout="constrained")

    def draw(node):
        x, d = pos[id(node)]
        y = -d if node[1] else -height
        for k in node[1]:
            kx, kd = pos[id(k)]
            ax.plot([x, kx], [y, -kd if k[1] else -height], color="0.7", lw=0.8, zorder=1)
            draw(k)
        ax.text(x, y, node[0].split(": ")[-1] if node[1] else node[0], ha="center", va="center", zorder=2,
                fontsize=8 if node[1] else 9, rotation=0 if node[1] else 90,
                bbox=dict(boxstyle="round", fc="#dde8f6" if node[1] else "white", ec="0.6"))

    draw(root)
    ax.set_axis_off()
    ax.set_title("one derivation: each rule (box, by its announcer)\nabove the words it emits; row = nesting depth",
                 fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -----------------------------------------------------------------------------
# the dataset: prepare.py grammar* calls write_dataset

SHARD = 2 ** 15  # chunks per training shard: each has its own seed, so shards build in parallel


def shard(args):
    """One training shard: its tokens, and the sum and count of -ln p over its targets (chunk positions 1..)."""
    config, length, n, seed = args
    tok, nll, _ = Grammar(config).chunks(n, length, seed)
    return tok, float(nll[:, 1:].sum()), nll[:, 1:].size


def write_dataset(out_dir, config: GrammarConfig, train_tokens: int, eval_tokens: int, chunk: int, stamp=None):
    """out_dir/{train,val,test}.bin (uint16), {val,test}_nll.bin (float32: -ln p of every token under the true
    process) and {val,test}_depth.bin (uint8 nesting depth), meta.json with the grammar and the floors. Split s,
    shard i is drawn from the seed '<seed>-<s>-<i>': the same config gives the same bytes, and no two splits share
    a stream. Every file goes through a temp name, so an interrupted run leaves nothing that looks complete."""
    import multiprocessing
    from pathlib import Path
    out_dir, g = Path(out_dir), Grammar(config)
    n_train = -(-train_tokens // chunk)
    jobs = [(config, chunk, min(SHARD, n_train - i), f"{config.seed}-train-{i // SHARD}")
            for i in range(0, n_train, SHARD)]
    floors, counts = {}, {}
    tmp = out_dir / "train.bin.tmp"
    with open(tmp, "wb") as f, multiprocessing.get_context("spawn").Pool(min(len(jobs), os.cpu_count())) as pool:
        total, count = 0.0, 0
        for k, (tok, s, m) in enumerate(pool.imap(shard, jobs)):
            f.write(tok.tobytes())
            total, count = total + s, count + m
            print(f"train shard {k + 1}/{len(jobs)}: {(k * SHARD + len(tok)) * chunk:,} tokens")
        floors["train"], counts["train"] = total / count, n_train * chunk
    os.replace(tmp, out_dir / "train.bin")
    depths = {}
    for split in ("val", "test"):
        n = -(-eval_tokens // chunk)
        tok, nll, dep = g.chunks(n, chunk, f"{config.seed}-{split}-0")
        for suffix, arr in (("", tok), ("_nll", nll.astype(np.float32)), ("_depth", dep)):
            (out_dir / f"{split}{suffix}.bin.tmp").write_bytes(arr.tobytes())
            os.replace(out_dir / f"{split}{suffix}.bin.tmp", out_dir / f"{split}{suffix}.bin")
        floors[split], counts[split] = float(nll[:, 1:].mean()), n * chunk
        depths[split] = float(dep.mean())  # '.' at depth 0, as expected_depth counts it
    meta = {"name": out_dir.name, "tokenizer": "words", "vocab_size": config.vocab, "words": g.names,
            "chunk": chunk, "grammar": g.describe(), "mean_depth": depths,
            "floor": floors, "floor_rule": "mean -ln p(token | its chunk's prefix) over chunk positions 1.. "
                                           "(position 0 is never a target): the Bayes-optimal loss",
            "seed_rule": "split s, shard i: random.Random('<seed>-<s>-<i>')", "stamp": stamp}
    meta |= {f"{split}_tokens": n for split, n in counts.items()}
    (out_dir / "meta.json.tmp").write_text(json.dumps(meta, indent=1))
    os.replace(out_dir / "meta.json.tmp", out_dir / "meta.json")
    print(f"{out_dir}: " + ", ".join(f"{s} {counts[s]:,} tokens (floor {floors[s]:.4f} nats)" for s in floors))
    return meta


def chunk_of(root) -> int | None:
    """The chunk length of a prepared dataset at root (a grammar's windows start at chunk starts), None otherwise."""
    path = os.path.join(root, "meta.json")
    return json.load(open(path)).get("chunk") if os.path.isfile(path) else None


def targets(root, split: str, starts, T: int) -> dict:
    """For windows of T tokens starting at `starts` of a grammar's split: each target's nesting depth and its -ln p
    under the true process, {'depth': int64, 'nll': float64} arrays of shape (len(starts), T)."""
    out = {}
    for k, stored, dtype in (("depth", np.uint8, np.int64), ("nll", np.float32, np.float64)):
        arr = np.memmap(os.path.join(root, f"{split}_{k}.bin"), dtype=stored, mode="r")
        out[k] = np.stack([arr[i + 1:i + 1 + T] for i in starts]).astype(dtype)
    return out


def main(argv):
    c, tree_path = GrammarConfig(), None
    for arg in argv:
        key, _, value = arg.removeprefix("--").partition("=")
        if key == "tree":
            tree_path = value
        elif key in GrammarConfig.__dataclass_fields__:
            setattr(c, key, type(getattr(c, key))(value))
        else:
            raise SystemExit(f"grammar.py: unknown option {arg!r}; use --tree=PNG or --{', --'.join(asdict(c))}")
    try:
        g = Grammar(c)
    except ValueError as e:
        raise SystemExit(f"grammar.py: {e}")
    d = g.describe()
    print("\n".join(d["rules"]))
    print(f"recursion probability {d['recursion_probability']:.4f}, expected depth {d['expected_depth']:.3f}, "
          f"{d['expected_sentence_tokens']:.1f} tokens per sentence")
    tok, nll, dep = g.chunks(1, 64, "sample")
    print(" ".join(g.names[t] for t in tok[0]))
    print(f"floor of this chunk: {nll[0][1:].mean():.4f} nats/token")
    if tree_path:
        draw_tree(g.tree(), tree_path)
        print(f"wrote {tree_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
