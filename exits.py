"""
Depth at inference: per-token early exit from the recursed unit, what it executes, and running a
model for more rounds than its adapters were trained for. GPT.forward and GPT.generate take an `Exits` as `exits`;
run_plan hands it every round boundary and nothing else, so the plan is still walked in one place.

After round k of the '^r' unit a token stops recursing if its state has settled, after max_r rounds at the latest,
and goes on to the coda and the head from the state it stopped at. Two tests say "settled":
  latent  ||h_k - h_(k-1)|| / ||h_k|| < threshold, h_k the stream after round k (h_0: the unit's first state):
          no head needed; it can stop a token after round 1
  kl      KL(p_(k-1) || p_k) < threshold between successive rounds' next-token distributions: the coda and the
          head run on the current state at every boundary (we count them); it can stop a token after round 2

The KV cache rule (one cache per application, as without exits):
  - unit round j keeps an entry for every token: a token that stopped after round k < j stands in with its own
    round-k keys and values of the same block, so later tokens find an entry at every round;
  - the coda's caches are written once per token, from its exit state; the kl test's coda runs read them (the
    earlier tokens' final entries plus the token's own current ones) and write nothing;
  - the prompt runs all max_r rounds (generate calls forward without `exits` for it); exits apply while decoding.
evaluate() applies the same rule to a whole sequence at once (frozen states, stand-in keys and values), so a
threshold sweep costs a few forward passes; test_exits.py checks it against token-by-token decoding.
"""

from dataclasses import replace

import torch
from torch.nn import functional as F

from model import GPT, KVCache, linear_weights

TESTS = ("latent", "kl")
MODES = ("masked", "compact")  # a batch of rows: all rows run until the last settles / only running rows run
ELEMENTWISE = {"latent": 5, "kl": 9}  # test FLOPs per channel (latent) or per vocabulary entry (kl); see flops()


class ExitKV(KVCache):
    """One application's keys and values under the rule above. prev: the same block's cache one round earlier
    (unit rounds 2..max_r); coda: a coda application, which the kl test reads without writing."""

    def __init__(self, exits, prev=None, coda=False):
        super().__init__()
        self.exits, self.prev, self.coda = exits, prev, coda
        self.final, self.mask = None, None  # evaluate(): every token's final coda keys, values for the kl test

    def __len__(self):  # tokens in the past, as SelfAttention reads it before extend()
        peek_final = self.coda and self.exits.peeking and self.final is not None
        return self.final[0].size(2) if peek_final else self.seen

    def extend(self, k, v):
        ex, rows, self.mask = self.exits, self.exits.rows, None
        if self.coda and ex.peeking:  # the kl test: read the past, store nothing
            if self.final is not None:  # a whole sequence: token t sees tokens < t at their exit and itself now
                T, dev = k.size(2), k.device
                self.mask = torch.cat([torch.ones(T, T, dtype=torch.bool, device=dev).tril(-1),
                                       torch.eye(T, dtype=torch.bool, device=dev)], dim=1)  # (T, 2T)
                return torch.cat([self.final[0], k], dim=2), torch.cat([self.final[1], v], dim=2)
            if self.k is None:
                return k, v
            past_k, past_v = (self.k, self.v) if rows is None else (self.k[rows], self.v[rows])
            return torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        if self.prev is None or ex.everyone:  # as without exits: round 1, the coda, a prompt, or while no token has
            return super().extend(k, v)  # settled yet (then not even the strides of k, v change)
        T = k.size(2)
        stand_k, stand_v = self.prev.k[:, :, -T:], self.prev.v[:, :, -T:]  # this call's entries one round earlier
        if rows is None:  # (B, nh, T, hs); every row ran, but settled tokens keep their stand-ins
            keep = ex.active[:, None, :, None]
            k, v = torch.where(keep, k, stand_k), torch.where(keep, v, stand_v)
        else:  # only `rows` ran this round
            keep = ex.active[rows][:, None, :, None]
            k = stand_k.index_copy(0, rows, torch.where(keep, k, stand_k[rows]))
            v = stand_v.index_copy(0, rows, torch.where(keep, v, stand_v[rows]))
        k, v = super().extend(k, v)
        return (k, v) if rows is None or len(rows) == k.size(0) else (k[rows], v[rows])


class Exits:
    """Per-token early exit for GPT.forward(..., r=max_r, exits=...) and GPT.generate(..., r=max_r, exits=...).
    test: 'latent' or 'kl' (module docstring), or 'given' with `given` (B, T) rounds per token (controls, oracle).
    mode: 'masked' (every row runs until the last token settles) or 'compact' (settled rows leave the batch).
    prefill: evaluate() only, the leading tokens that run all rounds, as a prompt does when decoding.
    After each call, history[-1] holds the rounds every token ran (B, T)."""

    def __init__(self, model: GPT, test: str, threshold: float = 0.0, max_r: int | None = None, mode: str = "masked",
                 given: torch.Tensor | None = None, prefill: int = 0):
        plan = model.plan
        if test not in TESTS + ("given",) or (test == "given") != (given is not None):
            raise ValueError(f"exit test '{test}' is not one of {', '.join(TESTS)}")
        if not threshold >= 0:
            raise ValueError(f"exit_threshold={threshold} must be >= 0 (0 never stops a token early)")
        if max_r is not None and max_r < 1:
            raise ValueError(f"max_r={max_r} must be at least 1")
        if not plan.recursive:
            raise ValueError(f"signature '{plan.signature}' has no '^r' unit, so no round to exit from; "
                             "exits need a recursive plan such as A^rB")
        if model.config.adapter == "per_count":
            raise ValueError("adapter='per_count' adapts once after the batch's last round; exits stop tokens at "
                             "different rounds, so they need adapter 'none' or 'per_round'")
        if mode not in MODES:
            raise ValueError(f"exit mode '{mode}' is not one of {', '.join(MODES)}")
        try:
            self.max_r = plan.check_r(max_r)
        except ValueError as e:
            raise ValueError(f"max_r={max_r}: {e}") from None
        self.model, self.test, self.threshold, self.mode = model, test, threshold, mode
        self.given, self.prefill = given, prefill
        self.caches, self.history, self.peeking = None, [], False
        self.active = self.rows = None  # during a call, once a token settled: (B, T) still running; rows that run
        self.everyone = True  # no token has settled (in this call, or no call under way)

    def new_caches(self) -> list[KVCache]:
        """One cache per application of plan.layers(max_r), as GPT.new_caches, with the exit rule built in."""
        plan = self.model.plan
        a, n = len(plan.prelude), len(plan.unit)
        caches = [KVCache() for _ in plan.prelude]
        for j in range(self.max_r):
            caches += [ExitKV(self, prev=caches[a + (j - 1) * n + b] if j else None) for b in range(n)]
        self.caches = caches + [ExitKV(self, coda=True) for _ in plan.coda]
        return self.caches

    def boundary(self, k: int, x, e):
        """run_plan after k rounds: x and e hold the running rows. Returns the rows that go on (x, e), or (None,
        None) once every token has settled."""
        if k == 0:
            if self.caches is None:
                raise ValueError("exits keep their own KV caches: pass caches=exits.new_caches()")
            self.state, self.ref, self.rounds, self.ran, self.done = x, None, None, 0, False
            return x, e
        running, old = None if self.everyone else self._rows(self.active), self._rows(self.state)  # old: h_(k-1)
        x = self._merge(x, running, old)
        self.ran = k
        stop = self._rows(self.given) == k if self.test == "given" else self._statistic(x, old) < self.threshold
        if self.prefill:
            stop[:, :self.prefill] = False
        if running is not None:
            stop &= running
        if not stop.any():  # the common case while decoding: nothing to record
            return x, e
        if self.everyone and stop.all():  # all at once (a single token always): no bookkeeping per token
            self.rounds, self.done = torch.full(stop.shape, k, device=x.device), True
            return None, None
        if self.active is None:
            self.active = torch.ones(self.state.shape[:2], dtype=torch.bool, device=x.device)
            self.rounds = torch.full(self.state.shape[:2], self.max_r, dtype=torch.long, device=x.device)
        self._set(self.rounds, torch.where(stop, k, self._rows(self.rounds)))
        still = ~stop if running is None else running & ~stop
        self._set(self.active, still)
        self.everyone = False
        if not self.active.any():
            self.done = True
            return None, None
        go_on = still.any(dim=1)  # rows with a token still running
        if self.mode == "masked" or go_on.all():
            return x, e
        self.rows = (torch.arange(len(go_on), device=x.device) if self.rows is None else self.rows)[go_on]
        self.ref = None if self.ref is None else self.ref[go_on]
        return x[go_on], None if e is None else e[go_on]

    def finish(self, x):
        """run_plan after the last round: every row's state, each token's from the round it stopped at. Caches of
        rounds no row ran get their stand-ins; the coda then runs on all rows."""
        if not self.done:  # all max_r rounds ran
            self._merge(x, None if self.everyone else self._rows(self.active), self._rows(self.state))
            self.ran = self.max_r
        state, n, a = self.state, len(self.model.plan.unit), len(self.model.plan.prelude)
        for c in self.caches[a + self.ran * n:a + self.max_r * n]:
            KVCache.extend(c, c.prev.k[:, :, -state.size(1):], c.prev.v[:, :, -state.size(1):])
        rounds = self.rounds if self.rounds is not None else torch.full(state.shape[:2], self.max_r)
        self.history.append(rounds.cpu())
        self.state = self.ref = self.active = self.rows = self.rounds = None
        self.everyone = True
        return state

    def _rows(self, t):  # the running rows of a (B, ...) tensor
        return t if self.rows is None else t[self.rows]

    def _set(self, t, value):  # write the running rows of a (B, ...) tensor in place
        if self.rows is None:
            t.copy_(value)
        else:
            t[self.rows] = value

    def _merge(self, x, running, old):
        """Tokens that have settled keep their state, the others take the round's output x."""
        if running is not None:
            x = torch.where(running[..., None], x, old)
        self.state = x if self.rows is None else self.state.index_copy(0, self.rows, x)
        return x

    def _statistic(self, x, old):
        """(rows, T): how much the last round changed each token; inf where the test cannot tell yet."""
        if self.test == "latent":
            return (x - old).norm(dim=-1) / x.norm(dim=-1)
        logp = self.peek(x)
        stat = torch.full(logp.shape[:2], float("inf"), device=x.device) if self.ref is None else \
            (self.ref.exp() * (self.ref - logp)).sum(-1).clamp_min(0)  # KL(p_(k-1) || p_k); rounding can go below 0
        self.ref = logp
        return stat

    def peek(self, x):
        """Next-token log-probabilities from states x (the running rows): the coda and the head, caches read-only."""
        m, plan = self.model, self.model.plan
        coda = list(enumerate(plan.layers(self.max_r)))[len(plan.layers(self.max_r)) - len(plan.coda):]
        self.peeking = True
        try:
            for j, i in coda:
                x = m.transformer.h[i](x, self.caches[j])
        finally:
            self.peeking = False
        return F.log_softmax(m.lm_head(m.transformer.ln_f(x)).float(), dim=-1)


# -----------------------------------------------------------------------------
# the parallel evaluation, the count of what runs, and rounds past the trained adapters


def _rng_state(device):
    cuda = torch.device(device).type == "cuda"
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None

def _set_rng_state(state, device):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@torch.no_grad()
def evaluate(model: GPT, idx, targets, exits: Exits):
    """Teacher-forced next-token losses (B, T) under the exit rule, every position in one pass, the rounds each
    token ran (B, T), and the logits. Equal to decoding the sequence token by token after a prompt of
    exits.prefill tokens. The kl test's coda runs see the final coda keys of earlier tokens, which depend on their
    own exits: we iterate from a full-depth pass until the exits repeat (at most T + 1 passes; a token's exits are
    final once those of every earlier token are). Each pass replays the same random stream (the latent noise)."""
    rng = _rng_state(idx.device)
    r, n_coda = exits.max_r, len(model.plan.coda)
    final, rounds = None, torch.full(idx.shape, r, dtype=torch.long)  # exits.history is on the CPU
    if exits.test == "kl":
        _set_rng_state(rng, idx.device)
        full = model.new_caches(r)
        model(idx, r=r, caches=full)
        final = [(c.k, c.v) for c in full[len(full) - n_coda:]]
    for _ in range(idx.size(1) + 1):
        _set_rng_state(rng, idx.device)
        caches = exits.new_caches()
        for c, f in zip(caches[len(caches) - n_coda:], final or []):
            c.final = f
        logits, _ = model(idx, targets, r=r, caches=caches, exits=exits)
        ran = exits.history[-1]
        if final is None or torch.equal(ran, rounds):
            losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
            return losses.view(idx.shape), ran, logits
        rounds, final = ran, [(c.k, c.v) for c in caches[len(caches) - n_coda:]]
    raise RuntimeError("the kl exits did not settle in T + 1 passes; this is a bug")


def flops(model: GPT, rounds, test: str | None, max_r: int, keys=None, elementwise: bool = True):
    """Executed FLOPs per token (float64, rounds' shape) at the convention of model.flops_per_token(train=False):
    the prelude and coda once, rounds x the unit, the head once, and the exit tests: the kl test's coda and head
    at every boundary before the token stops (min(rounds, max_r - 1) of them), plus the tests' elementwise work
    (ELEMENTWISE per channel or vocabulary entry; FlopCounterMode does not see it: elementwise=False leaves it out).
    keys: keys each attention reads (default block_size, the full-square convention; t + 1 when decoding token t)."""
    c, plan = model.config, model.plan
    keys = c.block_size if keys is None else keys
    apply = 2 * linear_weights(model.transformer.h[0]) + 4 * torch.as_tensor(keys, dtype=torch.float64) * c.n_embd
    per_round, once = model.extras.matmuls()
    head, rounds = 2 * c.vocab_size * c.n_embd, rounds.double()
    total = (len(plan.prelude) + len(plan.coda)) * apply + 2 * once + head \
        + rounds * (len(plan.unit) * apply + 2 * per_round)
    tests = rounds.clamp(max=max_r - 1)
    if test == "kl":
        total = total + tests * (len(plan.coda) * apply + head + elementwise * ELEMENTWISE["kl"] * c.vocab_size)
    elif test == "latent" and elementwise:
        total = total + tests * ELEMENTWISE["latent"] * c.n_embd
    return total


def summary(rounds) -> dict:
    """Rounds per token: mean, 90th percentile and histogram {rounds: share}."""
    r = rounds.flatten()
    values, counts = r.unique(return_counts=True)
    return dict(mean=r.double().mean().item(), p90=r.double().quantile(0.9, interpolation="higher").item(),
                hist={int(v): c.item() / r.numel() for v, c in zip(values, counts)})


def with_rounds(model: GPT, r: int) -> GPT:
    """The model itself if it runs r rounds, else (per-round adapters trained for fewer) a copy whose rounds past
    them get zero adapters, i.e. none: the extra rounds run as trained rounds without an adapter would."""
    plan = model.plan
    if not plan.adapted or r <= plan.max_r:
        return model
    if model.config.round_sampler == "poisson":
        raise ValueError("adding adapter rounds to a poisson-sampled model is not supported")
    with torch.random.fork_rng(devices=[]):  # building the copy draws init weights: leave the caller's stream be
        deeper = GPT(replace(model.config, r=r))
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("extras.adapters.") for k in missing), (missing, unexpected)
    return deeper.to(model.lm_head.weight.device).eval()
