"""
nanoRINS model: a GPT whose depth is an *execution plan* over one list of physical blocks. RINS (Recursive Inference
Scaling, Alabdulmohsin & Zhai, arXiv 2502.07503) splits the L blocks into halves A and B and runs A^r B: A r times on
its own output, then B once. Every rival (RAO (AB)^r, AB^r, MobileLLM sharing, latent recurrent depth) is another plan
over the same blocks and parameters. Top to bottom: layers; Plan; RoundExtras; configs; the loop over a plan; GPT; ViT.
"""

import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


# --- Layers (shared by the GPT and the ViT) --------------------------------------------------------------------------
class KVCache:
    """Keys and values of one *application* of a block: a block run r times owns r of these. With an `owner`
    (kv_share) it stores nothing and serves the owner's past plus its own current token's k, v."""

    def __init__(self, owner=None):
        self.k, self.v, self.owner, self.seen = None, None, owner, 0  # seen: tokens so far

    def __len__(self):
        return self.seen

    def extend(self, k, v):
        # exercise 5: a KV cache per application
        past, self.seen = self.seen, self.seen + k.size(2)
        if self.owner is None:
            self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
            self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
            return self.k, self.v
        if k.size(2) != 1:
            raise ValueError(f"a shared KV cache takes one token per call, got {k.size(2)}; feed them one by one")
        o = self.owner  # o.k[:, :, :past] is the past whether the owner has run this token yet or not
        return (k, v) if past == 0 else (torch.cat([o.k[:, :, :past], k], 2), torch.cat([o.v[:, :, :past], v], 2))
        # end of exercise 5

class SelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, causal: bool):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.c_proj.is_residual_proj = True
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.dropout, self.causal = n_head, dropout, causal

    def forward(self, x, cache: KVCache | None = None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        past = 0 if cache is None else len(cache)
        if cache is not None:
            k, v = cache.extend(k, v)  # (B, nh, past + T, hs)
        mask, is_causal = getattr(cache, "mask", None), self.causal and past == 0  # a cache's own mask: exits.py
        if self.causal and past > 0 and T > 1 and mask is None:  # new queries see the whole past plus their prefix
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=is_causal)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

class MLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float, bias: bool):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.c_proj.is_residual_proj = True
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

class Block(nn.Module):  # pre-LN; `causal` is the only difference between the GPT's and the ViT's
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, causal: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = SelfAttention(n_embd, n_head, dropout, bias, causal)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x, cache: KVCache | None = None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))

def init_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2 init, module by module so the random stream never depends on the plan: Linear and Embedding weights
    N(0, 0.02), biases 0; residual projections (`is_residual_proj`) N(0, 0.02 / sqrt(2 * n_layer)) with n_layer the
    *physical* depth in every arm, so A^1 B is the baseline bit for bit; `zero_init` weights (adapter outputs) 0."""
    if getattr(module, "zero_init", False):
        nn.init.zeros_(module.weight)
    elif isinstance(module, (nn.Linear, nn.Embedding)):
        residual = getattr(module, "is_residual_proj", False)
        nn.init.normal_(module.weight, mean=0.0, std=0.02 / math.sqrt(2 * n_layer) if residual else 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)

def linear_weights(module: nn.Module | None) -> int:  # multiply-accumulates per token of its nn.Linear layers
    return 0 if module is None else sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


# --- The plan: signature -> physical block indices, training rounds, FLOPs (plain data, no parameters) ---------------
SIGNATURE_HELP = ("use capital letters introduced in order (A, then B, ...), groups '(...)', powers '^n' and at most "
                  "one '^r' (the recursed unit), e.g. AB, A^rB, (AB)^r, AB^r, A^3B, AB^rC; or 'blockwise' / 'reverse'")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

def parse_signature(signature: str, n_layer: int) -> tuple[str, str, str]:
    """(prelude, unit, coda) letters, '^r' repeating the unit: 'A^rB' -> ('', 'A', 'B'), 'A^3B' -> ('AAAB', '', '').
    MobileLLM's named patterns give each layer a letter: 'blockwise' runs each twice, 'reverse' 1..L then L..1."""
    if signature in ("blockwise", "reverse"):
        if n_layer > len(LETTERS):
            raise ValueError(f"signature '{signature}' needs n_layer <= 26, got {n_layer}")
        own = LETTERS[:n_layer]
        return ("".join(c + c for c in own) if signature == "blockwise" else own + own[::-1]), "", ""

    bad = lambda why: ValueError(f"bad signature '{signature}': {why}; {SIGNATURE_HELP}")
    groups = [[]]  # the open groups, innermost last, each a list of (letters, is_recursed)
    for m in re.finditer(r"([A-Z)])(\^(r|[1-9][0-9]*)?)?|.", signature, flags=re.S):  # an atom and its power
        atom, caret, power = m.groups()
        if atom is None and m.group() != "(":
            raise bad(f"unexpected '{m.group()}' at position {m.start()}")
        if atom is None:
            groups.append([])
            continue
        if atom == ")":
            if len(groups) == 1:
                raise bad(f"unmatched ')' at position {m.start()}")
            if any(rec for _, rec in groups[-1]):
                raise bad("'^r' must be outside parentheses")
            atom = "".join(t for t, _ in groups.pop())
        if caret and not power:
            raise bad(f"'^' at position {m.start(2)} must be followed by r or a positive integer")
        groups[-1].append((atom, True) if power == "r" else (atom * int(power or 1), False))
    if len(groups) > 1:
        raise bad("unclosed '('")
    if not groups[0]:
        raise bad("it is empty")
    recursed = [i for i, (_, rec) in enumerate(groups[0]) if rec]
    if len(recursed) > 1:
        raise bad("only one '^r' is allowed")
    text = [t for t, _ in groups[0]]
    cut = recursed[0] if recursed else len(text)
    prelude, unit, coda = "".join(text[:cut]), "".join(text[cut:cut + 1]), "".join(text[cut + 1:])
    seen = "".join(dict.fromkeys(prelude + unit + coda))
    if seen != LETTERS[:len(seen)]:
        raise bad(f"letters must first appear in alphabetical order (found {seen})")
    return prelude, unit, coda

CHOICES = dict(round_sampler=("fixed", "binomial", "poisson"), injection=("none", "add", "concat"),
               state_init=("input", "noise"), adapter=("none", "per_round", "per_count"))

class Plan:
    """The physical block of each application, layers(r) = prelude + unit * r + coda, from RecursionConfig's fields
    and n_layer (a bad config raises a one-line ValueError); also the training rounds' distribution and the FLOPs."""

    def __init__(self, config):
        c = config
        for name, allowed in CHOICES.items():
            if getattr(c, name) not in allowed:
                raise ValueError(f"{name}='{getattr(c, name)}' is not one of {', '.join(allowed)}")
        if c.r < 1 or c.degree < 1 or c.bptt_rounds < 0 or c.adapter_rank < 0:
            raise ValueError(f"need r >= 1, degree >= 1, bptt_rounds >= 0, adapter_rank >= 0 (got r={c.r}, "
                             f"degree={c.degree}, bptt_rounds={c.bptt_rounds}, adapter_rank={c.adapter_rank})")
        if not 0.0 <= c.stochastic_p < 1.0:
            raise ValueError(f"stochastic_p={c.stochastic_p} must be in [0, 1)")
        self.signature, self.r, self.degree, self.bptt_rounds = c.signature, c.r, c.degree, c.bptt_rounds
        self.n_layer = c.n_layer
        self.letters = prelude, unit, coda = parse_signature(c.signature, c.n_layer)
        self.recursive, n_letters = bool(unit), len(set(prelude + unit + coda))
        parts = c.partition.split(":") if c.partition else ["1"] * n_letters
        self.weights = [int(w) if w.isdigit() else 0 for w in parts]
        if len(self.weights) != n_letters or min(self.weights) < 1:
            raise ValueError(f"partition '{c.partition}' must give one positive integer per letter ({n_letters} "
                             "letters), e.g. " + ":".join(["1"] * n_letters))
        if not self.recursive and (c.r != 1 or c.round_sampler != "fixed" or c.adapter != "none"
                                   or c.injection != "none" or c.state_init != "input" or c.bptt_rounds
                                   or c.state_norm):
            raise ValueError(f"signature '{c.signature}' has no '^r' unit, so r, round_sampler, adapter, injection, "
                             "state_init, state_norm and bptt_rounds must keep their defaults; recurse with e.g. A^rB")
        if (c.state_init == "noise" or c.state_norm) and c.injection == "none":
            raise ValueError("state_init='noise' and state_norm act on the injected state: they need injection "
                             "'add' or 'concat'")
        self.prelude, self.unit, self.coda = (self.expand(part, 0, c.n_layer, c.degree) for part in self.letters)
        self.max_r = {"fixed": c.r, "binomial": c.r, "poisson": 4 * c.r}[c.round_sampler]  # poisson: Huginn's cap
        self.sampled, self.adapted = c.round_sampler != "fixed", c.adapter != "none"  # adapters: max_r rounds only
        self.round_probs = self._round_distribution(c.round_sampler, c.stochastic_p)  # {r: probability} in training

    def expand(self, letters: str, lo: int, hi: int, degree: int) -> list[int]:
        """Letters -> layers of [lo, hi); at degree d > 1 each letter becomes the degree d-1 plan of its slice."""
        # exercise 1: the signature's letters -> physical layers
        total = sum(self.weights)
        if (hi - lo) % total:
            raise ValueError(f"signature '{self.signature}' at degree {self.degree} cuts {hi - lo} layers into slices "
                             f"{':'.join(map(str, self.weights))}; use n_layer divisible by {total ** self.degree}")
        bounds = [lo + (hi - lo) // total * sum(self.weights[:k]) for k in range(len(self.weights) + 1)]
        layers = []
        for c in letters:
            a, b = bounds[ord(c) - 65], bounds[ord(c) - 64]
            if degree == 1:
                layers += range(a, b)
            else:
                prelude, unit, coda = (self.expand(part, a, b, degree - 1) for part in self.letters)
                layers += prelude + unit * self.r + coda
        return layers
        # end of exercise 1

    def check_r(self, r: int | None) -> int:  # the configured r, or an inference-time override that fits the plan
        if r is None:
            return self.r
        if not self.recursive:
            raise ValueError(f"r={r} given, but signature '{self.signature}' has no '^r' unit to repeat")
        if r < 1:
            raise ValueError(f"r={r} must be at least 1")
        if self.adapted and r > self.max_r:
            raise ValueError(f"r={r} exceeds the {self.max_r} rounds this model has adapters for")
        return r

    def layers(self, r: int | None = None) -> list[int]:
        return self.prelude + self.unit * self.check_r(r) + self.coda

    def describe(self, r: int | None = None) -> str:
        r = self.check_r(r)
        parts = [self.prelude] + [self.unit] * r + [self.coda]
        text, n = " | ".join(" ".join(map(str, p)) for p in parts if p), sum(map(len, parts))
        return (f"{self.signature} (r={r}, degree {self.degree}): {text}  "
                f"[{n} applications, {n / self.n_layer:.2f}x of {self.n_layer} layers]")

    def _round_distribution(self, sampler: str, p: float) -> dict[int, float]:
        """binomial: 1 + Binomial(r-1, 1-p) (stochastic RINS); poisson: 1 + Poisson(lambda), lambda ~ LogNormal(ln(r-1)
        - s^2/2, s), s = 0.5, capped at 4r (Geiping et al.): mean r, the mixture integrated on lambda quantiles."""
        if sampler == "fixed" or self.r == 1 and sampler == "poisson":
            return {self.r: 1.0}
        # exercise 4: the distribution of sampled rounds
        if sampler == "binomial":
            n, q = self.r - 1, 1 - p
            return {1 + k: math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(n + 1)}
        s, quantiles = 0.5, (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
        lam = torch.exp(math.log(self.r - 1) - s * s / 2 + s * math.sqrt(2) * torch.special.erfinv(2 * quantiles - 1))
        k = torch.arange(self.max_r, dtype=torch.float64)
        pmf = torch.exp(k[:, None] * lam.log() - lam - torch.lgamma(k[:, None] + 1)).mean(1)
        pmf[-1] += 1 - pmf.sum()  # fold the tail beyond the cap onto the cap
        return {1 + int(i): float(p) for i, p in enumerate(pmf)}
        # end of exercise 4

    def sample_r(self, generator: torch.Generator) -> int:  # per optimizer step, from a generator of its own
        i = torch.multinomial(torch.tensor(list(self.round_probs.values())), 1, generator=generator).item()
        return list(self.round_probs)[i]

    def flops(self, block_matmuls: int, n_embd: int, seq_len: int, train: bool = True, r: int | None = None,
              round_matmuls: int = 0, end_matmuls: int = 0) -> float:
        """FLOPs per token of the blocks along the plan: an application is 2*matmul weights + 4*T*d (q.k^T and att.v
        over the *full* T x T square, as the math SDPA kernel computes it), the extras add 2*round_matmuls per round,
        2*end_matmuls once. Training triples all but no-grad rounds; sampled rounds with r=None give the mean."""
        # exercise 3: the FLOP count of a plan
        probs = self.round_probs if train and r is None else {self.check_r(r): 1.0}
        apply = 2 * block_matmuls + 4 * seq_len * n_embd
        round_cost, total = len(self.unit) * apply + 2 * round_matmuls, 0.0
        for rounds, p in probs.items():
            no_grad = max(rounds - self.bptt_rounds, 0) if self.bptt_rounds and train else 0
            fwd_grad = (len(self.prelude) + len(self.coda)) * apply + (rounds - no_grad) * round_cost + 2 * end_matmuls
            total += p * ((3 if train else 1) * fwd_grad + no_grad * round_cost)
        return total
        # end of exercise 3


# --- Per-round extras: the only parameters beyond the baseline's, called by the loop at round boundaries -------------
class Adapter(nn.Module):  # h + U norm(h): a linear map, full or low rank, whose output factor starts at zero
    def __init__(self, n_embd: int, rank: int):
        super().__init__()
        self.down = nn.Linear(n_embd, rank, bias=False) if rank else nn.Identity()
        self.up = nn.Linear(rank or n_embd, n_embd, bias=False)
        self.up.zero_init = True

    def forward(self, h):
        return h + self.up(self.down(F.layer_norm(h, h.shape[-1:])))

class RoundExtras(nn.Module):
    """Input injection, the latent first state, truncated backprop and adapters: identities by default."""

    def __init__(self, c, max_r: int):
        super().__init__()
        self.injection, self.state_init, self.state_norm = c.injection, c.state_init, c.state_norm
        self.adapter, self.bptt_rounds = c.adapter, c.bptt_rounds
        self.inject = nn.Linear(2 * c.n_embd, c.n_embd, bias=False) if c.injection == "concat" else None
        self.adapters = nn.ModuleList(Adapter(c.n_embd, c.adapter_rank) for _ in range(max_r * (c.adapter != "none")))

    def start(self, e):
        """The first state from the prelude's output e: e itself, or (latent) fresh noise of e's std every call."""
        if self.state_init == "input":
            return e
        std = e.detach().std().item()
        return nn.init.trunc_normal_(torch.empty_like(e), std=std, a=-3 * std, b=3 * std)

    def grad(self, k: int, r: int):  # round k of r builds a graph only if it is one of the last bptt_rounds (0 = all)
        return torch.set_grad_enabled(torch.is_grad_enabled() and k >= r - (self.bptt_rounds or r))

    def before_round(self, s, e):
        """Injection: the prelude's output e re-enters every round, added or through W [s, e]; state_norm first
        puts the state on e's footing (Geiping et al.'s sandwich norm leaves it normalised), so its scale
        growing round after round cannot drown e, nor e drown it."""
        s = F.layer_norm(s, s.shape[-1:]) if self.state_norm else s
        if self.injection == "add":
            return s + e
        return self.inject(torch.cat([s, e], dim=-1)) if self.injection == "concat" else s

    def after_round(self, k: int, r: int, s):  # 'per_count' adapts only after the last round, telling the coda r
        return self.adapters[k](s) if self.adapter == "per_round" or self.adapter == "per_count" and k == r - 1 else s

    def matmuls(self) -> tuple[int, int]:  # matmul weights added per round and once after them, for Plan.flops
        adapter = linear_weights(self.adapters[0]) if self.adapters else 0
        per_round = self.adapter == "per_round"
        return linear_weights(self.inject) + adapter * per_round, adapter * (not per_round)


# --- Configuration ---------------------------------------------------------------------------------------------------
@dataclass
class RecursionConfig:
    """The recursion fields, read by Plan and RoundExtras; GPTConfig and ViTConfig inherit them."""
    signature: str = "AB"  # letters = slices of the layers, '^r' the recursed unit: AB, A^rB (RINS), (AB)^r (RAO)
    r: int = 1  # rounds of the '^r' unit, >= 1 (1 without a unit); for round_sampler='poisson' the mean
    degree: int = 1  # >= 1; at degree d every letter runs the degree d-1 plan of its own slice (fractal RINS)
    partition: str = ""  # letter sizes, one positive integer per letter, e.g. '1:2:1'; '' = equal slices
    round_sampler: str = "fixed"  # training rounds: 'fixed' (r) | 'binomial' (stochastic RINS) | 'poisson' (latent)
    stochastic_p: float = 0.5  # binomial only, in [0, 1): each round after the first is skipped with probability p
    bptt_rounds: int = 0  # >= 0: backprop through only the last k rounds, earlier ones run without grad; 0 = all
    injection: str = "none"  # the prelude's output e re-enters each round: 'none' | 'add' (s + e) | 'concat' (W [s, e])
    state_init: str = "input"  # the unit's first state: 'input' (the prelude's output) | 'noise' (needs injection)
    state_norm: bool = False  # a LayerNorm without weights on the state before each injection (needs injection)
    adapter: str = "none"  # zero-init linear adapters: 'none' | 'per_round' (after each) | 'per_count' (after the last)
    adapter_rank: int = 0  # adapter size: 0 = full d x d, k > 0 = rank-k factors d -> k -> d

@dataclass
class GPTConfig(RecursionConfig):
    block_size: int = 256  # context length in tokens (the learned position table's size)
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64
    n_layer: int = 8  # physical blocks (the plan may run some of them more than once)
    n_head: int = 6  # attention heads per block
    n_embd: int = 384  # width of the residual stream
    dropout: float = 0.0  # dropout probability: attention weights, block outputs, embeddings
    bias: bool = False  # biases in Linear layers and LayerNorms, like GPT-2 (False is a bit better and faster)


# --- What GPT and ViT share: the loop over the plan, init order, parameter counts, the optimizer ---------------------
class PlanModel(nn.Module):  # a model with `plan` (a Plan) and `extras` (its RoundExtras) over a list of blocks
    def _init_weights(self, config) -> None:
        """Init every module, then build the extras: they come last, so they never shift the blocks' init."""
        self.apply(lambda m: init_weights(m, config.n_layer))  # leaves in registration order, whatever the plan
        self.extras = RoundExtras(config, self.plan.max_r)
        self.extras.apply(lambda m: init_weights(m, config.n_layer))

    def get_num_params(self, non_embedding: bool = True) -> int:
        """The baseline's parameters, the same for every signature, by default without learned positions."""
        positions = sum(m.weight.numel() for m in self.modules() if getattr(m, "is_position", False))
        return sum(p.numel() for p in self.parameters()) - self.get_num_extra_params() - non_embedding * positions

    def get_num_extra_params(self) -> int:
        return sum(p.numel() for m in self.modules() if isinstance(m, RoundExtras) for p in m.parameters())

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas, device_type: str):
        decay = [p for p in self.parameters() if p.dim() >= 2]  # matmul weights and embeddings, not norms or biases
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        print(f"decayed tensors: {len(decay)} ({sum(p.numel() for p in decay):,} params), "
              f"non-decayed: {len(no_decay)} ({sum(p.numel() for p in no_decay):,} params)")
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")  # one kernel

    def compile_plan(self, whole: bool, eval_r: int = 1) -> None:
        """torch.compile, for CUDA. Each block alone (compile=True): one graph serves every application, so a new r
        compiles nothing. whole (compile='model'): dynamo unrolls the plan's loop for the r of a call into one graph,
        fusing across blocks and into the head; each r and mode (train, eval) compiles its own, so dynamo's limit of
        8 per function is raised to all of them. Latent recurrence's first state reads its std on the host (.item()),
        which cuts that graph in two."""
        if not whole:
            for block in [m for m in self.modules() if isinstance(m, Block)]:
                block.compile(dynamic=False)
            return
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, 2 * max(self.plan.max_r, eval_r))
        self.compile(dynamic=False)

    def blocks_flops(self, blocks: nn.ModuleList, seq_len: int, train: bool, r: int | None) -> float:
        return self.plan.flops(linear_weights(blocks[0]), self.config.n_embd, seq_len, train, r, *self.extras.matmuls())

    def run_plan(self, x, blocks: nn.ModuleList, r: int | None = None, caches: list | None = None, states=None,
                 exits=None):
        """The blocks along plan.layers(r): the prelude once, the unit r times, the coda once. Application j (the
        j-th block run) uses caches[j]; `states` (if a list) gets the stream after every application."""
        # exercise 2: the loop over the plan
        plan, extras, apps = self.plan, self.extras, list(enumerate(self.plan.layers(r)))  # (application, block)
        r, a, n = plan.check_r(r), len(plan.prelude), len(plan.unit)

        def run(x, part):
            for j, i in part:
                x = blocks[i](x, None if caches is None else caches[j])
                if states is not None:
                    states.append(x)
            return x

        x = run(x, apps[:a])
        if plan.recursive:
            e, x = x, extras.start(x)  # e: the prelude's output, which injection feeds back every round
            for k in range(r):
                x, e = (x, e) if exits is None else exits.boundary(k, x, e)  # exits.py: settled tokens stop here
                if x is None:  # every token has settled
                    break
                with extras.grad(k, r):  # truncated backprop: early rounds build no graph
                    x = extras.before_round(x, e)
                    x = run(x, apps[a + k * n:a + (k + 1) * n])
                    x = extras.after_round(k, r, x)
        return run(x if exits is None else exits.finish(x), apps[a + r * n:])  # finish: all rows, their exit states
        # end of exercise 2


# --- GPT -------------------------------------------------------------------------------------------------------------
class GPT(PlanModel):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c = self.config = config
        if c.n_embd % c.n_head:
            raise ValueError(f"n_embd={c.n_embd} must be divisible by n_head={c.n_head}")
        self.plan = Plan(c)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c.n_embd, c.n_head, c.dropout, c.bias, causal=True) for _ in range(c.n_layer)]),
            ln_f=nn.LayerNorm(c.n_embd, bias=c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied: https://paperswithcode.com/method/weight-tying
        self.transformer.wpe.is_position = True
        self._init_weights(config)

    def forward(self, idx, targets=None, r: int | None = None, caches: list | None = None, states: list | None = None,
                exits=None):
        B, T = idx.size()
        start = len(caches[0]) if caches else 0  # tokens already in the cache
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size={self.config.block_size}")
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        x = self.transformer.ln_f(self.run_plan(x, self.transformer.h, r, caches, states, exits))  # the plan's blocks
        if targets is None:  # inference: only the last position's logits are needed
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def flops_per_token(self, train: bool = True, r: int | None = None) -> float:
        """FLOPs per token at context block_size: the blocks along the plan and the tied LM head, not embeddings, norms
        or activations; equal to FlopCounterMode's count under the math SDPA kernel."""
        c = self.config
        head = (6 if train else 2) * c.vocab_size * c.n_embd  # the tied LM head
        return self.blocks_flops(self.transformer.h, c.block_size, train, r) + head

    def new_caches(self, r: int | None = None, kv_share: str = "none") -> list[KVCache]:
        """One KV cache per application of plan.layers(r), for forward(caches=...). kv_share saves inference memory:
        with 'first' ('last') only the unit's first (last) round stores keys and values, the other rounds attend to its
        past at the same place in the unit plus their own current token. Shared caches take one token per call."""
        # exercise 5: a KV cache per application
        if kv_share not in ("none", "first", "last"):
            raise ValueError(f"kv_share='{kv_share}' is not one of none, first, last")
        caches, r = [KVCache() for _ in self.plan.layers(r)], self.plan.check_r(r)
        a, n = len(self.plan.prelude), len(self.plan.unit)
        own = 0 if kv_share == "first" else r - 1  # the round that stores
        for k in range(r):
            if kv_share != "none" and k != own:
                caches[a + k * n:a + (k + 1) * n] = map(KVCache, caches[a + own * n:a + (own + 1) * n])
        return caches
        # end of exercise 5

    def kv_cache_bytes_per_token(self, kv_share: str = "none", r: int | None = None, dtype=None) -> int:
        stored = sum(c.owner is None for c in self.new_caches(r, kv_share))  # dtype: autocast's, else the weights'
        return stored * 2 * self.config.n_embd * (dtype or self.lm_head.weight.dtype).itemsize

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 r: int | None = None, use_cache: bool = True, kv_share: str = "none", exits=None):
        """Sample max_new_tokens tokens. The KV caches (new_caches; exits.py's for per-token early exit) are rebuilt
        from the last block_size tokens when the context fills: with kv_share='none' that equals use_cache=False."""
        if kv_share != "none" and not use_cache:
            raise ValueError(f"kv_share='{kv_share}' shares KV caches, so it needs use_cache=True")
        caches = None
        for _ in range(max_new_tokens):
            if caches is None or idx.size(1) > self.config.block_size:  # no cache yet, or the window slid
                caches = (self.new_caches(r, kv_share) if exits is None else exits.new_caches()) if use_cache else None
                window = idx[:, -self.config.block_size:]
                for chunk in window.split(1 if kv_share != "none" else window.size(1), dim=1):
                    logits, _ = self(chunk, r=r, caches=caches)
            else:
                logits, _ = self(idx[:, -1:], r=r, caches=caches, exits=exits)
            logits = logits[:, -1, :] / max(temperature, 1e-8)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            idx_next = logits.argmax(-1, keepdim=True) if temperature == 0 else torch.multinomial(logits.softmax(-1), 1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


# --- ViT: RINS's negative control (the SigLIP two-tower model, where RINS helps, is in siglip.py) --------------------
@dataclass
class ViTConfig(RecursionConfig):
    image_size: int = 28
    patch_size: int = 7
    channels: int = 1
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = False
    num_classes: int = 10  # head outputs: classes, or in SigLIP's image tower the embedding width

def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos positions (simple_vit): dim/4 frequencies each for sin x, cos x, sin y, cos y."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / max(dim // 4 - 1, 1))
    y, x = (t.flatten()[:, None] * omega for t in torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)  # (h*w, dim)

class ViT(PlanModel):
    """simple_vit along a plan: patch Linear + fixed 2-D sin-cos positions, non-causal blocks, norm, mean pool, head."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = self.config = config
        if c.image_size % c.patch_size or c.n_embd % c.n_head or c.n_embd % 4:
            raise ValueError(f"need patch_size | image_size, n_head | n_embd and 4 | n_embd "
                             f"(got {c.patch_size}, {c.image_size}, {c.n_head}, {c.n_embd})")
        self.plan, grid = Plan(c), c.image_size // c.patch_size
        self.n_patches = grid * grid
        self.patch_embed = nn.Linear(c.channels * c.patch_size ** 2, c.n_embd, bias=c.bias)
        self.register_buffer("pos", sincos_2d(grid, grid, c.n_embd), persistent=False)  # not learned, not saved
        self.h = nn.ModuleList([Block(c.n_embd, c.n_head, c.dropout, c.bias, causal=False) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.head = nn.Linear(c.n_embd, c.num_classes, bias=c.bias)
        self._init_weights(c)

    def forward(self, images, targets=None, r: int | None = None, states: list | None = None):
        (B, C, H, W), p = images.shape, self.config.patch_size
        x = images.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, H/p, W/p, p, p, C)
        x = self.patch_embed(x.reshape(B, self.n_patches, p * p * C)) + self.pos  # (B, N, n_embd)
        x = self.run_plan(x, self.h, r, None, states)  # the blocks, in plan order
        logits = self.head(self.ln_f(x).mean(dim=1))  # (B, num_classes)
        return logits, None if targets is None else F.cross_entropy(logits, targets)

    def flops_per_token(self, train: bool = True, r: int | None = None) -> float:
        """Model FLOPs per *patch*: the plan's blocks at T = patches, the patch embedding (4 per weight to
        train: pixels need no gradient) and the head, run once per image, divided by the patches."""
        stack = self.blocks_flops(self.h, self.n_patches, train, r)
        embed = (4 if train else 2) * linear_weights(self.patch_embed)
        return stack + embed + (6 if train else 2) * linear_weights(self.head) / self.n_patches
