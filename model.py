"""
nanoRINS model: a GPT whose depth is an *execution plan* over one list of physical blocks.

Recursive Inference Scaling (RINS, Alabdulmohsin & Zhai, arXiv 2502.07503) splits the L blocks into
halves A and B and runs A^r B: A applied r times to its own output, then B once. Every rival
recursion (RAO (AB)^r, AB^r, MobileLLM sharing, latent recurrent depth) is another plan over the
same blocks, so all variants share the baseline's parameters. The plan is built once, by
`Recursion`, and it alone decides what runs, what the FLOP counter counts and how the KV cache
is keyed.
"""

import itertools
import math
import re
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

# -----------------------------------------------------------------------------
# Transformer block (shared by the GPT and the ViT)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's cannot drop just the bias)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class KVCache:
    """Keys and values of one *application* of a block: a block run r times owns r of these."""

    def __init__(self):
        self.k = self.v = None

    def __len__(self):
        return 0 if self.k is None else self.k.size(2)

    def extend(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


class SelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, causal: bool):
        super().__init__()
        assert n_embd % n_head == 0
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
        mask, is_causal = None, self.causal and past == 0
        if self.causal and past > 0 and T > 1:  # new queries see the whole past plus their own prefix
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


class Block(nn.Module):
    """Pre-LN transformer block; `causal` is the only difference between the GPT's and the ViT's."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, causal: bool):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias)
        self.attn = SelfAttention(n_embd, n_head, dropout, bias, causal)
        self.ln_2 = LayerNorm(n_embd, bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x, cache: KVCache | None = None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


def init_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2 init, applied module by module so the random stream never depends on the plan.

    Linear and Embedding weights ~ N(0, 0.02); biases 0; LayerNorm weight 1, bias 0.
    Residual projections (attribute `is_residual_proj`) ~ N(0, 0.02 / sqrt(2 * n_layer)) with
    n_layer the *physical* depth, in every arm, so A^1 B is the baseline bit for bit.
    Modules with `zero_init` (adapter output factors) start at 0: at init they change nothing.
    """
    if isinstance(module, nn.Linear):
        if getattr(module, "zero_init", False):
            nn.init.zeros_(module.weight)
        else:
            std = 0.02 / math.sqrt(2 * n_layer) if getattr(module, "is_residual_proj", False) else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def linear_weights(module: nn.Module) -> int:
    """Multiply-accumulates per token of every nn.Linear inside `module` (= its matmul weights)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


# -----------------------------------------------------------------------------
# Execution plans: signature -> physical layer indices

SIGNATURE_HELP = ("use capital letters introduced in order (A, then B, ...), groups '(...)', powers '^n' and at most "
                  "one '^r' (the recursed unit), e.g. AB, A^rB, (AB)^r, AB^r, A^3B, AB^rC; or 'blockwise' / 'reverse'")


def parse_signature(signature: str, n_layer: int) -> tuple[str, str, str]:
    """Expand a signature into (pre, unit, post) letter strings; the unit is what '^r' repeats.

    'A^rB' -> ('', 'A', 'B');  '(AB)^r' -> ('', 'AB', '');  'A^3B' -> ('AAAB', '', '').
    MobileLLM's patterns are named: 'blockwise' runs each layer twice in a row, 'reverse' runs
    layers 1..L then L..1; both give every layer its own letter.
    """
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if signature in ("blockwise", "reverse"):
        if n_layer > len(letters):
            raise ValueError(f"signature '{signature}' needs n_layer <= 26, got {n_layer}")
        own = letters[:n_layer]
        return (''.join(c + c for c in own) if signature == "blockwise" else own + own[::-1]), "", ""
    pos = 0

    def bad(why):
        return ValueError(f"bad signature '{signature}': {why}; {SIGNATURE_HELP}")

    def sequence():  # -> list of (letters, is_recursed)
        nonlocal pos
        items = []
        while pos < len(signature) and signature[pos] != ")":
            c = signature[pos]
            if c == "(":
                pos += 1
                inner = sequence()
                if pos == len(signature):
                    raise bad("unclosed '('")
                if any(rec for _, rec in inner):
                    raise bad("'^r' must be outside parentheses")
                text = "".join(t for t, _ in inner)
            elif c in letters:
                text = c
            else:
                raise bad(f"unexpected '{c}' at position {pos}")
            pos += 1
            power = re.match(r"\^(r|[1-9][0-9]*)", signature[pos:])
            if signature[pos:pos + 1] == "^" and not power:
                raise bad(f"'^' at position {pos} must be followed by r or a positive integer")
            if power:
                pos += power.end()
            if power and power.group(1) == "r":
                items.append((text, True))
            else:
                items.append((text * (int(power.group(1)) if power else 1), False))
        return items

    items = sequence()
    if pos < len(signature):
        raise bad(f"unmatched ')' at position {pos}")
    if not items:
        raise bad("it is empty")
    recursed = [i for i, (_, rec) in enumerate(items) if rec]
    if len(recursed) > 1:
        raise bad("only one '^r' is allowed")
    cut = recursed[0] if recursed else len(items)
    pre, unit, post = ("".join(t for t, _ in part) for part in (items[:cut], items[cut:cut + 1] if recursed else [], items[cut + 1:]))
    seen = "".join(dict.fromkeys(pre + unit + post))
    if seen != letters[:len(seen)]:
        raise bad(f"letters must first appear in alphabetical order (found {seen})")
    return pre, unit, post


@dataclass
class RecursionConfig:
    """What makes a model recursive; GPTConfig and ViTConfig inherit these fields."""
    signature: str = "AB"  # AB = the baseline; A^rB = RINS; (AB)^r = RAO; see SIGNATURE_HELP
    r: int = 1  # rounds of the '^r' unit (for 'poisson': the mean)
    degree: int = 1  # fractal substitution depth (PAPER.md §2, our hypothesis)
    partition: str = ""  # letter sizes, e.g. '1:2:1'; empty = equal slices
    round_sampler: str = "fixed"  # training rounds: 'fixed' | 'binomial' (stochastic RINS) | 'poisson' (latent)
    stochastic_p: float = 0.5  # binomial: each extra round is skipped with probability p
    bptt_rounds: int = 0  # backprop through only the last k rounds (0 = all)
    injection: str = "none"  # per-round input injection: 'none' | 'add' (s + e) | 'concat' (W [s, e])
    state_init: str = "input"  # first state: 'input' (the stream itself) | 'noise' (latent recurrence)
    adapter: str = "none"  # linear adapters: 'none' | 'per_round' | 'per_count'
    adapter_rank: int = 0  # 0 = full d x d, k > 0 = rank-k factors


ROUND_SAMPLERS, INJECTIONS, STATE_INITS, ADAPTERS = ("fixed", "binomial", "poisson"), ("none", "add", "concat"), ("input", "noise"), ("none", "per_round", "per_count")


class Adapter(nn.Module):
    """h + U norm(h): a linear map, full or low rank, whose output factor starts at zero."""

    def __init__(self, n_embd: int, rank: int):
        super().__init__()
        inner = rank or n_embd
        self.down = nn.Linear(n_embd, inner, bias=False) if rank else nn.Identity()
        self.up = nn.Linear(inner, n_embd, bias=False)
        self.up.zero_init = True

    def forward(self, h):
        return h + self.up(self.down(F.layer_norm(h, h.shape[-1:])))


class Recursion(nn.Module):
    """The execution plan and everything that hangs off it: rounds, adapters, injection, FLOPs.

    plan(r) = pre + unit * r + post, a list of physical block indices. The only parameters this
    module adds are adapters and the concat-injection matrix, kept here so they count separately.
    """

    def __init__(self, cfg: RecursionConfig, n_layer: int, n_embd: int):
        super().__init__()
        self.cfg, self.n_layer = cfg, n_layer
        for name, value, allowed in (("round_sampler", cfg.round_sampler, ROUND_SAMPLERS), ("injection", cfg.injection, INJECTIONS),
                                     ("state_init", cfg.state_init, STATE_INITS), ("adapter", cfg.adapter, ADAPTERS)):
            if value not in allowed:
                raise ValueError(f"{name}='{value}' is not one of {', '.join(allowed)}")
        if cfg.r < 1 or cfg.degree < 1 or cfg.bptt_rounds < 0 or cfg.adapter_rank < 0:
            raise ValueError(f"need r >= 1, degree >= 1, bptt_rounds >= 0, adapter_rank >= 0 (got r={cfg.r}, "
                             f"degree={cfg.degree}, bptt_rounds={cfg.bptt_rounds}, adapter_rank={cfg.adapter_rank})")
        if not 0.0 <= cfg.stochastic_p < 1.0:
            raise ValueError(f"stochastic_p={cfg.stochastic_p} must be in [0, 1)")
        pre, unit, post = parse_signature(cfg.signature, n_layer)
        self.recursive = bool(unit)
        n_letters = len(set(pre + unit + post))
        self.weights = [int(w) if w.isdigit() else 0 for w in cfg.partition.split(":")] if cfg.partition else [1] * n_letters
        if len(self.weights) != n_letters or min(self.weights) < 1:
            raise ValueError(f"partition '{cfg.partition}' must give one positive integer per letter ({n_letters} letters), e.g. "
                             + ":".join(["1"] * n_letters))
        if not self.recursive and (cfg.r != 1 or cfg.round_sampler != "fixed" or cfg.adapter != "none"
                                   or cfg.injection != "none" or cfg.state_init != "input" or cfg.bptt_rounds):
            raise ValueError(f"signature '{cfg.signature}' has no '^r' unit, so r, round_sampler, adapter, injection, "
                             "state_init and bptt_rounds must keep their defaults; recurse with e.g. A^rB")
        if cfg.state_init == "noise" and cfg.injection == "none":
            raise ValueError("state_init='noise' discards the stream unless injection is 'add' or 'concat'")
        self.letters = (pre, unit, post)
        self.pre, self.unit, self.post = (self._expand(part, 0, n_layer, cfg.degree) for part in self.letters)
        self.max_rounds = {"fixed": cfg.r, "binomial": cfg.r, "poisson": 4 * cfg.r}[cfg.round_sampler]  # poisson: Huginn-style cap
        self.inject = nn.Linear(2 * n_embd, n_embd, bias=False) if cfg.injection == "concat" else None
        self.round_probs = self._round_distribution()  # {rounds: probability} in training
        n_adapters = self.max_rounds if cfg.adapter != "none" else 0
        self.adapters = nn.ModuleList(Adapter(n_embd, cfg.adapter_rank) for _ in range(n_adapters))

    # --- building the plan ---
    def _expand(self, letters: str, lo: int, hi: int, degree: int) -> list[int]:
        """Letters -> layers of [lo, hi); at degree d > 1 each letter becomes the degree d-1 plan of its slice."""
        total = sum(self.weights)
        if (hi - lo) % total:
            raise ValueError(f"signature '{self.cfg.signature}' at degree {self.cfg.degree} splits {hi - lo} layers into parts "
                             f"{':'.join(map(str, self.weights))}; use n_layer divisible by {total ** self.cfg.degree}")
        bounds = [lo + (hi - lo) // total * w for w in itertools.accumulate(self.weights, initial=0)]
        layers = []
        for c in letters:
            a, b = bounds[ord(c) - 65], bounds[ord(c) - 64]
            if degree == 1:
                layers += range(a, b)
            else:
                pre, unit, post = (self._expand(part, a, b, degree - 1) for part in self.letters)
                layers += pre + unit * self.cfg.r + post
        return layers

    def rounds(self, r: int | None) -> int:
        """The rounds to run: the configured r, or an inference-time override checked against the plan."""
        if r is None:
            return self.cfg.r
        if not self.recursive:
            raise ValueError(f"r={r} given, but signature '{self.cfg.signature}' has no '^r' unit to repeat")
        if r < 1:
            raise ValueError(f"r={r} must be at least 1")
        if self.adapters and r > self.max_rounds:
            raise ValueError(f"r={r} exceeds the {self.max_rounds} rounds this model has adapters for")
        return r

    def plan(self, r: int | None = None) -> list[int]:
        return self.pre + self.unit * self.rounds(r) + self.post

    def describe(self, r: int | None = None) -> str:
        r = self.rounds(r)
        parts = [self.pre] + [self.unit] * r + [self.post]
        text = " | ".join(" ".join(map(str, p)) for p in parts if p)
        n = sum(map(len, parts))
        return f"{self.cfg.signature} (r={r}, degree {self.cfg.degree}): {text}  [{n} applications, {n / self.n_layer:.2f}x of {self.n_layer} layers]"

    # --- stochastic rounds ---
    def _round_distribution(self) -> dict[int, float]:
        """Distribution of training rounds. binomial: 1 + Binomial(r-1, 1-p) (stochastic RINS);
        poisson: 1 + Poisson(lambda), lambda ~ LogNormal(ln(r-1) - s^2/2, s), s = 0.5, capped at 4r
        (Geiping et al.), so the mean is r; its mixture is integrated on lambda quantiles."""
        c = self.cfg
        if c.round_sampler == "fixed":
            return {c.r: 1.0}
        if c.round_sampler == "binomial":
            n, q = c.r - 1, 1 - c.stochastic_p
            return {1 + k: math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(n + 1)}
        if c.r == 1:
            return {1: 1.0}
        s, quantiles = 0.5, (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
        lam = torch.exp(math.log(c.r - 1) - s * s / 2 + s * math.sqrt(2) * torch.special.erfinv(2 * quantiles - 1))
        k = torch.arange(self.max_rounds, dtype=torch.float64)
        pmf = torch.exp(k[:, None] * lam.log() - lam - torch.lgamma(k[:, None] + 1)).mean(1)
        pmf[-1] += 1 - pmf.sum()  # fold the tail beyond the cap onto the cap
        return {1 + int(i): float(p) for i, p in enumerate(pmf)}

    def sample_rounds(self, generator: torch.Generator) -> int:
        """One draw per optimizer step, from a generator no data sampling or dropout touches."""
        probs = self.round_probs
        i = torch.multinomial(torch.tensor(list(probs.values())), 1, generator=generator).item()
        return list(probs)[i]

    # --- running the plan ---
    def forward(self, x, blocks: nn.ModuleList, r: int | None = None, caches: list[KVCache] | None = None,
                states: list | None = None):
        """Walk pre, r rounds of the unit, then post. caches[i] belongs to the i-th *application*,
        so round k only ever sees round-k keys; `states` (if a list) collects the stream after each round."""
        rounds, app = self.rounds(r), 0

        def run(layers, h):
            nonlocal app
            for i in layers:
                h = blocks[i](h, None if caches is None else caches[app])
                app += 1
            return h

        e = run(self.pre, x)
        if not self.recursive:
            return e
        s = e
        if self.cfg.state_init == "noise":  # fresh every call, std of the prelude output
            std = e.detach().std().item()
            s = nn.init.trunc_normal_(torch.empty_like(e), std=std, a=-3 * std, b=3 * std)
        grad = torch.is_grad_enabled()
        no_grad_rounds = max(rounds - self.cfg.bptt_rounds, 0) if self.cfg.bptt_rounds and grad else 0
        for k in range(rounds):
            with torch.set_grad_enabled(grad and k >= no_grad_rounds):
                if self.cfg.injection == "add":
                    s = s + e
                elif self.cfg.injection == "concat":
                    s = self.inject(torch.cat([s, e], dim=-1))
                s = run(self.unit, s)
                if self.cfg.adapter == "per_round":
                    s = self.adapters[k](s)
            if states is not None:
                states.append(s)
        if self.cfg.adapter == "per_count":  # tells B how many rounds ran
            s = self.adapters[rounds - 1](s)
        return run(self.post, s)

    # --- FLOPs ---
    def flops_per_token(self, block_matmuls: int, n_embd: int, seq_len: int, train: bool, r: int | None = None) -> float:
        """FLOPs per token of the stack, from the plan. A block application is 2*matmul weights
        (linears) + 4*T*d (q.k^T and att.v over the *full* T x T square: causal masking is not
        halved, as the math SDPA kernel computes it). Training triples the forward except in rounds
        run without grad (truncated backprop), which cost the forward only. With sampled rounds the
        count is the expectation over round_probs."""
        probs = self.round_probs if train and r is None else {self.rounds(r): 1.0}
        apply = 2 * block_matmuls + 4 * seq_len * n_embd
        adapter = 2 * sum(linear_weights(a) for a in self.adapters[:1])
        inject = 2 * linear_weights(self.inject) if self.inject is not None else 0
        total = 0.0
        for rounds, p in probs.items():
            no_grad = max(rounds - self.cfg.bptt_rounds, 0) if self.cfg.bptt_rounds and train else 0
            round_cost = len(self.unit) * apply + inject + (adapter if self.cfg.adapter == "per_round" else 0)
            fwd_grad = (len(self.pre) + len(self.post)) * apply + (rounds - no_grad) * round_cost
            fwd_grad += adapter if self.cfg.adapter == "per_count" else 0
            total += p * ((3 if train else 1) * fwd_grad + no_grad * round_cost)
        return total


# -----------------------------------------------------------------------------
# What every model shares: init order, parameter counts, the optimizer


class RecursiveModel(nn.Module):
    def _build_recursion(self, config: RecursionConfig) -> None:
        """Init every module, then build the plan: recursion's extras come last, so they never shift the blocks' init."""
        for m in self.modules():
            init_weights(m, config.n_layer)
        self.recursion = Recursion(config, config.n_layer, config.n_embd)
        for m in self.recursion.modules():
            init_weights(m, config.n_layer)

    @property
    def plan(self) -> list[int]:
        return self.recursion.plan()

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameters of the baseline architecture (identical for every signature; recursion's extras are
        `get_num_extra_params`), by default without learned position tables (`is_position`)."""
        n = sum(p.numel() for p in self.parameters()) - self.get_num_extra_params()
        if non_embedding:
            n -= sum(m.weight.numel() for m in self.modules() if getattr(m, "is_position", False))
        return n

    def get_num_extra_params(self) -> int:
        return sum(p.numel() for m in self.modules() if isinstance(m, Recursion) for p in m.parameters())

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas, device_type: str):
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]  # matmul weights and embeddings; not norms, biases or scalars
        no_decay = [p for p in params if p.dim() < 2]
        print(f"decayed tensors: {len(decay)} ({sum(p.numel() for p in decay):,} params), "
              f"non-decayed: {len(no_decay)} ({sum(p.numel() for p in no_decay):,} params)")
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = device_type == "cuda"  # one kernel for all tensors; CPU keeps the reference foreach path
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)


# -----------------------------------------------------------------------------
# GPT


@dataclass
class GPTConfig(RecursionConfig):
    block_size: int = 256
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64
    n_layer: int = 8
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False


class GPT(RecursiveModel):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.vocab_size is not None and config.block_size is not None
        if config.n_embd % config.n_head:
            raise ValueError(f"n_embd={config.n_embd} must be divisible by n_head={config.n_head}")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config.n_embd, config.n_head, config.dropout, config.bias, causal=True)
                             for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied: https://paperswithcode.com/method/weight-tying
        self.transformer.wpe.is_position = True
        self._build_recursion(config)

    def encode(self, idx, r: int | None = None, caches: list[KVCache] | None = None, states: list | None = None):
        """Token ids (B, T) -> final-norm hidden states (B, T, C): the LM's and the text tower's features."""
        B, T = idx.size()
        start = len(caches[0]) if caches else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size={self.config.block_size}")
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        x = self.recursion(x, self.transformer.h, r, caches, states)
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None, r: int | None = None, caches: list[KVCache] | None = None, states: list | None = None):
        x = self.encode(idx, r, caches, states)
        if targets is None:  # inference: only the last position's logits are needed
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def flops_per_token(self, train: bool = True, r: int | None = None) -> float:
        """Model FLOPs per token at context block_size: the plan's blocks (Recursion.flops_per_token)
        plus the tied LM head (2*V*d forward, x3 to train). Embedding lookups, norms and activations
        are not counted. Agrees with torch.utils.flop_counter.FlopCounterMode under the math SDPA kernel."""
        c = self.config
        stack = self.recursion.flops_per_token(linear_weights(self.transformer.h[0]), c.n_embd, c.block_size, train, r)
        return stack + (6 if train else 2) * c.vocab_size * c.n_embd

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 r: int | None = None, use_cache: bool = True):
        """Sample max_new_tokens tokens. With use_cache each application in the plan keeps its own KV
        cache; when the context fills, the cache is rebuilt from the last block_size tokens so the
        result equals recomputing from scratch (use_cache=False)."""
        caches = None
        for _ in range(max_new_tokens):
            if not use_cache or caches is None or idx.size(1) > self.config.block_size:
                caches = [KVCache() for _ in self.recursion.plan(r)] if use_cache else None
                logits, _ = self(idx[:, -self.config.block_size:], r=r, caches=caches)
            else:
                logits, _ = self(idx[:, -1:], r=r, caches=caches)
            logits = logits[:, -1, :] / max(temperature, 1e-8)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            if temperature == 0:
                idx_next = logits.argmax(dim=-1, keepdim=True)
            else:
                idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


# -----------------------------------------------------------------------------
# Vision: a ViT (RINS's negative control) and a SigLIP-style two-tower model (where RINS helps)


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
    y, x = (t.flatten()[:, None] * omega for t in torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))  # (h*w, dim/4)
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)  # (h*w, dim)


class ViT(RecursiveModel):
    """simple_vit along a plan: patch Linear + fixed 2-D sin-cos positions, non-causal blocks, norm, mean pool, head."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        c = self.config = config
        if c.image_size % c.patch_size or c.n_embd % c.n_head or c.n_embd % 4:
            raise ValueError(f"need patch_size | image_size, n_head | n_embd and 4 | n_embd (got {c.patch_size}, {c.image_size}, {c.n_head}, {c.n_embd})")
        grid = c.image_size // c.patch_size
        self.n_patches = grid * grid
        self.patch_embed = nn.Linear(c.channels * c.patch_size ** 2, c.n_embd, bias=c.bias)
        self.register_buffer("pos", sincos_2d(grid, grid, c.n_embd), persistent=False)  # not learned, not saved
        self.h = nn.ModuleList([Block(c.n_embd, c.n_head, c.dropout, c.bias, causal=False) for _ in range(c.n_layer)])
        self.ln_f = LayerNorm(c.n_embd, c.bias)
        self.head = nn.Linear(c.n_embd, c.num_classes, bias=c.bias)
        self._build_recursion(c)

    def encode(self, images, r: int | None = None, states: list | None = None):  # (B, C, H, W) -> (B, n_embd)
        (B, C, H, W), p = images.shape, self.config.patch_size
        x = images.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)  # (B, H/p, W/p, p, p, C)
        x = self.patch_embed(x.reshape(B, self.n_patches, p * p * C)) + self.pos  # (B, N, n_embd)
        return self.ln_f(self.recursion(x, self.h, r, None, states)).mean(dim=1)  # (B, n_embd)

    def forward(self, images, targets=None, r: int | None = None, states: list | None = None):
        logits = self.head(self.encode(images, r, states))  # (B, num_classes)
        return logits, None if targets is None else F.cross_entropy(logits, targets)

    def flops_per_token(self, train: bool = True, r: int | None = None) -> float:
        """Model FLOPs per *patch*: the plan's blocks at T = patches, the patch embedding (4 per weight to
        train: pixels need no gradient) and the head, run once per image, divided by the patches."""
        stack = self.recursion.flops_per_token(linear_weights(self.h[0]), self.config.n_embd, self.n_patches, train, r)
        embed = (4 if train else 2) * linear_weights(self.patch_embed)
        return stack + embed + (6 if train else 2) * linear_weights(self.head) / self.n_patches


@dataclass
class SigLIPConfig(ViTConfig):
    """The image tower is ViTConfig's; the text tower is a causal GPT of the same shape over caption words."""
    num_classes: int = 64  # the shared embedding width (the image tower's head is its projection)
    vocab_size: int = 64  # caption words; id 0 is <pad>
    text_len: int = 12  # caption tokens, padded at the end
    rins_tower: str = "image"  # where the recursion fields apply: 'image' | 'text' | 'both'; other towers run AB


def sigmoid_loss(z_img: torch.Tensor, z_txt: torch.Tensor, t_prime: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SigLIP: logits = exp(t') z_img z_txt^T + b for n pairs (L2-normalised rows), label +1 on the
    diagonal and -1 off it, loss = -(1/n) sum_ij log sigmoid(label_ij * logit_ij)."""
    logits = t_prime.exp() * z_img @ z_txt.T + b  # (n, n)
    labels = 2 * torch.eye(len(logits), device=logits.device) - 1
    return logits, -F.logsigmoid(labels * logits).sum() / len(logits)


class SigLIP(RecursiveModel):
    """Two towers trained with the sigmoid loss (Zhai et al. 2023), recursion in one tower or both.
    Text: causal attention, pooled at each caption's last word, which trailing <pad>s cannot reach."""

    def __init__(self, config: SigLIPConfig):
        super().__init__()
        c = self.config = config
        if c.rins_tower not in ("image", "text", "both"):
            raise ValueError(f"rins_tower='{c.rins_tower}' is not one of image, text, both")

        def tower(cls, recursive: bool, **kw):  # the tower's fields from ours; a plain tower gets the default AB
            return cls(**{f.name: getattr(c, f.name) for f in fields(cls) if hasattr(c, f.name)} | kw
                       | ({} if recursive else asdict(RecursionConfig())))
        self.image = ViT(tower(ViTConfig, c.rins_tower != "text"))
        self.text = GPT(tower(GPTConfig, c.rins_tower != "image", block_size=c.text_len))
        self.text_proj = nn.Linear(c.n_embd, c.num_classes, bias=False)
        init_weights(self.text_proj, c.n_layer)
        self.t_prime, self.b = nn.Parameter(torch.tensor(math.log(10.0))), nn.Parameter(torch.tensor(-10.0))  # t = exp(t') = 10

    @property
    def recursion(self) -> Recursion:  # the recursive tower's plan (if both recurse they share one config)
        return self.text.recursion if self.config.rins_tower == "text" else self.image.recursion

    def _r(self, tower: str, r: int | None):  # an inference-depth override reaches recursive towers only
        return r if self.config.rins_tower in (tower, "both") else None

    def encode_image(self, images, r: int | None = None):
        return F.normalize(self.image(images, r=self._r("image", r))[0], dim=-1)  # (B, D)

    def encode_text(self, tokens, r: int | None = None):
        x = self.text.encode(tokens, r=self._r("text", r))  # (B, T, C)
        last = (tokens != 0).sum(1) - 1  # each caption's last word
        return F.normalize(self.text_proj(x[torch.arange(len(x)), last]), dim=-1)  # (B, D)

    def forward(self, images, tokens, r: int | None = None):
        return sigmoid_loss(self.encode_image(images, r), self.encode_text(tokens, r), self.t_prime, self.b)

    @torch.no_grad()
    def zero_shot(self, images, prompts, r: int | None = None):
        """Class per image: the nearest renormalised mean of each class's prompt embeddings (CLIP's ensemble)."""
        text = self.encode_text(prompts.flatten(0, 1), r).unflatten(0, prompts.shape[:2])  # (K, P, D)
        classes = F.normalize(text.mean(1), dim=-1)  # (K, D)
        return (self.encode_image(images, r) @ classes.T).argmax(1)

    def flops_per_token(self, train: bool = True, r: int | None = None) -> float:
        """FLOPs per token of a pair (patches + words): the image tower (ViT's count), the text blocks at T = text_len,
        the text projection once per caption. Not counted: the n x n similarity (6*n*D per pair to train, < 0.5%)."""
        c, img, h = self.config, self.image, self.text.transformer.h
        text = self.text.recursion.flops_per_token(linear_weights(h[0]), c.n_embd, c.text_len, train, self._r("text", r))
        pair = img.n_patches * img.flops_per_token(train, self._r("image", r)) + c.text_len * text
        return (pair + (6 if train else 2) * linear_weights(self.text_proj)) / (img.n_patches + c.text_len)
