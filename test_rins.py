"""
The executable specification of nanoRINS: what the paper says, checked on tiny models on the CPU.
Plans, r=1 is the baseline, shared weights equal an unrolled copy, FLOPs equal FlopCounterMode, the KV cache
equals recomputation, adapters, sampled rounds, the vision invariants, and compute-matched runs.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest test_rins.py -v     (or: make test, for every file)
"""

import glob
import math
import os

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from conftest import (HERE, batch, caption_batch, exec_config, image_batch, read_log, tiny_gpt, tiny_siglip, tiny_vit,
                      train)
from model import GPT, GPTConfig, RoundExtras, parse_signature
from vision import CAPTION_LEN

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
    "latent": dict(signature="AB^rC", partition="1:2:1", r=2, round_sampler="poisson", injection="concat",
                   state_init="noise", bptt_rounds=2),
    "latent_lite": dict(signature="AB^rC", partition="1:2:1", r=2, injection="add"),
    "stoch": dict(signature="A^rB", r=3, round_sampler="binomial", stochastic_p=0.5),
    "stoch_adapters": dict(signature="A^rB", r=3, round_sampler="binomial", adapter="per_round", adapter_rank=4),
    "per_count": dict(signature="A^rB", r=3, adapter="per_count"),
}

# the ViT is RINS's negative control: the same invariants must hold there
VIT_VARIANTS = {
    "baseline": dict(signature="AB"),
    "rins_r2": dict(signature="A^rB", r=2),
    "rao": dict(signature="(AB)^r", r=2),
    "stoch_adapters": dict(signature="A^rB", r=3, round_sampler="binomial", adapter="per_round", adapter_rank=4),
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
    """The worked plans for L = 8 layers (A = 0-3, B = 4-7)."""
    assert tiny_gpt(n_layer=8, signature=signature, **kw).plan.layers() == plan


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
    (dict(signature="A^rB", state_init="noise"), "need injection"),
    (dict(signature="A^rB", state_norm=True), "need injection"),
    (dict(signature="AB", state_norm=True), "no '^r' unit"),
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
    plan = shared.plan.layers()
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
            expected = sum(dict(unrolled.transformer.h[j].named_parameters())[name_p].grad
                           for j, k in enumerate(plan) if k == i)
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
    draws = [model.plan.sample_r(g) for _ in range(4000)]
    expected = 1 + (r - 1) * (1 - p)
    assert abs(np.mean(draws) - expected) < 4 * np.std(draws) / math.sqrt(len(draws))
    assert min(draws) >= 1 and max(draws) <= r
    probs = model.plan.round_probs
    assert math.isclose(sum(probs.values()), 1.0) and math.isclose(sum(k * q for k, q in probs.items()), expected)
    # one generator, one stream: the same seed replays the same depths
    assert draws[:50] == [model.plan.sample_r(g2) for g2 in [torch.Generator().manual_seed(0)] for _ in range(50)]


def test_poisson_rounds_mean_and_cap():
    probs = tiny_gpt(**VARIANTS["latent"]).plan.round_probs
    assert max(probs) == 8 and math.isclose(sum(probs.values()), 1.0, rel_tol=1e-9)
    assert abs(sum(k * q for k, q in probs.items()) - 2.0) < 0.01  # E[rounds] = r (cap loses almost nothing)


@pytest.mark.parametrize("adapter, rank", [("per_round", 0), ("per_round", 4), ("per_count", 0), ("per_count", 4)])
def test_zero_init_adapters_change_nothing_then_train(adapter, rank):
    x, y = batch()
    plain = tiny_gpt(seed=1, signature="A^rB", r=3)
    adapted = tiny_gpt(seed=1, signature="A^rB", r=3, adapter=adapter, adapter_rank=rank)
    assert torch.equal(plain(x, y)[0], adapted(x, y)[0])
    adapted(x, y)[1].backward()
    ups = [a.up.weight.grad for a in adapted.extras.adapters]
    used = ups if adapter == "per_round" else ups[-1:]  # per_count at r=3 uses the third matrix only
    assert all(g is not None and g.abs().sum() > 0 for g in used)


def test_adapter_fraction_of_rins_stoch_adapters_config_under_one_percent():
    cfg = exec_config(os.path.join(HERE, "config", "rins_stoch_adapters_small.py"))
    model = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=256, block_size=256, vocab_size=50304,
                          **{k: cfg[k] for k in ("signature", "r", "round_sampler", "stochastic_p", "adapter",
                                                 "adapter_rank")}))
    non_embedding = sum(p.numel() for p in model.transformer.h.parameters())
    assert 0 < model.get_num_extra_params() / non_embedding < 0.01


def test_truncated_backprop_reaches_only_the_last_rounds():
    """bptt_rounds=1 with 3 rounds of A: rounds 1-2 run without grad, so A's weights get the
    gradient of exactly one application: the same as a model that ran rounds 1-2 detached."""
    x, y = batch()
    cut = tiny_gpt(seed=2, signature="A^rB", r=3, bptt_rounds=1, injection="add")
    states = []
    cut(x, y, states=states)[1].backward()
    assert [s.requires_grad for s in states] == [False] * 4 + [True] * 4  # A A | A A | A A | B B: one per application
    # reference: the same computation with rounds 1-2 explicitly detached
    ref = tiny_gpt(seed=2, signature="A^rB", r=3, injection="add")
    h = ref.transformer
    pos = torch.arange(16)
    e = h.drop(h.wte(x) + h.wpe(pos))
    s = e
    for k in range(3):
        s = s + e
        for i in ref.plan.unit:
            s = h.h[i](s)
        s = s.detach() if k < 2 else s
    for i in ref.plan.coda:
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


def test_state_norm_makes_injection_blind_to_the_state_scale():
    """state_norm normalises the state before it is injected: scaling the state leaves a round's input unchanged,
    which it does not without the norm."""
    for injection in ("add", "concat"):
        kw = dict(signature="AB^rC", partition="1:2:1", r=2, injection=injection)
        normed, plain = (RoundExtras(GPTConfig(n_embd=32, **kw, state_norm=norm), 3) for norm in (True, False))
        s, e = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
        torch.testing.assert_close(normed.before_round(7 * s, e), normed.before_round(s, e), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(plain.before_round(7 * s, e), plain.before_round(s, e))


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
        r = model.plan.sample_r(g) if model.plan.sampled else None
        loss = model(x, y, r=r)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(x, y)[1].item() < 0.5


# -----------------------------------------------------------------------------
# KV cache and generation


@pytest.mark.parametrize("name", ["baseline", "rins_r2", "rins_r3", "rao", "ab2", "reverse", "degree2", "latent_lite",
                                  "per_count"])
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
    caches = model.new_caches()
    model(batch()[0][:, :7], caches=caches)
    assert len(caches) == 8 and all(len(c) == 7 for c in caches)
    # round 2 of layer 0 saw round-1 output, not the embeddings: its keys differ from round 1's
    assert not torch.allclose(caches[0].k, caches[2].k)


def logits_token_by_token(model, x, r=None, kv_share="none"):
    caches = model.new_caches(r, kv_share)
    return torch.cat([model(x[:, [t]], r=r, caches=caches)[0] for t in range(x.size(1))], dim=1), caches


@pytest.mark.parametrize("name", ["baseline", "reverse", "rins_r2", "rao", "ab2", "degree2", "latent_lite",
                                  "per_count"])
def test_kv_share_changes_only_later_rounds(name):
    """kv_share='none' token by token equals recomputation. 'first'/'last' equal it where no round repeats
    (r=1, plans without '^r'), and differ from it at r >= 2 except on the first token, which has no past."""
    model = tiny_gpt(n_layer=8, **VARIANTS[name]).eval()
    x = batch(2, B=2, T=9)[0]
    for r in ([None] if not model.plan.recursive else [1, 2, 3]):
        none, _ = logits_token_by_token(model, x, r)
        torch.testing.assert_close(none, model(x, x, r=r)[0], rtol=0, atol=1e-5)
        for kv_share in ("first", "last"):
            shared, _ = logits_token_by_token(model, x, r, kv_share)
            tokens = model.generate(x[:, :3], 6, temperature=0, r=r, kv_share=kv_share)
            if r in (None, 1):
                assert torch.equal(shared, none)
                assert torch.equal(tokens, model.generate(x[:, :3], 6, temperature=0, r=r))
            else:
                assert torch.equal(shared[:, 0], none[:, 0]), kv_share  # the first token has no past to share
                assert not torch.allclose(shared[:, 1:], none[:, 1:]), kv_share


def test_kv_share_first_keeps_round_one_and_stores_one_round():
    """With 'first' the prelude and round 1 run exactly as without sharing, and rounds 2.. store nothing."""
    model = tiny_gpt(n_layer=8, signature="AB^rC", partition="1:2:1", r=3).eval()  # A = 0 1, unit = 2 3 4 5, C = 6 7
    x = batch(3, B=2, T=6)[0]
    _, none = logits_token_by_token(model, x)
    _, first = logits_token_by_token(model, x, kv_share="first")
    for step in range(2 + 4):  # the prelude's and round 1's applications
        assert torch.equal(first[step].k, none[step].k) and torch.equal(first[step].v, none[step].v)
    assert [c.owner is not None for c in first] == [False] * 6 + [True] * 8 + [False] * 2
    assert all(len(c) == 6 for c in first)
    assert all(c.k is None for c in first[6:14]) and first[6].owner is first[2]  # round 2 reads round 1's first block


def test_kv_cache_bytes_per_token():
    """A^rB, r=2, 8 layers: 12 applications store keys and values without sharing, 8 with 'first' or 'last'."""
    model = tiny_gpt(n_layer=8, signature="A^rB", r=2).eval()
    per_application = 2 * 32 * 4  # k and v, n_embd floats of 4 bytes
    x = batch(4, B=2, T=5)[0]
    for kv_share, applications in (("none", 12), ("first", 8), ("last", 8)):
        assert model.kv_cache_bytes_per_token(kv_share) == applications * per_application
        _, caches = logits_token_by_token(model, x, kv_share=kv_share)
        stored = sum(c.k.nbytes + c.v.nbytes for c in caches if c.owner is None)
        assert stored == model.kv_cache_bytes_per_token(kv_share) * x.numel()
    assert tiny_gpt(n_layer=8).kv_cache_bytes_per_token("first") == 8 * per_application  # nothing to share
    with torch.autocast("cpu", dtype=torch.bfloat16):  # keys and values come out of autocast's linears in bf16
        _, caches = logits_token_by_token(model, x)
    stored = sum(c.k.nbytes + c.v.nbytes for c in caches)
    assert stored == model.kv_cache_bytes_per_token(dtype=torch.bfloat16) * x.numel() == 12 * per_application // 2 * 10


def test_kv_share_errors_are_one_line():
    model = tiny_gpt(signature="A^rB", r=2).eval()
    x = batch()[0]
    cases = [(lambda: model.new_caches(kv_share="middle"), "is not one of none, first, last"),
             (lambda: model(x[:, :3], caches=model.new_caches(kv_share="first")), "one token per call"),
             (lambda: model.generate(x[:, :3], 2, kv_share="last", use_cache=False), "needs use_cache=True")]
    for call, fragment in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert fragment in str(err.value) and "\n" not in str(err.value)


# -----------------------------------------------------------------------------
# FLOP counter


def measured_flops(model, args, r=None, train=True):
    """FlopCounterMode under the math SDPA kernel (full attention products, as the analytic count assumes)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        if train:
            model(*args, r=r)[1].backward()
        else:
            with torch.no_grad():
                model(*args, r=r)
    return counter.get_total_flops()


def measured_flops_per_token(model, r=None, train=True):
    x, y = batch(T=model.config.block_size)
    return measured_flops(model, (x, y), r, train) / x.numel()


SIGNATURES = ["AB", "A^rB", "(AB)^r", "AB^r", "AABB", "ABBA", "ABAB", "A^3B", "AAAB", "AB^rC", "A^rBC", "(AB)^rC",
              "A(BC)^r", "blockwise", "reverse"]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_flops_match_flop_counter_for_every_variant(name):
    """Analytic FLOPs from the plan vs torch's FlopCounterMode (math SDPA: full T x T attention)."""
    model = tiny_gpt(n_layer=8, **VARIANTS[name])
    for r in ([None] if not model.plan.recursive else [1, 2, 3]):
        for training in (True, False):  # the measured forward has targets, so logits at every position
            predicted = model.flops_per_token(train=training, r=r)
            measured = measured_flops_per_token(model, r, training)
            assert abs(measured / predicted - 1) < 0.01, (name, r, training, measured, predicted)


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
    expected = sum(p * model.flops_per_token(r=k) for k, p in model.plan.round_probs.items())
    assert math.isclose(model.flops_per_token(), expected)
    assert model.flops_per_token(r=1) < model.flops_per_token() < model.flops_per_token(r=3)


def test_every_config_file_counts_its_flops_exactly():
    """Each config/*_small.py builds, and its analytic FLOPs match FlopCounterMode (shrunk in width)."""
    recursion_keys = ("signature", "r", "degree", "partition", "round_sampler", "stochastic_p", "bptt_rounds",
                      "injection", "state_init", "state_norm", "adapter", "adapter_rank")
    paths = sorted(glob.glob(os.path.join(HERE, "config", "*_small.py")))
    assert len(paths) >= 10
    for path in paths:
        cfg = exec_config(path)
        model = tiny_gpt(n_layer=8, **{k: cfg[k] for k in recursion_keys if k in cfg})
        rounds = sorted(model.plan.round_probs)[:3] if model.plan.sampled else [None]
        for r in rounds:
            assert abs(measured_flops_per_token(model, r) / model.flops_per_token(r=r) - 1) < 0.01, path


# -----------------------------------------------------------------------------
# Vision: the ViT (RINS's negative control) and the two-tower SigLIP keep the same invariants


def test_vit_r1_is_the_baseline_bit_for_bit():
    _, labels, x = image_batch()
    y = torch.from_numpy(labels)
    base, rins = tiny_vit(seed=3), tiny_vit(seed=3, signature="A^rB", r=1)
    for a, b in zip(base.state_dict().values(), rins.state_dict().values()):
        assert torch.equal(a, b)
    (lb, loss_b), (lr, loss_r) = base(x, y), rins(x, y)
    assert torch.equal(lb, lr) and torch.equal(loss_b, loss_r)


@pytest.mark.parametrize("name", ["rins_r2", "rao"])
def test_vit_shared_plan_equals_unrolled_copy(name):
    """Shared blocks along the plan equal a plain ViT whose j-th block is a copy of block plan[j]."""
    shared = tiny_vit(**VIT_VARIANTS[name])
    plan = shared.plan.layers()
    unrolled = tiny_vit(n_layer=len(plan))
    state = {k: v for k, v in shared.state_dict().items() if not k.startswith("h.")}
    for j, i in enumerate(plan):
        state |= {f"h.{j}.{k}": v for k, v in shared.h[i].state_dict().items()}
    unrolled.load_state_dict(state)
    _, labels, x = image_batch()
    (ls, loss_s), (lu, loss_u) = shared(x, torch.from_numpy(labels)), unrolled(x, torch.from_numpy(labels))
    torch.testing.assert_close(ls, lu, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss_s, loss_u, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(VIT_VARIANTS))
def test_vit_flops_match_flop_counter(name):
    model = tiny_vit(**VIT_VARIANTS[name])
    _, labels, x = image_batch()
    for r in ([None] if not model.plan.recursive else [1, 2, 3]):
        for training in (True, False):
            measured = measured_flops(model, (x, torch.from_numpy(labels)), r, training) / (3 * model.n_patches)
            predicted = model.flops_per_token(train=training, r=r)
            assert abs(measured / predicted - 1) < 0.01, (name, r, training, measured, predicted)


def test_siglip_flops_match_flop_counter():
    """Both towers per pair, recursion in either or both; the uncounted n x n similarity matrix stays under 1% here."""
    x, tokens = caption_batch()
    for tower in ("image", "text", "both"):
        model = tiny_siglip(signature="A^rB", r=2, rins_tower=tower)
        for training in (True, False):
            measured = measured_flops(model, (x, tokens), None, training) / (3 * (model.image.n_patches + CAPTION_LEN))
            predicted = model.flops_per_token(train=training)
            assert abs(measured / predicted - 1) < 0.01, (tower, training, measured, predicted)
        assert model.flops_per_token(r=1) == tiny_siglip().flops_per_token()  # r=1: the baseline's cost


# -----------------------------------------------------------------------------
# Compute-matched training (train.py on the tiny char dataset)


def test_compute_matched_runs_land_within_one_percent_of_budget(char_data, tmp_path):
    """Same budget, different plans: each derives its own length; all land within 1% of the budget
    and of each other, and the recursive arms see fewer tokens."""
    budget = 3e9
    arms = {"base": [], "rins": ["--signature=A^rB", "--r=2"], "rins3": ["--signature=A^rB", "--r=3"],
            "rao": ["--signature=(AB)^r", "--r=2"],
            "latent": ["--signature=AB^rC", "--partition=1:2:1", "--r=2", "--injection=add"]}
    done = {}
    for name, args in arms.items():
        train(char_data, tmp_path / name, f"--flop_budget={budget}", *args)
        log = read_log(tmp_path / name)
        done[name] = log[-1]
        assert log[0]["event"] == "start" and log[-1]["event"] == "done" and log[-1]["iter"] == log[0]["max_iters"]
        assert abs(done[name]["flops"] / budget - 1) < 0.01, (name, done[name]["flops"])
        assert log[-1]["lr"] == pytest.approx(3e-4)  # its own schedule annealed to min_lr at its own last step
    flops = [d["flops"] for d in done.values()]
    assert max(flops) / min(flops) - 1 < 0.01
    assert done["base"]["tokens"] > done["rins"]["tokens"] > done["rins3"]["tokens"]
    assert done["rins3"]["tokens"] == pytest.approx(done["rao"]["tokens"], rel=0.01)  # both run 2x the blocks
    assert "val_loss_r" in done["rins"] and "val_loss_r" not in done["base"]
