"""
Per-token early exit (exits.py) on tiny CPU models: threshold 0 is the fixed max_r model bit for bit, a huge
threshold is the earliest exit, token-by-token decoding equals the parallel evaluation under the same KV rule, the
executed FLOPs equal FlopCounterMode's count, and sample.py / bench_inference.py --depth / --exit end to end.

    OMP_NUM_THREADS=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_exits.py -v
"""

import os

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from checkpoint import save_checkpoint
from conftest import CHARS, TINY, batch, cli, tiny_gpt, write_char_dataset
from exits import Exits, evaluate, flops, summary, with_rounds

MODELS = {
    "rins": dict(signature="A^rB", r=3),
    "latent": dict(signature="AB^rC", partition="1:2:1", r=2, injection="concat"),  # input state: decoding can match
    "stoch_adapters": dict(signature="A^rB", r=3, round_sampler="binomial", adapter="per_round", adapter_rank=4),
}
R = 3  # max_r everywhere


def model_for(name):
    return tiny_gpt(**MODELS[name]).eval()


def mixed(model, test, x, y):
    """The threshold on a grid whose exits spread these tokens most evenly over the rounds (highest entropy)."""
    def spread(threshold):
        p = torch.tensor(list(summary(evaluate(model, x, y, Exits(model, test, threshold, R))[1])["hist"].values()))
        return -(p * p.log()).sum().item()
    return max((10.0 ** (e / 4) for e in range(-28, 5)), key=spread)


@torch.no_grad()
def decode(model, x, exits, prompt):
    """Teacher-forced decoding: the prompt in one call (all rounds), then one token per call with exits. Returns
    the logits at every position (B, T, V) and the rounds of the decoded tokens (B, T - prompt)."""
    caches, given = exits.new_caches() if exits else model.new_caches(R), exits and exits.given
    logits = [model(x[:, :prompt], x[:, :prompt].contiguous(), r=R, caches=caches)[0]]
    for t in range(prompt, x.size(1)):
        if given is not None:  # rounds given per token: this call's
            exits.given = given[:, [t]]
        logits.append(model(x[:, [t]], r=R, caches=caches, exits=exits)[0])
    return torch.cat(logits, dim=1), torch.cat(exits.history, dim=1) if exits else None


@pytest.mark.parametrize("test", ["latent", "kl"])
@pytest.mark.parametrize("name", list(MODELS))
def test_threshold_zero_is_the_fixed_max_r_model_bit_for_bit(name, test):
    model, (x, y) = model_for(name), batch(1, B=3, T=16)
    _, rounds, logits = evaluate(model, x, y, Exits(model, test, 0.0, R))
    assert torch.equal(logits, model(x, y, r=R)[0]) and (rounds == R).all()
    plain, _ = decode(model, x, None, 5)
    for mode in ("masked", "compact"):
        cached, rounds = decode(model, x, Exits(model, test, 0.0, R, mode), 5)
        assert torch.equal(cached, plain) and (rounds == R).all(), mode
        tokens = model.generate(x[:, :4], 10, temperature=0, r=R, exits=Exits(model, test, 0.0, R, mode))
        assert torch.equal(tokens, model.generate(x[:, :4], 10, temperature=0, r=R)), mode


def test_threshold_zero_holds_when_rounding_makes_kl_negative():
    """At a fixed point successive distributions agree up to rounding, and the summed KL can come out at -1e-9:
    the test clamps it at 0, so threshold 0 still never stops a token."""
    model, (x, y) = model_for("rins"), batch(1, B=2, T=8)
    exits = Exits(model, "kl", 0.0, R)
    calls = iter(range(R))
    exits.peek = lambda h: torch.full(h.shape[:2] + (64,), -4.0) + 1e-6 * next(calls)  # KL = -1e-6 per round
    assert (evaluate(model, x, y, exits)[1] == R).all()


@pytest.mark.parametrize("test, earliest", [("latent", 1), ("kl", 2)])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_huge_threshold_is_the_earliest_exit(name, test, earliest):
    """Every token stops as soon as the test can tell: after round 1 (latent) or 2 (kl, which compares two)."""
    model, (x, y) = model_for(name), batch(2, B=3, T=16)
    _, rounds, logits = evaluate(model, x, y, Exits(model, test, 1e9, R))
    assert torch.equal(logits, model(x, y, r=earliest)[0]) and (rounds == earliest).all()
    _, rounds = decode(model, x, Exits(model, test, 1e9, R, "compact"), 5)
    assert (rounds == earliest).all()


@pytest.mark.parametrize("mode", ["masked", "compact"])
@pytest.mark.parametrize("test", ["latent", "kl", "given"])
@pytest.mark.parametrize("name", list(MODELS))
def test_cached_decoding_equals_the_parallel_evaluation(name, test, mode):
    """Tokens stopping after different rounds: decoding token by token (stand-in keys and values, the coda written
    once from the exit state) and the whole sequence at once under the same rule give the same rounds and logits."""
    model, (x, y), P = model_for(name), batch(3, B=3, T=16), 5
    given = torch.randint(1, R + 1, x.shape, generator=torch.Generator().manual_seed(0)) if test == "given" else None
    kw = dict(threshold=0.0 if given is not None else mixed(model, test, x, y), max_r=R, given=given)
    _, rounds, logits = evaluate(model, x, y, Exits(model, test, prefill=P, **kw))
    cached, decoded = decode(model, x, Exits(model, test, mode=mode, **kw), P)
    assert len(summary(rounds[:, P:])["hist"]) > 1  # the tokens really stopped at different rounds
    assert torch.equal(decoded, rounds[:, P:]) and (rounds[:, :P] == R).all()
    torch.testing.assert_close(cached, logits, rtol=0, atol=2e-5)


def test_stand_ins_are_the_exit_rounds_keys_and_values():
    """After decoding, a token that stopped after k rounds holds its round-k entry in every later round's cache,
    and every cache has one entry per token."""
    model, x = model_for("rins"), batch(4, B=2, T=12)[0]
    exits = Exits(model, "given", max_r=R, given=torch.randint(1, R + 1, (2, 1), generator=torch.Generator()))
    caches = exits.new_caches()
    model(x[:, :4], r=R, caches=caches)
    rounds = []
    for t in range(4, 12):
        exits.given = torch.randint(1, R + 1, (2, 1), generator=torch.Generator().manual_seed(t))
        model(x[:, [t]], r=R, caches=caches, exits=exits)
        rounds.append(exits.given[:, 0])
    assert all(len(c) == 12 for c in caches)
    n = len(model.plan.unit)
    for t, ran in zip(range(4, 12), rounds):
        for row, k in enumerate(ran.tolist()):
            for j in range(k, R):  # rounds k+1.. (0-based j) copy round k's entry of the same block
                for b in range(n):
                    assert torch.equal(caches[j * n + b].k[row, :, t], caches[(k - 1) * n + b].k[row, :, t])
                    assert torch.equal(caches[j * n + b].v[row, :, t], caches[(k - 1) * n + b].v[row, :, t])


def test_kl_evaluation_settles_in_few_passes():
    model, (x, y) = model_for("latent"), batch(5, B=2, T=16)
    exits = Exits(model, "kl", mixed(model, "kl", x, y), R)
    evaluate(model, x, y, exits)
    assert 2 <= len(exits.history) <= 6  # one pass per round of fixing the earlier tokens' final coda entries


@pytest.mark.parametrize("test", ["latent", "kl"])
@pytest.mark.parametrize("mode, B", [("masked", 1), ("compact", 3), ("masked", 3)])
def test_executed_flops_equal_the_flop_counter(test, mode, B):
    """Decoding under FlopCounterMode (math attention): everything that runs (rounds, kl's coda and head, the head)
    equals exits.flops with the keys each step attends to. Masked batches run every row to the step's last exit."""
    model, (x, y) = model_for("rins"), batch(6, B=B, T=16)
    exits, P = Exits(model, test, mixed(model, test, x, y), R, mode), 5
    caches = exits.new_caches()
    with torch.no_grad():
        model(x[:, :P], r=R, caches=caches)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            for t in range(P, x.size(1)):
                model(x[:, [t]], r=R, caches=caches, exits=exits)
    steps = torch.cat(exits.history, dim=1)  # (B, steps)
    assert len(summary(steps)["hist"]) > 1
    keys = torch.arange(P, x.size(1)) + 1  # the token itself and everything before it
    run = steps.max(0).values.expand_as(steps) if mode == "masked" else steps
    predicted = flops(model, run, test, R, keys=keys, elementwise=False).sum().item()
    assert counter.get_total_flops() == pytest.approx(predicted, rel=1e-9)


def test_flops_at_fixed_rounds_are_flops_per_token():
    for name in MODELS:
        model = model_for(name)
        for r in range(1, R + 1):
            assert flops(model, torch.tensor([r]), None, R).item() == pytest.approx(model.flops_per_token(False, r))
    model, d, T, V = model_for("rins"), 32, 16, 64  # TINY: 4 layers, so A^rB's coda is 2 blocks of 12 d^2 weights
    none, latent, kl = (flops(model, torch.tensor([2]), test, R).item() for test in (None, "latent", "kl"))
    peek = 2 * (2 * 12 * d * d + 4 * T * d) + 2 * V * d + 9 * V  # the coda, the head, log-softmax and KL
    assert kl - none == 2 * peek and latent - none == 2 * 5 * d  # two tests before stopping after round 2 of 3
    assert flops(model, torch.tensor([3]), "kl", R).item() - flops(model, torch.tensor([3]), None, R) == 2 * peek


def test_with_rounds_adds_zero_adapters_past_the_trained_ones():
    model, (x, y) = model_for("stoch_adapters"), batch(7)
    assert with_rounds(model, 3) is model and with_rounds(model_for("rins"), 9) is not None
    deeper = with_rounds(model, 5)
    for r in (1, 2, 3):
        assert torch.equal(deeper(x, y, r=r)[0], model(x, y, r=r)[0])
    assert torch.isfinite(deeper(x, y, r=5)[1])
    with pytest.raises(ValueError, match="exceeds the 3 rounds"):
        model(x, y, r=5)


@pytest.mark.parametrize("kw, fragment", [
    (dict(test="halt"), "exit test 'halt' is not one of latent, kl"),
    (dict(threshold=-0.1), "exit_threshold=-0.1 must be >= 0"),
    (dict(max_r=0), "max_r=0 must be at least 1"),
    (dict(model="AB"), "signature 'AB' has no '^r' unit"),
    (dict(model="per_count"), "adapter='per_count'"),
    (dict(mode="sorted"), "exit mode 'sorted'"),
    (dict(max_r=4, model="stoch"), "r=4 exceeds the 3 rounds this model has adapters for"),
])
def test_bad_exits_are_one_line(kw, fragment):
    models = dict(AB=tiny_gpt(), per_count=tiny_gpt(signature="A^rB", r=2, adapter="per_count"),
                  stoch=model_for("stoch_adapters"))
    model = models.get(kw.pop("model", None), model_for("rins"))
    with pytest.raises(ValueError) as err:
        Exits(model, **(dict(test="latent") | kw))
    assert fragment in str(err.value) and "\n" not in str(err.value)


# -----------------------------------------------------------------------------
# sample.py and bench_inference.py end to end


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories of tiny random models on the tiny char data (val.bin and test.bin)."""
    root = tmp_path_factory.mktemp("exits")
    data = write_char_dataset(str(root / "data"))
    os.link(os.path.join(data, "val.bin"), os.path.join(data, "test.bin"))
    out = {}
    for name, kw in dict(rins=MODELS["rins"], stoch=MODELS["stoch_adapters"], base={}).items():
        args = TINY | dict(vocab_size=len(CHARS), block_size=32) | kw
        out[name] = root / name
        out[name].mkdir()
        save_checkpoint(dict(model=tiny_gpt(**args).state_dict(), model_args=args, iter_num=0,
                             config=dict(dataset="tiny", data_dir=str(root / "data"))), str(out[name] / "ckpt.pt"))
    return out


def test_sample_prints_the_mean_rounds_per_token(runs):
    p = cli("sample.py", f"--out_dir={runs['rins']}", "--exit=latent", "--exit_threshold=0.2", "--max_r=6",
            "--num_samples=2", "--max_new_tokens=12", "--start=ab")
    assert p.returncode == 0, p.stderr
    assert "A^rB (r=6" in p.stdout
    assert "exit=latent threshold 0.2, max_r 6: mean rounds per token" in p.stdout
    assert "over 22 decoded tokens" in p.stdout


@pytest.mark.parametrize("args, message", [
    (["--exit=latent", "--exit_threshold=-0.5"],
     "sample.py: exit_threshold=-0.5 is not allowed; need exit_threshold >= 0"),
    (["--exit=latent", "--max_r=0"], "sample.py: max_r=0 is not allowed; need max_r >= 1"),
    (["--exit=halt"], "sample.py: exit='halt' is not allowed; need one of none, latent, kl"),
    (["--exit=kl", "base"], "has no '^r' unit, so no round to exit from"),
    (["--exit=kl", "--r=2"], "give max_r instead of r"),
    (["--max_r=3"], "add --exit=latent or --exit=kl"),
    (["--exit=latent", "--max_r=4", "stoch"], "r=4 exceeds the 3 rounds this model has adapters for"),
])
def test_sample_bad_exit_input_is_one_line(runs, args, message):
    run = runs[args[-1]] if args[-1] in runs else runs["rins"]
    p = cli("sample.py", f"--out_dir={run}", *[a for a in args if a not in runs], "--max_new_tokens=3")
    err = p.stderr.strip()
    assert p.returncode != 0 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_bench_depth_and_exit_tables(runs, tmp_path):
    common = ["--split=test", "--windows=4", "--new_tokens=8", "--prompt=8", "--batch=3", "--repeats=1"]
    p = cli("bench_inference.py", "--depth", runs["rins"], runs["stoch"], runs["base"], *common,
            f"--plot={tmp_path / 'depth.png'}")
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith(("| rins", "| stoch", "| base"))]
    assert len(rows) == 12 + 12 + 1 and "rounds 4+ without adapters" in p.stdout and (tmp_path / "depth.png").exists()
    p = cli("bench_inference.py", "--exit", runs["rins"], runs["base"], *common, "--thresholds_latent=[0.0,0.2]",
            "--thresholds_kl=[0.0,1e-4]", f"--plot={tmp_path / 'exit.png'}")
    assert p.returncode == 0, p.stderr
    kinds = [line.split("|")[4].strip() for line in p.stdout.splitlines() if line.startswith("| rins | A^3B | 3 |")]
    assert kinds == ["fixed r"] * 3 + ["oracle"] * 2 + ["oracle argmax"] * 2 + ["exit latent", "random latent"] * 2 \
        + ["exit kl", "random kl"] * 2
    assert "| base | AB (baseline) | - | baseline |" in p.stdout and "Targets (issue 24)" in p.stdout
    assert (tmp_path / "exit.png").exists()
