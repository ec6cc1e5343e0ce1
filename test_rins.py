"""
The executable specification of nanoRINS: what the paper says, checked on tiny models on the CPU.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest test_rins.py -v     (or: make test)
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from model import GPT, GPTConfig, KVCache, parse_signature

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = dict(n_layer=4, n_head=2, n_embd=32, block_size=16, vocab_size=64)


def tiny_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**(TINY | kw)))


def batch(seed=0, B=3, T=16, V=64):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(V, (B, T), generator=g), torch.randint(V, (B, T), generator=g)


def exec_config(path: str) -> dict:
    scope = {}
    exec(open(path).read(), {}, scope)
    return scope


# Every variant the paper compares, as config fields (the config/*_small.py files are checked separately).
VARIANTS = {
    "baseline": dict(signature="AB"),
    "rins_r2": dict(signature="A^rB", r=2),
    "rins_r3": dict(signature="A^rB", r=3),
    "rao": dict(signature="(AB)^r", r=2),
    "ab2": dict(signature="AB^r", r=2),
    "blockwise": dict(signature="blockwise"),
    "reverse": dict(signature="reverse"),
    "degree2": dict(signature="A^rB", r=2, degree=2),
    "latent": dict(signature="AB^rC", partition="1:2:1", r=2, round_sampler="poisson", injection="concat", state_init="noise", bptt_rounds=2),
    "latent_lite": dict(signature="AB^rC", partition="1:2:1", r=2, injection="add"),
    "stoch": dict(signature="A^rB", r=3, round_sampler="binomial", stochastic_p=0.5),
    "stoch_adapters": dict(signature="A^rB", r=3, round_sampler="binomial", adapter="per_round", adapter_rank=4),
    "per_count": dict(signature="A^rB", r=3, adapter="per_count"),
}

# -----------------------------------------------------------------------------
# Execution plans


@pytest.mark.parametrize("signature, kw, plan", [
    ("AB", {}, [0, 1, 2, 3, 4, 5, 6, 7]),
    ("A^rB", dict(r=2), [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7]),
    ("A^3B", {}, [0, 1, 2, 3] * 3 + [4, 5, 6, 7]),
    ("(AB)^r", dict(r=2), list(range(8)) * 2),
    ("AB^2", {}, [0, 1, 2, 3] + [4, 5, 6, 7] * 2),
    ("AABB", {}, [0, 1, 2, 3] * 2 + [4, 5, 6, 7] * 2),
    ("ABBA", {}, [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 0, 1, 2, 3]),
    ("A^rB", dict(r=2, degree=2), [0, 1, 0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5, 4, 5, 6, 7]),
    ("blockwise", {}, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]),
    ("reverse", {}, list(range(8)) + list(range(7, -1, -1))),
    ("AB^rC", dict(r=2, partition="1:2:1"), [0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7]),
])
def test_plans_match_paper_table(signature, kw, plan):
    """The worked plans of PAPER.md section 2 for L = 8."""
    assert tiny_gpt(n_layer=8, signature=signature, **kw).plan == plan


@pytest.mark.parametrize("kw, fragment", [
    (dict(signature="A^rX"), "alphabetical order"),
    (dict(signature="BA"), "alphabetical order"),
    (dict(signature="A^B"), "must be followed by r or a positive integer"),
    (dict(signature="A^0B"), "must be followed by r or a positive integer"),
    (dict(signature="(AB"), "unclosed"),
    (dict(signature="AB)"), "unmatched"),
    (dict(signature="a^rb"), "unexpected 'a'"),
    (dict(signature="A^rB^r"), "only one '^r'"),
    (dict(signature="(A^rB)^2"), "outside parentheses"),
    (dict(signature=""), "empty"),
    (dict(signature="ABC"), "divisible"),  # 4 layers into 3 letters
    (dict(signature="A^rB", r=0), "r >= 1"),
    (dict(signature="A^rB", r=2, degree=3), "divisible by 8"),
    (dict(signature="AB", r=2), "no '^r' unit"),
    (dict(signature="A^rB", partition="1:2:1"), "one positive integer per letter"),
    (dict(signature="A^rB", adapter="everywhere"), "adapter='everywhere' is not one of"),
    (dict(signature="A^rB", state_init="noise"), "discards the stream"),
    (dict(signature="A^rB", stochastic_p=1.0), "stochastic_p"),
])
def test_bad_recursion_config_is_one_clear_line(kw, fragment):
    with pytest.raises(ValueError, match=None) as err:
        tiny_gpt(**kw)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_r_override_errors():
    with pytest.raises(ValueError, match="no '\\^r' unit"):
        tiny_gpt()(batch()[0], r=2)
    with pytest.raises(ValueError, match="adapters for"):
        tiny_gpt(signature="A^rB", r=2, adapter="per_round")(batch()[0], r=3)


def test_shorthand_expansion():
    assert parse_signature("A^rB", 8) == ("", "A", "B")
    assert parse_signature("(AB)^2C^r", 9) == ("ABAB", "C", "")
    assert parse_signature("A(BC)^2", 9) == ("ABCBC", "", "")


# -----------------------------------------------------------------------------
# The paper's invariants


def test_r1_is_the_baseline_bit_for_bit():
    """A^1 B: same init from the same seed, identical logits, loss and gradients."""
    x, y = batch()
    base, rins = tiny_gpt(seed=3), tiny_gpt(seed=3, signature="A^rB", r=1)
    for a, b in zip(base.state_dict().values(), rins.state_dict().values()):
        assert torch.equal(a, b)
    (lb, loss_b), (lr, loss_r) = base(x, y), rins(x, y)
    assert torch.equal(lb, lr) and torch.equal(loss_b, loss_r)
    # and a trained-at-r=2 RINS model run at r=1 is the baseline network with its weights
    rins2 = tiny_gpt(seed=5, signature="A^rB", r=2)
    base.load_state_dict(rins2.state_dict())
    assert torch.equal(base(x, y)[0], rins2(x, y, r=1)[0])


@pytest.mark.parametrize("name", ["rins_r2", "rins_r3", "rao", "ab2", "blockwise", "reverse", "degree2"])
def test_shared_plan_equals_unrolled_copy(name):
    """Running shared modules along the plan equals a plain GPT whose i-th block is a copy of
    block plan[i]: same logits, and each shared gradient is the sum over its applications."""
    shared = tiny_gpt(n_layer=8, **VARIANTS[name])
    plan = shared.plan
    unrolled = tiny_gpt(n_layer=len(plan))
    state = {k: v for k, v in shared.state_dict().items() if not k.startswith("transformer.h.")}
    for j, i in enumerate(plan):
        for k, v in shared.transformer.h[i].state_dict().items():
            state[f"transformer.h.{j}.{k}"] = v
    unrolled.load_state_dict(state)
    x, y = batch()
    ls, loss_s = shared(x, y)
    lu, loss_u = unrolled(x, y)
    torch.testing.assert_close(ls, lu, rtol=0, atol=1e-6)
    loss_s.backward()
    loss_u.backward()
    for i, block in enumerate(shared.transformer.h):
        for name_p, p in block.named_parameters():
            expected = sum(dict(unrolled.transformer.h[j].named_parameters())[name_p].grad for j, k in enumerate(plan) if k == i)
            torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(shared.lm_head.weight.grad, unrolled.lm_head.weight.grad, rtol=1e-5, atol=1e-7)


def test_parameter_count_identical_across_signatures():
    counts = {name: tiny_gpt(n_layer=8, **kw) for name, kw in VARIANTS.items()}
    base = counts["baseline"].get_num_params()
    assert all(m.get_num_params() == base for m in counts.values())
    assert counts["baseline"].get_num_extra_params() == 0 and counts["rins_r3"].get_num_extra_params() == 0
    assert counts["latent"].get_num_extra_params() == 2 * 32 * 32  # W: 2d -> d
    assert counts["stoch_adapters"].get_num_extra_params() == 3 * 2 * 32 * 4  # 3 rounds, rank 4, two factors


@pytest.mark.parametrize("r, p", [(4, 0.5), (3, 0.25), (3, 0.75)])
def test_stochastic_rounds_mean(r, p):
    model = tiny_gpt(signature="A^rB", r=r, round_sampler="binomial", stochastic_p=p)
    g = torch.Generator().manual_seed(0)
    draws = [model.recursion.sample_rounds(g) for _ in range(4000)]
    expected = 1 + (r - 1) * (1 - p)
    assert abs(np.mean(draws) - expected) < 4 * np.std(draws) / math.sqrt(len(draws))
    assert min(draws) >= 1 and max(draws) <= r
    probs = model.recursion.round_probs()
    assert math.isclose(sum(probs.values()), 1.0) and math.isclose(sum(k * q for k, q in probs.items()), expected)
    # one generator, one stream: the same seed replays the same depths
    assert draws[:50] == [model.recursion.sample_rounds(g2) for g2 in [torch.Generator().manual_seed(0)] for _ in range(50)]


def test_poisson_rounds_mean_and_cap():
    probs = tiny_gpt(**VARIANTS["latent"]).recursion.round_probs()
    assert max(probs) == 8 and math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)
    assert abs(sum(k * q for k, q in probs.items()) - 2.0) < 0.01  # E[rounds] = r (cap loses almost nothing)


@pytest.mark.parametrize("adapter, rank", [("per_round", 0), ("per_round", 4), ("per_count", 0), ("per_count", 4)])
def test_zero_init_adapters_change_nothing_then_train(adapter, rank):
    x, y = batch()
    plain = tiny_gpt(seed=1, signature="A^rB", r=3)
    adapted = tiny_gpt(seed=1, signature="A^rB", r=3, adapter=adapter, adapter_rank=rank)
    assert torch.equal(plain(x, y)[0], adapted(x, y)[0])
    adapted(x, y)[1].backward()
    ups = [a.up.weight.grad for a in adapted.recursion.adapters]
    used = ups if adapter == "per_round" else ups[-1:]  # per_count at r=3 uses the third matrix only
    assert all(g is not None and g.abs().sum() > 0 for g in used)


def test_adapter_fraction_of_rins_stoch_adapters_config_under_one_percent():
    cfg = exec_config(os.path.join(HERE, "config", "rins_stoch_adapters_small.py"))
    model = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=256, block_size=256, vocab_size=50304,
                          **{k: cfg[k] for k in ("signature", "r", "round_sampler", "stochastic_p", "adapter", "adapter_rank")}))
    non_embedding = sum(p.numel() for p in model.transformer.h.parameters())
    assert 0 < model.get_num_extra_params() / non_embedding < 0.01


def test_truncated_backprop_reaches_only_the_last_rounds():
    """bptt_rounds=1 with 3 rounds of A: rounds 1-2 run without grad, so A's weights get the
    gradient of exactly one application: the same as a model that ran rounds 1-2 detached."""
    x, y = batch()
    cut = tiny_gpt(seed=2, signature="A^rB", r=3, bptt_rounds=1, injection="add")
    states = []
    cut(x, y, states=states)[1].backward()
    assert [s.requires_grad for s in states] == [False, False, True]
    # reference: the same computation with rounds 1-2 explicitly detached
    ref = tiny_gpt(seed=2, signature="A^rB", r=3, injection="add")
    h = ref.transformer
    pos = torch.arange(16)
    e = h.drop(h.wte(x) + h.wpe(pos))
    s = e
    for k in range(3):
        s = s + e
        for i in ref.recursion.unit:
            s = h.h[i](s)
        s = s.detach() if k < 2 else s
    for i in ref.recursion.post:
        s = h.h[i](s)
    logits = ref.lm_head(h.ln_f(s))
    torch.nn.functional.cross_entropy(logits.view(-1, 64), y.view(-1)).backward()
    for a, b in zip(cut.parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-8)


def test_latent_noise_state_is_fresh_each_call_and_injection_keeps_the_input():
    model = tiny_gpt(**VARIANTS["latent"]).eval()
    x, _ = batch()
    a, b = model(x)[0], model(x)[0]
    assert not torch.equal(a, b)  # the first state is redrawn on every forward pass
    assert torch.isfinite(a).all()


# -----------------------------------------------------------------------------
# KV cache and generation


@pytest.mark.parametrize("name", ["baseline", "rins_r2", "rins_r3", "rao", "ab2", "reverse", "degree2", "latent_lite", "per_count"])
def test_cached_generation_equals_recomputation(name):
    """Greedy decoding with one KV cache per application equals recomputing the prefix every step,
    also past block_size (where the window slides and the cache is rebuilt)."""
    model = tiny_gpt(n_layer=8, **VARIANTS[name]).eval()
    prompt = batch(1, B=2, T=5)[0]
    for r in ([None] if name in ("baseline", "reverse") else [1, 2, 3]):
        fast = model.generate(prompt, 20, temperature=0, r=r, use_cache=True)
        slow = model.generate(prompt, 20, temperature=0, r=r, use_cache=False)
        assert torch.equal(fast, slow), f"{name} r={r}"


def test_cache_has_one_entry_per_application():
    model = tiny_gpt(signature="A^rB", r=3).eval()
    caches = [KVCache() for _ in model.plan]
    model(batch()[0][:, :7], caches=caches)
    assert len(caches) == 8 and all(len(c) == 7 for c in caches)
    # round 2 of layer 0 saw round-1 output, not the embeddings: its keys differ from round 1's
    assert not torch.allclose(caches[0].k, caches[2].k)


# -----------------------------------------------------------------------------
# Language-model basics


def test_causality():
    """Changing token t+1 never changes the logits at positions <= t, in any plan."""
    for kw in (VARIANTS["baseline"], VARIANTS["rins_r2"], VARIANTS["rao"]):
        model = tiny_gpt(**kw).eval()
        x, y = batch()
        x2 = x.clone()
        x2[:, 9] = (x2[:, 9] + 1) % 64
        a, b = model(x, y)[0], model(x2, y)[0]
        assert torch.equal(a[:, :9], b[:, :9]) and not torch.equal(a[:, 9:], b[:, 9:])


def test_initial_loss_is_log_vocab():
    model = tiny_gpt(vocab_size=64)
    loss = model(*batch())[1].item()
    assert abs(loss - math.log(64)) < 0.1


@pytest.mark.parametrize("name", ["baseline", "rins_r2", "stoch_adapters", "latent"])
def test_tiny_model_overfits_one_batch(name):
    model = tiny_gpt(**VARIANTS[name])
    x, y = batch()
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.95), "cpu")
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        r = model.recursion.sample_rounds(g) if model.recursion.cfg.round_sampler != "fixed" else None
        loss = model(x, y, r=r)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(x, y)[1].item() < 0.5


# -----------------------------------------------------------------------------
# FLOP counter


def measured_flops_per_token(model, r=None, train=True):
    x, y = batch(T=model.config.block_size)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        if train:
            model(x, y, r=r)[1].backward()
        else:
            with torch.no_grad():
                model(x, y, r=r)
    return counter.get_total_flops() / x.numel()


SIGNATURES = ["AB", "A^rB", "(AB)^r", "AB^r", "AABB", "ABBA", "ABAB", "A^3B", "AAAB", "AB^rC", "A^rBC", "(AB)^rC",
              "A(BC)^r", "blockwise", "reverse"]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_flops_match_flop_counter_for_every_variant(name):
    """Analytic FLOPs from the plan vs torch's FlopCounterMode (math SDPA: full T x T attention)."""
    model = tiny_gpt(n_layer=8, **VARIANTS[name])
    for r in ([None] if not model.recursion.recursive else [1, 2, 3]):
        for train in (True, False):  # the measured forward has targets, so logits at every position
            predicted = model.flops_per_token(train=train, r=r)
            measured = measured_flops_per_token(model, r, train)
            assert abs(measured / predicted - 1) < 0.01, (name, r, train, measured, predicted)


@pytest.mark.parametrize("signature", SIGNATURES)
def test_flops_match_flop_counter_for_more_signatures(signature):
    n_layer = 12 if signature in ("AB^rC", "A^rBC", "(AB)^rC", "A(BC)^r") else 8
    model = tiny_gpt(n_layer=n_layer, signature=signature, r=2 if "^r" in signature else 1)
    assert abs(measured_flops_per_token(model) / model.flops_per_token() - 1) < 0.01


def test_no_grad_rounds_cost_a_third_in_linear_layers():
    """A round under truncated backprop costs its forward only: 1/3 of a trained round."""
    full = tiny_gpt(signature="A^rB", r=3)
    cut = tiny_gpt(signature="A^rB", r=3, bptt_rounds=1)
    d_round = full.flops_per_token(r=3) - full.flops_per_token(r=2)
    d_round_cut = cut.flops_per_token(r=3) - cut.flops_per_token(r=2)
    assert math.isclose(d_round_cut, d_round / 3)
    assert abs(measured_flops_per_token(cut, r=3) / cut.flops_per_token(r=3) - 1) < 0.01


def test_expected_flops_under_sampled_rounds():
    model = tiny_gpt(**VARIANTS["stoch"])
    expected = sum(p * model.flops_per_token(r=k) for k, p in model.recursion.round_probs().items())
    assert math.isclose(model.flops_per_token(), expected)
    assert model.flops_per_token(r=1) < model.flops_per_token() < model.flops_per_token(r=3)
