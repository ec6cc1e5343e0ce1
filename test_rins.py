"""
The executable specification of nanoRINS: what the paper says, checked on tiny models on the CPU.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest test_rins.py -v     (or: make test)
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import compare
from checkpoint import load_checkpoint, load_model_state
from model import GPT, GPTConfig, ViT, ViTConfig, parse_signature
from siglip import SigLIP, SigLIPConfig, sigmoid_loss
from vision import (CAPTION_LEN, CAPTION_VOCAB, CLASS_NAMES, FASHION_CLASSES, HELDOUT_TEMPLATES, TRAIN_TEMPLATES,
                    captions, encode_captions, zero_shot_prompts)

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
    for i in ref.plan.post:
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
        r = model.plan.sample_r(g) if model.plan.sampled else None
        loss = model(x, y, r=r)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(x, y)[1].item() < 0.5


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
    expected = sum(p * model.flops_per_token(r=k) for k, p in model.plan.round_probs.items())
    assert math.isclose(model.flops_per_token(), expected)
    assert model.flops_per_token(r=1) < model.flops_per_token() < model.flops_per_token(r=3)


def test_every_config_file_counts_its_flops_exactly():
    """Each config/*_small.py builds, and its analytic FLOPs match FlopCounterMode (shrunk in width)."""
    import glob
    recursion_keys = ("signature", "r", "degree", "partition", "round_sampler", "stochastic_p", "bptt_rounds",
                      "injection", "state_init", "adapter", "adapter_rank")
    paths = sorted(glob.glob(os.path.join(HERE, "config", "*_small.py")))
    assert len(paths) >= 10
    for path in paths:
        cfg = exec_config(path)
        model = tiny_gpt(n_layer=8, **{k: cfg[k] for k in recursion_keys if k in cfg})
        rounds = sorted(model.plan.round_probs)[:3] if model.plan.sampled else [None]
        for r in rounds:
            assert abs(measured_flops_per_token(model, r) / model.flops_per_token(r=r) - 1) < 0.01, path


# -----------------------------------------------------------------------------
# Configuration

def test_configurator_overrides_and_errors(tmp_path):
    from configurator import configure
    defaults = {"n_layer": 8, "learning_rate": 1e-3, "signature": "AB", "compile": False, "eval_r": [1]}
    cfg_file = tmp_path / "c.py"
    cfg_file.write_text("# a config\nn_layer = 4\nsignature = 'A^rB'\n")
    changed = configure(defaults, [str(cfg_file), "--learning_rate=1", "--eval_r=[1,2,3]", "--compile=True"], "train.py")
    assert defaults == {"n_layer": 4, "learning_rate": 1.0, "signature": "A^rB", "compile": True, "eval_r": [1, 2, 3]}
    assert set(changed) == {"n_layer", "signature", "learning_rate", "eval_r", "compile"}
    assert configure(defaults, ["--signature=(AB)^r"], "train.py") == {"signature": "(AB)^r"}
    bad = [(["--n_layers=4"], "unknown config key 'n_layers'"), (["--n_layer=4.5"], "must be of type int"),
           (["--compile=yes"], "must be of type bool"), (["--n_layer"], "--key=value"), (["missing.py"], "cannot read config file"),
           ([str(tmp_path / "typo.py")], "unknown config key 'n_layr'"), ([str(tmp_path / "syntax.py")], "line 1")]
    (tmp_path / "typo.py").write_text("n_layr = 4\n")
    (tmp_path / "syntax.py").write_text("n_layer = = 4\n")
    for argv, fragment in bad:
        with pytest.raises(SystemExit) as err:
            configure(dict(defaults), argv, "train.py")
        assert fragment in str(err.value) and "\n" not in str(err.value), (argv, str(err.value))
    with pytest.raises(SystemExit, match="allowed keys: compile, eval_r, learning_rate, n_layer, signature"):
        configure(dict(defaults), ["--nope=1"], "train.py")


# -----------------------------------------------------------------------------
# Training end to end (train.py as users run it, on a tiny char dataset)

TINY_TRAIN = ["--n_layer=4", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=4", "--eval_iters=2",
              "--eval_interval=50", "--log_interval=50", "--warmup_iters=5", "--learning_rate=3e-3", "--min_lr=3e-4"]


@pytest.fixture(scope="module")
def char_data(tmp_path_factory):
    """data/tiny: model.py as characters, 90/10 split, as prepare.py writes a char dataset."""
    root = tmp_path_factory.mktemp("data")
    text = open(os.path.join(HERE, "model.py")).read()
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text], dtype=np.uint16)
    os.makedirs(root / "tiny")
    ids[:int(0.9 * len(ids))].tofile(root / "tiny" / "train.bin")
    ids[int(0.9 * len(ids)):].tofile(root / "tiny" / "val.bin")
    (root / "tiny" / "meta.json").write_text(json.dumps({"name": "tiny", "tokenizer": "char", "vocab_size": len(chars),
                                                         "chars": "".join(chars)}))
    return root


def train(data_dir, out_dir, *args, check=True):
    cmd = [sys.executable, "train.py", f"--data_dir={data_dir}", "--dataset=tiny", f"--out_dir={out_dir}", *TINY_TRAIN, *args]
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def read_log(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_compute_matched_runs_land_within_one_percent_of_budget(char_data, tmp_path):
    """Same budget, different plans: each derives its own length; all land within 1% of the budget
    and of each other, and the recursive arms see fewer tokens."""
    budget = 3e9
    arms = {"base": [], "rins": ["--signature=A^rB", "--r=2"], "rins3": ["--signature=A^rB", "--r=3"],
            "rao": ["--signature=(AB)^r", "--r=2"], "latent": ["--signature=AB^rC", "--partition=1:2:1", "--r=2", "--injection=add"]}
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


def test_seeded_runs_are_bitwise_reproducible_and_resume_continues(char_data, tmp_path):
    args = ["--flop_budget=0", "--max_iters=30", "--eval_interval=10", "--signature=A^rB", "--r=3",
            "--round_sampler=binomial", "--dropout=0.1", "--eval_r=[1,2,3]"]
    train(char_data, tmp_path / "a", *args)
    train(char_data, tmp_path / "b", *args)
    keys = ("iter", "tokens", "flops", "train_loss", "val_loss", "val_loss_r")
    a, b = ([{k: rec.get(k) for k in keys} for rec in read_log(tmp_path / d)[1:]] for d in "ab")
    assert a == b and len(a) == 4
    # resume: a run stopped at iteration 30 goes on to 40 from its checkpoint
    train(char_data, tmp_path / "a", *args[:1], "--max_iters=40", *args[2:], "--init_from=resume")
    log = read_log(tmp_path / "a")
    starts = [rec for rec in log if rec["event"] == "start"]
    assert starts[-1]["resumed_from"] == 30 and log[-1]["iter"] == 40 and log[-1]["event"] == "done"
    assert [rec["iter"] for rec in log if rec["event"] != "start"] == [0, 10, 20, 30, 40]


def test_checkpoint_roundtrip_gives_identical_logits(tmp_path):
    from checkpoint import load_checkpoint, load_model_state, save_checkpoint
    model = tiny_gpt(signature="A^rB", r=2, adapter="per_round", adapter_rank=2)
    with torch.no_grad():
        for p in model.extras.parameters():
            p.normal_()  # make the adapters matter
    save_checkpoint({"model": model.state_dict(), "model_args": model.config.__dict__, "iter_num": 7}, str(tmp_path / "ckpt.pt"))
    ckpt = load_checkpoint(str(tmp_path / "ckpt.pt"))
    clone = GPT(GPTConfig(**ckpt["model_args"]))
    load_model_state(clone, ckpt["model"], "ckpt.pt")
    x, y = batch()
    assert torch.equal(model(x, y)[0], clone(x, y)[0]) and ckpt["iter_num"] == 7
    assert not [p for p in os.listdir(tmp_path) if p != "ckpt.pt"]  # no temporary file left behind


def test_sample_at_several_depths(char_data, tmp_path):
    train(char_data, tmp_path, "--flop_budget=0", "--max_iters=20", "--signature=A^rB", "--r=2")
    for r in ("0", "1", "3"):
        proc = subprocess.run([sys.executable, "sample.py", f"--out_dir={tmp_path}", f"--r={r}", "--num_samples=1",
                               "--max_new_tokens=30", "--start=def "], cwd=HERE, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "def " in proc.stdout and f"r={r if r != '0' else 2}" in proc.stdout


@pytest.mark.parametrize("path", sorted(p for p in os.listdir(os.path.join(HERE, "config")) if p.endswith("_small.py") or p.startswith("shakespeare")))
def test_every_config_trains_a_few_iterations(char_data, tmp_path, path):
    """python train.py config/X.py works for every LM config (shrunk to the tiny data and width)."""
    proc = train(char_data, tmp_path, f"config/{path}", *TINY_TRAIN, "--flop_budget=0", "--max_iters=3",
                 "--data_dir=" + str(char_data), "--dataset=tiny", f"--out_dir={tmp_path}")
    log = read_log(tmp_path)
    assert log[-1]["event"] == "done" and math.isfinite(log[-1]["val_loss"]), proc.stdout[-1000:]


# -----------------------------------------------------------------------------
# Reliability: checkpoints survive SIGKILL, resume is bit-exact, every user mistake is one clear line,
# divergence stops cleanly, torchrun on CPU matches one process. Real scripts run as subprocesses.

ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}  # one thread each: runs go side by side
CHARS = "\n abcdefghijklmn"  # 16 symbols; "\n" is sample.py's default prompt
TINY_CLI = ["--n_layer=2", "--n_embd=16", "--n_head=2", "--block_size=8", "--batch_size=2", "--eval_iters=1",
        "--flop_budget=0", "--max_iters=2"]
RESUME_KEYS = ("optimizer", "flops", "best_val_loss", "rng")

# Runs train.py in-process with a hook, so a test can SIGKILL it at an exact point or watch what it does.
#   HARNESS_MODE=die_after_save  HARNESS_N=k : SIGKILL right after the k-th checkpoint is on disk
#   HARNESS_MODE=die_in_save     HARNESS_N=k HARNESS_FRAC=f : write fraction f of the (k+1)-th checkpoint, then SIGKILL
#   HARNESS_MODE=record : write the drawn training rounds and the checkpoint saves to $HARNESS_OUT/rank<R>.json
HARNESS = r'''
import atexit, io, json, os, runpy, signal, sys
sys.path.insert(0, os.environ["REPO"])
import torch, checkpoint, model
mode, n = os.environ["HARNESS_MODE"], int(os.environ.get("HARNESS_N", "0"))
saves, rounds = [], []
real_save_checkpoint, real_torch_save, real_sample_rounds = checkpoint.save_checkpoint, torch.save, model.Plan.sample_r

def save_checkpoint(obj, path):
    real_save_checkpoint(obj, path)
    saves.append(obj["iter_num"])
    if mode == "die_after_save" and len(saves) == n:
        os.kill(os.getpid(), signal.SIGKILL)

def torch_save(obj, f, *args, **kw):
    if mode == "die_in_save" and len(saves) == n:
        buf = io.BytesIO()
        real_torch_save(obj, buf)
        data = buf.getvalue()
        f.write(data[:int(len(data) * float(os.environ["HARNESS_FRAC"]))])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_torch_save(obj, f, *args, **kw)

def sample_rounds(self, generator):
    rounds.append(real_sample_rounds(self, generator))
    return rounds[-1]

@atexit.register
def report():
    if mode == "record":
        with open(os.path.join(os.environ["HARNESS_OUT"], f"rank{os.environ.get('RANK', '0')}.json"), "w") as f:
            json.dump({"rounds": rounds, "saves": saves}, f)

checkpoint.save_checkpoint, torch.save, model.Plan.sample_r = save_checkpoint, torch_save, sample_rounds
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def write_dataset(root, name="tiny", n_train=4000, n_val=1000, meta=None):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    rng.integers(0, len(CHARS), n_train).astype(np.uint16).tofile(os.path.join(d, "train.bin"))
    rng.integers(0, len(CHARS), n_val).astype(np.uint16).tofile(os.path.join(d, "val.bin"))
    meta = {"name": name, "tokenizer": "char", "vocab_size": len(CHARS), "chars": CHARS} if meta is None else meta
    with open(os.path.join(d, "meta.json"), "w") as f:
        f.write(meta if isinstance(meta, str) else json.dumps(meta))
    return d


def data_args(root, name="tiny"):
    return [f"--data_dir={root}", f"--dataset={name}"]


def run(script, *args, env=None, timeout=120):
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=HERE, capture_output=True, text=True,
                          env=env or ENV, timeout=timeout)


def harness(tmp, script, *args, **hook):
    """Run a script under HARNESS with the hook's settings (see HARNESS)."""
    path = os.path.join(tmp, "harness.py")
    with open(path, "w") as f:
        f.write(HARNESS)
    env = ENV | {"REPO": HERE} | {f"HARNESS_{k.upper()}": str(v) for k, v in hook.items()}
    return subprocess.run([sys.executable, path, script, *map(str, args)], cwd=HERE, capture_output=True, text=True,
                          env=env, timeout=120)


def read_log_by_iter(out_dir):
    """log.jsonl -> (start lines, {iter: eval line}); a resume re-logs some iters, the last one wins (as compare.py)."""
    starts, evals = [], {}
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a run killed mid-write can leave a partial last line
            if rec["event"] == "start":
                starts.append(rec)
            else:
                evals[rec["iter"]] = rec
    return starts, evals


METRICS = ("tokens", "flops", "lr", "train_loss", "val_loss", "val_loss_r")


def metrics(evals):
    return {it: {k: rec.get(k) for k in METRICS} for it, rec in sorted(evals.items())}


def tmp_files(out_dir):
    return [f for f in os.listdir(out_dir) if ".tmp" in f]


def check_complete(path):
    """The checkpoint loads with weights_only, rebuilds its model and holds everything a resume needs."""
    ckpt = load_checkpoint(path, need=RESUME_KEYS)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    load_model_state(model, ckpt["model"], path)
    assert len(ckpt["optimizer"]["state"]) == (len(list(model.parameters())) if ckpt["iter_num"] else 0)
    return ckpt


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data"))
    write_dataset(root)
    return root


# -----------------------------------------------------------------------------
# 1. Atomic checkpoints


@pytest.mark.parametrize("frac", [0.0, 0.5, 1.0])
def test_sigkill_inside_torch_save_keeps_the_previous_checkpoint(tmp_path, data, frac):
    """SIGKILL while the 3rd checkpoint (iter 2) is being written: nothing, half, or all of its bytes
    are out but not yet renamed. ckpt.pt is still the complete iter-1 checkpoint and one stray
    tmp file is left (the next test resumes next to such strays)."""
    out = tmp_path / "out"
    args = [*TINY_CLI[:-1], "--max_iters=4", "--eval_interval=1", *data_args(data), f"--out_dir={out}"]
    p = harness(tmp_path, "train.py", *args, mode="die_in_save", n=2, frac=frac)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert check_complete(str(out / "ckpt.pt"))["iter_num"] == 1
    assert len(tmp_files(out)) == 1


def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint(tmp_path, data):
    """A model big enough that saving (~10 MB, fsync'd at every iteration) is most of the time,
    killed at random moments and resumed each time: ckpt.pt is always a complete checkpoint of a
    logged eval, never older than the one before, and each kill leaves at most one tmp file."""
    out = tmp_path / "out"
    args = ["--n_layer=4", "--n_embd=128", "--n_head=4", "--block_size=8", "--batch_size=2", "--eval_iters=1",
            "--flop_budget=0", "--max_iters=100000", "--eval_interval=1", *data_args(data), f"--out_dir={out}"]
    rng, last_iter = random.Random(0), -1
    for kill in range(4):
        ckpt = out / "ckpt.pt"
        before = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        p = subprocess.Popen([sys.executable, "train.py", *args] + (["--init_from=resume"] if kill else []), cwd=HERE,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not (ckpt.exists() and ckpt.stat().st_mtime_ns != before):  # this process has saved once
            assert p.poll() is None and time.time() < deadline, p.stderr.read() if p.poll() is not None else "timeout"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait()
        state = check_complete(str(ckpt))
        assert state["iter_num"] in read_log_by_iter(out)[1] and state["iter_num"] > last_iter
        assert len(tmp_files(out)) <= kill + 1
        last_iter = state["iter_num"]


# -----------------------------------------------------------------------------
# 2. Bit-exact resume


RESUME_CONFIGS = {
    # stochastic depth + dropout + gradient accumulation: data, rounds and dropout RNGs must all resume
    "stoch_dropout_accum": ["--signature=A^rB", "--r=3", "--round_sampler=binomial", "--dropout=0.1",
                            "--gradient_accumulation_steps=2", "--eval_r=[1,2]"],
    # latent recurrence: a noise first state drawn from the global RNG, also during eval
    "latent_noise": ["--n_layer=4", "--signature=AB^rC", "--partition=1:2:1", "--r=2", "--round_sampler=poisson",
                     "--injection=concat", "--state_init=noise", "--bptt_rounds=2", "--dropout=0.1"],
}


@pytest.mark.parametrize("name", list(RESUME_CONFIGS))
def test_interrupted_run_resumes_bit_for_bit(tmp_path, data, name):
    """One run straight through vs the same run SIGKILLed right after its 2nd checkpoint (iter 2),
    resumed, SIGKILLed again after the 2nd checkpoint of the resumed process (iter 6), resumed to
    the end: identical log.jsonl metrics and identical final weights and optimizer state."""
    base = [*TINY_CLI[:-1], "--max_iters=8", "--eval_interval=2", "--eval_iters=2", *data_args(data), *RESUME_CONFIGS[name]]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    with ThreadPoolExecutor(2) as pool:
        straight = pool.submit(run, "train.py", *base, f"--out_dir={whole}")
        p = harness(tmp_path, "train.py", *base, f"--out_dir={parts}", mode="die_after_save", n=2)
        assert p.returncode == -signal.SIGKILL, p.stderr
        assert load_checkpoint(str(parts / "ckpt.pt"))["iter_num"] == 2
        p = harness(tmp_path, "train.py", *base, f"--out_dir={parts}", "--init_from=resume", mode="die_after_save", n=2)
        assert p.returncode == -signal.SIGKILL, p.stderr
        assert load_checkpoint(str(parts / "ckpt.pt"))["iter_num"] == 6
        p = run("train.py", *base, f"--out_dir={parts}", "--init_from=resume")
        assert p.returncode == 0, p.stderr
        assert straight.result().returncode == 0, straight.result().stderr
    starts, evals = read_log_by_iter(parts)
    assert [s["resumed_from"] for s in starts] == [None, 2, 6]
    expected = metrics(read_log_by_iter(whole)[1])
    assert list(expected) == [0, 2, 4, 6, 8] and metrics(evals) == expected
    flops = [expected[i]["flops"] - expected[i - 2]["flops"] for i in (2, 4, 6, 8)]
    assert len(set(flops)) > 1  # the rounds really were sampled: steps cost different FLOPs
    a, b = (torch.load(d / "ckpt.pt", weights_only=True) for d in (whole, parts))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for i, s in a["optimizer"]["state"].items():
        assert all(torch.equal(v, b["optimizer"]["state"][i][k]) for k, v in s.items())
    assert a["best_val_loss"] == b["best_val_loss"] and a["flops"] == b["flops"]


# -----------------------------------------------------------------------------
# 3. weights_only checkpoints; 4. the NaN guard


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """A finished tiny baseline run: its out_dir."""
    out = str(tmp_path_factory.mktemp("run") / "out")
    p = run("train.py", *TINY_CLI, *data_args(data), f"--out_dir={out}")
    assert p.returncode == 0, p.stderr
    return out


def test_checkpoint_is_plain_data_for_weights_only_load(trained):
    path = os.path.join(trained, "ckpt.pt")
    ckpt = torch.load(path, weights_only=True)  # raises if anything in it needs arbitrary unpickling
    assert {"model", "optimizer", "scaler", "model_args", "config", "iter_num", "flops", "best_val_loss", "rng"} <= set(ckpt)
    assert ckpt["iter_num"] == 2 and ckpt["model_args"]["n_layer"] == 2
    check_complete(path)
    p = run("sample.py", f"--out_dir={trained}", "--num_samples=1", "--max_new_tokens=5")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stdout.splitlines()) >= 2


@pytest.mark.parametrize("eval_interval, what", [(100, "training loss"), (1, "validation loss")])
def test_non_finite_loss_stops_naming_iteration_and_last_good_checkpoint(tmp_path, data, eval_interval, what):
    """learning_rate=1e30 with no warmup: one AdamW step moves every weight by ~1e30, so the next
    forward overflows float32. The run stops at iter 1 with one line naming the iter-0 checkpoint,
    which stays finite and loadable, and nothing non-finite reaches log.jsonl."""
    out = tmp_path / "out"
    p = run("train.py", *TINY_CLI[:-1], "--max_iters=5", f"--eval_interval={eval_interval}", "--learning_rate=1e30",
            "--warmup_iters=0", *data_args(data), f"--out_dir={out}")
    err = p.stderr.strip()
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(err.splitlines()) == 1, err
    assert f"{what} is not finite at iter 1" in err and f"{out / 'ckpt.pt'} (iter 0)" in err and "learning_rate" in err
    ckpt = check_complete(str(out / "ckpt.pt"))
    assert ckpt["iter_num"] == 0 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert sorted(read_log_by_iter(out)[1]) == [0]


# -----------------------------------------------------------------------------
# 5. Bad input: one clear line, no traceback


def bad_world(root, trained):
    """Data sets, config files and checkpoints, each broken in one way; returns the paths by name."""
    w = {"root": root, "trained": trained, "empty": os.path.join(root, "empty_run")}
    write_dataset(root)
    write_dataset(root, "nometa")
    os.remove(os.path.join(root, "nometa", "meta.json"))
    write_dataset(root, "badmeta", meta="{not json")
    write_dataset(root, "notok", meta={"name": "notok"})
    write_dataset(root, "novocab", meta={"name": "novocab", "tokenizer": "char"})
    write_dataset(root, "odd")
    with open(os.path.join(root, "odd", "train.bin"), "ab") as f:
        f.write(b"\0")
    write_dataset(root, "noval")
    os.remove(os.path.join(root, "noval", "val.bin"))
    write_dataset(root, "bigid")
    np.full(100, 40, np.uint16).tofile(os.path.join(root, "bigid", "val.bin"))
    write_dataset(root, "short", n_val=5)
    w["gone"] = os.path.join(root, "gone")  # a data dir whose meta.json was deleted after training
    write_dataset(w["gone"])
    os.remove(os.path.join(w["gone"], "tiny", "meta.json"))
    w["file"] = os.path.join(root, "a_file")
    open(w["file"], "w").close()
    with open(os.path.join(root, "cfg_syntax.py"), "w") as f:
        f.write("n_layer = = 2\n")
    good_path = os.path.join(trained, "ckpt.pt")
    good = torch.load(good_path, weights_only=True)

    def ckpt(name, obj=None, raw=None):
        d = os.path.join(root, name)
        os.makedirs(d)
        if raw is not None:
            with open(os.path.join(d, "ckpt.pt"), "wb") as f:
                f.write(raw)
        else:
            torch.save(obj, os.path.join(d, "ckpt.pt"))
        w[name] = d

    ckpt("corrupt", raw=random.Random(0).randbytes(5000))
    ckpt("truncated", raw=open(good_path, "rb").read()[:os.path.getsize(good_path) // 2])
    ckpt("no_args", {k: v for k, v in good.items() if k != "model_args"})
    ckpt("no_optimizer", {k: v for k, v in good.items() if k != "optimizer"})
    ckpt("same", good)
    ckpt("args_4_layers", good | {"model_args": good["model_args"] | {"n_layer": 4}})
    ckpt("args_wide", good | {"model_args": good["model_args"] | {"n_embd": 32}})
    ckpt("meta_gone", good | {"config": good["config"] | {"data_dir": w["gone"]}})
    return w


def T(w, *extra, dataset="tiny", out="out"):
    """train.py arguments: the tiny config on a data set of the bad world, then the case's own."""
    return ["train.py", *TINY_CLI, *data_args(w["root"], dataset), f"--out_dir={os.path.join(w['root'], out)}", *extra]


# id -> (argv builder, fragments the error line must contain: what was wrong, and what is allowed)
BAD_INPUTS = {
    "unknown_key": (lambda w: T(w, "--foo=1"), ["unknown config key 'foo'", "allowed keys:", "batch_size"]),
    "wrong_type": (lambda w: T(w, "--n_layer=2.5"), ["n_layer=2.5", "must be of type int"]),
    "bad_bool": (lambda w: T(w, "--bias=yes"), ["bias='yes'", "True or False"]),
    "no_equals": (lambda w: T(w, "--n_layer"), ["'--n_layer'", "--key=value"]),
    "missing_config_file": (lambda w: ["train.py", "config/nope.py"], ["config/nope.py", "existing file"]),
    "config_syntax": (lambda w: ["train.py", os.path.join(w["root"], "cfg_syntax.py")], ["line 1", "plain assignments"]),
    "negative_budget": (lambda w: T(w, "--flop_budget=-1"), ["flop_budget=-1", ">= 0"]),
    "max_iters_and_budget": (lambda w: T(w, "--flop_budget=1e9", "--max_iters=3"), ["both set the run length", "--flop_budget=0"]),
    "bad_dtype": (lambda w: T(w, "--dtype=fp8"), ["dtype='fp8'", "float32, bfloat16"]),
    "bad_init_from": (lambda w: T(w, "--init_from=gpt2"), ["init_from='gpt2'", "scratch, resume"]),
    "bad_device": (lambda w: T(w, "--device=tpu"), ["device='tpu'", "cpu, cuda"]),
    "zero_batch": (lambda w: T(w, "--batch_size=0"), ["batch_size=0", ">= 1"]),
    "heads_not_dividing": (lambda w: T(w, "--n_embd=15"), ["n_embd=15", "divisible by n_head=2"]),
    "negative_lr": (lambda w: T(w, "--learning_rate=-1"), ["learning_rate=-1", "learning_rate >= 0"]),
    "zero_eval_interval": (lambda w: T(w, "--eval_interval=0"), ["eval_interval", ">= 1"]),
    "signature_order": (lambda w: T(w, "--signature=A^rX"), ["bad signature 'A^rX'", "alphabetical", "e.g. AB, A^rB"]),
    "signature_unclosed": (lambda w: T(w, "--signature=(AB"), ["unclosed '('", "e.g. AB, A^rB"]),
    "layers_not_divisible": (lambda w: T(w, "--signature=ABC"), ["splits 2 layers", "divisible by 3"]),
    "r_zero": (lambda w: T(w, "--signature=A^rB", "--r=0"), ["r=0", "r >= 1"]),
    "r_on_baseline": (lambda w: T(w, "--r=2"), ["no '^r' unit", "A^rB"]),
    "bad_round_sampler": (lambda w: T(w, "--signature=A^rB", "--round_sampler=uniform"), ["'uniform'", "fixed, binomial, poisson"]),
    "bad_partition": (lambda w: T(w, "--signature=A^rB", "--partition=1:x"), ["partition='1:x'", "one per letter"]),
    "eval_r_zero": (lambda w: T(w, "--signature=A^rB", "--r=2", "--eval_r=[0]"), ["eval_r=[0]", "at least 1"]),
    "eval_r_float": (lambda w: T(w, "--signature=A^rB", "--r=2", "--eval_r=[1.5]"), ["eval_r=[1.5]", "whole number"]),
    "data_dir_missing": (lambda w: T(w, "--data_dir=/nonexistent"), ["no prepared dataset at /nonexistent/tiny", "prepare.py"]),
    "meta_missing": (lambda w: T(w, dataset="nometa"), ["no prepared dataset", "prepare.py nometa"]),
    "meta_not_json": (lambda w: T(w, dataset="badmeta"), ["not valid JSON", "prepare.py badmeta"]),
    "meta_no_tokenizer": (lambda w: T(w, dataset="notok"), ["needs tokenizer 'char'", "'gpt2'"]),
    "meta_no_vocab_size": (lambda w: T(w, dataset="novocab"), ["vocab_size", "prepare.py novocab"]),
    "bin_odd_size": (lambda w: T(w, dataset="odd"), ["odd/train.bin", "odd size", "uint16"]),
    "bin_missing": (lambda w: T(w, dataset="noval"), ["noval/val.bin is missing", "prepare.py"]),
    "bin_id_too_big": (lambda w: T(w, dataset="bigid"), ["token id 40 >= vocab_size 16", "prepare.py"]),
    "bin_too_short": (lambda w: T(w, dataset="short"), ["has 5 tokens", "smaller block_size"]),
    "out_dir_unwritable": (lambda w: T(w, out=os.path.join(w["file"], "out")), ["cannot write to out_dir", "writable"]),
    "resume_no_checkpoint": (lambda w: T(w, "--init_from=resume", out="empty_run"), ["empty_run/ckpt.pt' does not exist", "train first"]),
    "resume_corrupt": (lambda w: T(w, "--init_from=resume", out="corrupt"), ["truncated or corrupt", "older copy"]),
    "resume_truncated": (lambda w: T(w, "--init_from=resume", out="truncated"), ["truncated or corrupt", "older copy"]),
    "resume_no_optimizer": (lambda w: T(w, "--init_from=resume", out="no_optimizer"), ["lacks optimizer", "not a complete"]),
    "resume_other_n_layer": (lambda w: T(w, "--init_from=resume", "--n_layer=4", out="same"),
                             ["trained with n_layer=2", "config says 4", "run's own config"]),
    "sample_no_checkpoint": (lambda w: ["sample.py", f"--out_dir={w['empty']}"], ["does not exist", "train first"]),
    "sample_corrupt": (lambda w: ["sample.py", f"--out_dir={w['corrupt']}"], ["truncated or corrupt", "older copy"]),
    "sample_no_model_args": (lambda w: ["sample.py", f"--out_dir={w['no_args']}"], ["lacks model_args", "not a complete"]),
    "sample_other_n_layer": (lambda w: ["sample.py", f"--out_dir={w['args_4_layers']}"],
                             ["does not fit", "missing tensor transformer.h.2.", "model_args"]),
    "sample_other_width": (lambda w: ["sample.py", f"--out_dir={w['args_wide']}"], ["wte.weight has shape (16, 16)", "expects (16, 32)"]),
    "sample_tokenizer_gone": (lambda w: ["sample.py", f"--out_dir={w['meta_gone']}"], ["gone/tiny/meta.json is missing", "prepare.py"]),
    "sample_bad_num": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--num_samples=0"], ["num_samples=0", "num_samples >= 1"]),
    "sample_r_on_baseline": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--r=2"], ["r=2", "no '^r' unit"]),
    "sample_unknown_char": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--start=XYZ"], ["'X'", "vocabulary"]),
    "sample_prompt_file": (lambda w: ["sample.py", f"--out_dir={w['trained']}", "--start=FILE:/nonexistent"],
                           ["cannot read the prompt file '/nonexistent'", "UTF-8 text file"]),
    "compare_bad_budgets": (lambda w: ["compare.py", "--budgets=lots", f"--out={w['root']}/cmp", "config/rins_small.py"],
                            ["bad --budgets 'lots'", "comma-separated"]),
    "compare_no_out": (lambda w: ["compare.py"], ["no output directory", "--out"]),
    "prepare_unknown_dataset": (lambda w: ["prepare.py", "wikitext"], ["'wikitext'", "shakespeare_char"]),
    "prepare_bad_option": (lambda w: ["prepare.py", "shakespeare_char", "--bogus=1"], ["'--bogus=1'", "--max_chars"]),
}


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory, trained):
    """Every BAD_INPUTS case, run side by side once (each is a fresh python + torch import)."""
    w = bad_world(str(tmp_path_factory.mktemp("bad")), trained)
    with ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(run, *argv(w)) for name, (argv, _) in BAD_INPUTS.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line(bad_results, case):
    p, fragments = bad_results[case], BAD_INPUTS[case][1]
    err = p.stderr.strip()
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert len(err.splitlines()) == 1, err  # stdout may hold the run table; the error is stderr's only line
    assert err.startswith(("train.py: ", "sample.py: ", "compare.py: ", "prepare.py: ", "checkpoint '")), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# -----------------------------------------------------------------------------
# 6. torchrun on CPU


def test_torchrun_two_processes_match_one_process(tmp_path, data):
    """torchrun --nproc_per_node=2 (gloo) with batch_size=2 against one process with batch_size=4:
    the same global batches, so the same losses (to float rounding) and the same FLOPs; both ranks
    draw identical stochastic rounds (equal to the single process's); only rank 0 saves and logs."""
    common = [*TINY_CLI[:-1], "--max_iters=6", "--eval_interval=2", "--eval_iters=2", "--signature=A^rB", "--r=3",
              "--round_sampler=binomial", "--gradient_accumulation_steps=2", "--eval_r=[1]", *data_args(data)]
    hooks = {name: tmp_path / name for name in ("ddp", "single")}
    for d in hooks.values():
        d.mkdir()
    path = tmp_path / "harness.py"
    path.write_text(HARNESS)
    env = ENV | {"REPO": HERE, "HARNESS_MODE": "record"}
    ddp = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                            "--standalone", "--", str(path), "train.py", *common,
                            "--batch_size=2", f"--out_dir={tmp_path / 'out_ddp'}"], cwd=HERE, text=True,
                           env=env | {"HARNESS_OUT": str(hooks["ddp"])}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    single = subprocess.run([sys.executable, str(path), "train.py", *common, "--batch_size=4",
                             f"--out_dir={tmp_path / 'out_single'}"], cwd=HERE, text=True, capture_output=True,
                            env=env | {"HARNESS_OUT": str(hooks["single"])}, timeout=120)
    log, _ = ddp.communicate(timeout=120)
    assert ddp.returncode == 0, log
    assert single.returncode == 0, single.stderr
    assert "2 processes" in log and "Traceback" not in log
    starts, evals = read_log_by_iter(tmp_path / "out_ddp")
    _, ref = read_log_by_iter(tmp_path / "out_single")
    assert len(starts) == 1 and sorted(evals) == sorted(ref) == [0, 2, 4, 6]
    with open(tmp_path / "out_ddp" / "log.jsonl") as f:
        assert len(f.readlines()) == 5  # one start and four evals: rank 1 wrote nothing
    for it in ref:
        assert evals[it]["tokens"] == ref[it]["tokens"] and evals[it]["flops"] == ref[it]["flops"]
        assert evals[it]["val_loss"] == pytest.approx(ref[it]["val_loss"], abs=1e-5)
        assert evals[it]["val_loss_r"]["1"] == pytest.approx(ref[it]["val_loss_r"]["1"], abs=1e-5)
        if it:
            assert evals[it]["train_loss"] == pytest.approx(ref[it]["train_loss"], abs=1e-5)
    rank0, rank1, one = (json.loads((hooks[d] / f).read_text()) for d, f in
                         (("ddp", "rank0.json"), ("ddp", "rank1.json"), ("single", "rank0.json")))
    assert rank0["rounds"] == rank1["rounds"] == one["rounds"] and len(set(one["rounds"])) > 1
    assert rank0["saves"] == [0, 2, 4, 6] and rank1["saves"] == []
    ckpt = check_complete(str(tmp_path / "out_ddp" / "ckpt.pt"))
    assert len(ckpt["rng"]["torch"]) == 2  # each rank's dropout RNG, for a resume


# -----------------------------------------------------------------------------
# Vision (issue 7): the ViT (RINS's negative control) and the SigLIP-style two-tower model, on tiny
# in-memory images; nothing is downloaded.

TINY_VIT = dict(image_size=8, patch_size=4, n_layer=4, n_head=2, n_embd=16, num_classes=10)  # 4 patches
TINY_SIGLIP = TINY_VIT | dict(num_classes=8, vocab_size=len(CAPTION_VOCAB), text_len=CAPTION_LEN)
VIT_VARIANTS = {
    "baseline": dict(signature="AB"),
    "rins_r2": dict(signature="A^rB", r=2),
    "rao": dict(signature="(AB)^r", r=2),
    "stoch_adapters": dict(signature="A^rB", r=3, round_sampler="binomial", adapter="per_round", adapter_rank=4),
}


def tiny_vit(seed=0, **kw):
    torch.manual_seed(seed)
    return ViT(ViTConfig(**(TINY_VIT | kw)))


def tiny_siglip(seed=0, **kw):
    torch.manual_seed(seed)
    return SigLIP(SigLIPConfig(**(TINY_SIGLIP | kw)))


def image_batch(seed=0, B=3, size=8):
    """Random uint8 images (B, size, size), their labels, and the model input (B, 1, size, size) in [0, 1]."""
    g = np.random.default_rng(seed)
    images, labels = g.integers(0, 256, (B, size, size), dtype=np.uint8), g.integers(0, 10, B)
    return images, labels, torch.from_numpy(images).unsqueeze(1).float() / 255


def caption_batch(seed=0, B=3, size=8):
    images, labels, x = image_batch(seed, B, size)
    return x, torch.from_numpy(encode_captions(captions(labels, images, random.Random(seed))))


# -----------------------------------------------------------------------------
# ViT


def test_vit_shapes_and_rounds():
    model = tiny_vit(**VIT_VARIANTS["rins_r2"])
    _, labels, x = image_batch()
    states = []
    logits, loss = model(x, torch.from_numpy(labels), states=states)
    assert logits.shape == (3, 10) and loss.shape == () and model(x)[1] is None
    assert model.plan.layers() == [0, 1, 0, 1, 2, 3] and len(states) == 6  # one per application
    assert states[0].shape == (3, 4, 16)  # (B, patches, C)
    assert abs(loss.item() - math.log(10)) < 0.1
    assert "pos" not in model.state_dict()  # fixed sin-cos positions: a buffer, never learned or saved
    assert model.get_num_params() == tiny_vit().get_num_params() and model.get_num_extra_params() == 0


def test_vit_patches_follow_the_image_grid():
    """Patch i of the flattened sequence is the i-th 4x4 block of the image in row-major order."""
    model = tiny_vit()
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4:, :4] = 1.0  # bottom-left block = patch 2
    seen = []
    model.patch_embed.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    model(x)
    assert seen[0][0].sum(-1).tolist() == [0.0, 0.0, 16.0, 0.0]


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
        for train in (True, False):
            measured = measured_flops(model, (x, torch.from_numpy(labels)), r, train) / (3 * model.n_patches)
            predicted = model.flops_per_token(train=train, r=r)
            assert abs(measured / predicted - 1) < 0.01, (name, r, train, measured, predicted)


# -----------------------------------------------------------------------------
# SigLIP


@pytest.mark.parametrize("tower", ["image", "text", "both"])
def test_siglip_shapes_and_which_tower_recurses(tower):
    model = tiny_siglip(signature="A^rB", r=2, rins_tower=tower)
    x, tokens = caption_batch()
    logits, loss = model(x, tokens)
    assert logits.shape == (3, 3) and loss.shape == ()
    z_img, z_txt = model.encode_image(x), model.encode_text(tokens)
    assert z_img.shape == z_txt.shape == (3, 8)
    torch.testing.assert_close(z_img.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(z_txt.norm(dim=-1), torch.ones(3))
    plans = {"image": model.image.plan.layers(), "text": model.text.plan.layers()}
    for name, plan in plans.items():
        assert plan == ([0, 1, 0, 1, 2, 3] if tower in (name, "both") else [0, 1, 2, 3]), name
    assert model.get_num_params() == tiny_siglip().get_num_params()
    assert model(x, tokens, r=1)[1].item() == pytest.approx(tiny_siglip()(x, tokens)[1].item(), abs=1e-6)  # r=1: the baseline


def test_sigmoid_loss_by_hand():
    """n = 2, t = 10, b = -10: logits = 10 z_img z_txt^T - 10 = [[0, -10], [-4, -2]], labels [[1, -1], [-1, 1]];
    loss = (log 2 + log(1 + e^-10) + log(1 + e^-4) + log(1 + e^2)) / 2."""
    z_img, z_txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]]), torch.eye(2)
    logits, loss = sigmoid_loss(z_img, z_txt, torch.tensor(math.log(10.0)), torch.tensor(-10.0))
    torch.testing.assert_close(logits, torch.tensor([[0.0, -10.0], [-4.0, -2.0]]))
    by_hand = (math.log(2) + math.log1p(math.exp(-10)) + math.log1p(math.exp(-4)) + math.log1p(math.exp(2))) / 2
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    # the model starts at t = 10, b = -10 and its loss is this function of its two embeddings
    model = tiny_siglip()
    assert model.t_prime.exp().item() == pytest.approx(10.0) and model.b.item() == -10.0
    x, tokens = caption_batch()
    expected = sigmoid_loss(model.encode_image(x), model.encode_text(tokens), model.t_prime, model.b)[1]
    torch.testing.assert_close(model(x, tokens)[1], expected)


def test_text_pool_never_sees_trailing_padding():
    """Causal text tower pooled at the last word: the padded caption embeds like the unpadded one."""
    model = tiny_siglip().eval()
    tokens = torch.from_numpy(encode_captions(["a photo of a dark coat", "my bag"]))
    short = tokens[:, :6]  # the longest caption has 6 words
    torch.testing.assert_close(model.encode_text(tokens), model.encode_text(short))


def test_siglip_flops_match_flop_counter():
    """Both towers per pair, recursion in either or both; the uncounted n x n similarity matrix stays under 1% here."""
    x, tokens = caption_batch()
    for tower in ("image", "text", "both"):
        model = tiny_siglip(signature="A^rB", r=2, rins_tower=tower)
        for train in (True, False):
            measured = measured_flops(model, (x, tokens), None, train) / (3 * (model.image.n_patches + CAPTION_LEN))
            predicted = model.flops_per_token(train=train)
            assert abs(measured / predicted - 1) < 0.01, (tower, train, measured, predicted)
        assert model.flops_per_token(r=1) == tiny_siglip().flops_per_token()  # r=1: the baseline's cost


def test_zero_shot_picks_the_nearest_class():
    """Encoders replaced by known maps: a prompt embeds as the one-hot of the class whose name's last word it
    contains, an image as the one-hot of its label plus noise. zero_shot must then return every label."""
    model = tiny_siglip(num_classes=10)
    ids = {w: i for i, w in enumerate(CAPTION_VOCAB)}
    name_ids = torch.tensor([ids[names[0].split()[-1]] for names in CLASS_NAMES])

    def encode_text(tokens, r=None):
        return F.normalize((tokens[:, :, None] == name_ids).any(1).float(), dim=-1)  # (B, classes)

    labels = torch.tensor([3, 0, 9, 6, 7, 1])
    noise = 0.3 * torch.rand(len(labels), 10, generator=torch.Generator().manual_seed(0))
    model.encode_text = encode_text
    model.encode_image = lambda images, r=None: F.normalize(F.one_hot(labels, 10).float() + noise, dim=-1)
    prompts = torch.from_numpy(np.stack([encode_captions(p) for p in zero_shot_prompts()]))  # (classes, templates, T)
    assert prompts.shape == (10, len(HELDOUT_TEMPLATES), CAPTION_LEN)
    assert torch.equal(model.zero_shot(torch.zeros(len(labels), 1, 8, 8), prompts), labels)


def test_held_out_templates_are_disjoint_from_training():
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    images, labels, _ = image_batch(B=2000)
    train = set(captions(labels, images, random.Random(0)))
    prompts = {p for per_class in zero_shot_prompts() for p in per_class}
    assert not train & prompts
    assert len(zero_shot_prompts()) == len(FASHION_CLASSES) == len(CLASS_NAMES)
    tokens = encode_captions(sorted(train))
    assert (tokens != 1).all() and (tokens[:, 0] != 0).all()  # training words are all in the vocabulary
    assert (encode_captions(sorted(prompts)) == 1).any()  # held-out words the model never saw map to <unk>


# -----------------------------------------------------------------------------
# train.py on synthetic images


@pytest.mark.parametrize("config, task, extra", [("vit_fashion_rins.py", "vit", []), ("vit_fashion.py", "vit", []),
                                                 ("siglip_fashion_rins.py", "siglip", ["--rins_tower=text"]),
                                                 ("siglip_fashion.py", "siglip", [])])
def test_train_py_image_task_logs_accuracy(tmp_path, config, task, extra):
    """Each vision config, shrunk to tiny synthetic images, trains and logs accuracy at every eval depth."""
    d = tmp_path / "fashion_mnist"
    d.mkdir()
    g = np.random.default_rng(0)
    for split, n in (("train", 64), ("val", 20)):
        np.save(d / f"{split}_images.npy", g.integers(0, 256, (n, 8, 8), dtype=np.uint8))
        np.save(d / f"{split}_labels.npy", g.integers(0, 10, n).astype(np.uint8))
    (d / "meta.json").write_text(json.dumps({"name": "fashion_mnist", "classes": FASHION_CLASSES}))
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(HERE, "train.py"), os.path.join(HERE, "config", config), "--dataset=fashion_mnist", f"--data_dir={tmp_path}",
           f"--out_dir={out}", "--device=cpu", "--n_layer=2", "--n_head=2", "--n_embd=16", "--patch_size=4", "--batch_size=8",
           "--eval_iters=2", "--eval_interval=2", "--flop_budget=0", "--max_iters=4", "--warmup_iters=0",
           "--signature=A^rB", "--r=2", "--eval_r=[1,2]", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    start, done = lines[0], lines[-1]
    assert done["event"] == "done" and done["iter"] == 4
    assert {"task", "patch_size", "rins_tower"} <= set(start["config"]) and all(k.islower() for k in start["config"])  # no stray globals
    assert start["tokens_per_iter"] == 8 * (4 + (CAPTION_LEN if task == "siglip" else 0))  # patches (+ caption tokens)
    assert done["flops"] == pytest.approx(4 * start["tokens_per_iter"] * start["flops_per_token"])
    acc = "val_acc" if task == "vit" else "zeroshot_acc"
    assert set(done[f"{acc}_r"]) == set(done["val_loss_r"]) == {"1", "2"}
    assert done[acc] == done[f"{acc}_r"]["2"] and 0.0 <= done[acc] <= 1.0
    assert all(math.isfinite(v) for v in done["val_loss_r"].values())
