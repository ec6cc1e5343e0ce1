"""
bench.py, the training-step benchmark: its table end to end on a tiny shape, MFU from train.py's peak table, and
the one name of a plan that its tables and compare.py's legends share (analysis.plan_name).

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_bench.py -v
"""

from types import SimpleNamespace

import pytest
import torch

import bench
from analysis import plan_name
from conftest import batch, cli, tiny_gpt


def columns(lines):
    """bench.py's table (a header, a rule, a row per variant) as dicts keyed by the column names."""
    head, _, *rows = lines
    names = head.replace("time x", "time_x").replace("FLOP x", "FLOP_x").replace("peak MB", "peak_MB").split()
    return [dict(zip(names, row.split())) for row in rows]


def test_bench_prints_time_per_flop_and_no_mfu_on_the_cpu():
    out = cli("bench.py", "config/baseline_small.py", "config/rins_small.py", "--n_layer=2", "--n_head=2",
              "--n_embd=16", "--block_size=16", "--batch_size=2", "--vocab_size=11", "--steps=2", "--warmup=1",
              "--repeats=1")
    assert out.returncode == 0, out.stderr
    table = columns([line for line in out.stdout.splitlines() if not line.startswith("#")])
    assert [t["variant"] for t in table] == ["baseline_small", "rins_small"]
    assert table[0]["time/FLOP"] == "1.000" and all(t["MFU"] == "-" for t in table)
    assert "# MFU unknown" in out.stdout and out.stdout.startswith("# python bench.py config/baseline_small.py")


def test_profile_says_where_a_step_spends_its_time():
    """--profile=N: per variant, torch.profiler's top N ops by self time per step, shares of one whole; A^2B of two
    layers runs one application more than the baseline: 12 more matmuls a step (4 forward, 8 backward)."""
    out = cli("bench.py", "config/baseline_small.py", "config/rins_small.py", "--n_layer=2", "--n_head=2",
              "--n_embd=16", "--block_size=16", "--batch_size=2", "--vocab_size=11", "--steps=2", "--warmup=1",
              "--repeats=1", "--profile=40")  # 40: aten::mm is among them however a loaded machine ranks them
    assert out.returncode == 0, out.stderr
    calls = {}
    for name in ("baseline_small", "rins_small"):
        block = out.stdout.split(f"profile of {name} (2 steps, self CPU time):")[1].strip().split("\n\n")[0]
        fields = [line.rsplit(maxsplit=3) for line in block.splitlines()[1:]]  # op names may hold spaces
        rows = {f[0]: [float(v.rstrip("%")) for v in f[1:]] for f in fields}
        assert len(fields) == 40 and 0 < sum(float(f[3].rstrip("%")) for f in fields) <= 100.01
        calls[name] = rows["aten::mm"][0]
    assert calls["rins_small"] - calls["baseline_small"] == 12


@pytest.mark.parametrize("plan", [dict(signature="AB"), dict(signature="A^rB", r=2), dict(signature="(AB)^r", r=2),
                                  dict(signature="A^rB", r=3, round_sampler="binomial", stochastic_p=0.5,
                                       adapter="per_round", adapter_rank=4)])
def test_the_whole_model_compiles_to_one_graph_per_r(plan):
    """compile='model': dynamo unrolls the plan's loop for a fixed r with no graph break (fullgraph=True raises on
    one), and its graph computes what eager does, loss and gradients (backend 'eager' runs the captured graph as
    is, so equality is exact; inductor's kernels are checked on a GPU by bench.py, not here)."""
    torch._dynamo.reset()
    graphs = lambda: torch._dynamo.utils.counters["stats"]["unique_graphs"]
    before, (x, y) = graphs(), batch(T=16, V=64)
    eager, traced = tiny_gpt(**plan), tiny_gpt(**plan)
    compiled = torch.compile(traced, backend="eager", fullgraph=True, dynamic=False)
    rs = [1, 2, 3] if traced.plan.sampled else [None]
    for r in rs:
        losses = [m(x, y, r=r)[1] for m in (eager, compiled)]
        for loss in losses:
            loss.backward()
        assert torch.equal(*losses)
        grads = [[p.grad for p in m.parameters()] for m in (eager, traced)]  # None: an adapter r did not reach
        assert all(a is b is None or torch.equal(a, b) for a, b in zip(*grads))
    assert graphs() - before == len(rs)  # one per r, nothing split


def test_compile_model_raises_dynamos_limit_to_every_r_and_mode():
    model = tiny_gpt(signature="A^rB", r=3, round_sampler="poisson")  # rounds up to 12
    limit = torch._dynamo.config.recompile_limit
    try:
        model.compile_plan(whole=True, eval_r=4)
        assert torch._dynamo.config.recompile_limit == 24 and model._compiled_call_impl is not None
    finally:
        torch._dynamo.config.recompile_limit = limit
    blocks = tiny_gpt()
    blocks.compile_plan(whole=False)
    assert blocks._compiled_call_impl is None and all(b._compiled_call_impl for b in blocks.transformer.h)


def test_bench_compile_takes_auto_true_false_or_model():
    out = cli("bench.py", "config/baseline_small.py", "--compile=fast")
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "bench.py: compile='fast' is not allowed; need one of auto, True, False, model"]


@pytest.mark.parametrize("compiles", [True, False])
def test_compile_auto_is_on_for_cuda_only_where_the_benchmark_compiles(compiles):
    """'auto' on a CUDA device: bench.py compiles, as train.py does; the inference benchmarks run eagerly, so
    there 'auto' is off rather than an error (setup only reads the device name: no GPU is needed)."""
    run = bench.load(bench.keys(), None, ["--device=cuda", "--dtype=float32"])
    bench.setup(run, compiles=compiles)
    assert run["compile"] is compiles


def test_inference_modes_point_to_bench_inference():
    out = cli("bench.py", "--exit", "runs/x")
    assert out.returncode != 0 and out.stderr.strip() == \
        "bench.py: --exit is bench_inference.py's: python bench_inference.py --exit runs/x", out.stderr


@pytest.mark.parametrize("name, dtype, peak", [("NVIDIA H100 80GB HBM3", "bfloat16", "H100"),
                                               ("NVIDIA H100 PCIe", "bfloat16", "H100 PCIe"),
                                               ("NVIDIA H100 80GB HBM3", "float32", None),
                                               ("NVIDIA GeForce GTX 1080", "bfloat16", None)])
def test_mfu_peak_is_train_pys(monkeypatch, name, dtype, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: name)
    env = SimpleNamespace(device="cuda", device_type="cuda", dtype=dtype)
    assert bench.peak_flops(env) == (bench.train_literal("PEAK_BF16_FLOPS")[peak] if peak else None)


def test_mfu_is_charged_flops_per_second_over_the_peak(capsys):
    v = SimpleNamespace(name="AB", apps=4, seq=[None], times=[0.5], flops=2e6, peak_mb=0.0)
    bench.train_table([v], tokens=1000, peak=8e9, run=dict(compile=False))  # 2e6 x 1000 / 0.5 s = 4e9 FLOP/s
    (row,) = columns(capsys.readouterr().out.splitlines())
    assert (row["MFU"], row["GFLOP/s"]) == ("50.0%", "4.0")


def test_plan_name_of_configs_and_models():
    assert plan_name(dict(signature="AB")) == "AB (baseline)"
    assert plan_name(dict(signature="A^rB", r=2, round_sampler="fixed")) == "A^2B"
    assert plan_name(dict(signature="A^3B")) == "A^3B"  # unrolled: fixed depth, but not the plain stack
    stoch = dict(signature="A^rB", r=3, round_sampler="binomial", adapter="per_round", adapter_rank=4)
    assert plan_name(stoch) == "A^rB, binomial rounds (r=3), adapters"
    assert plan_name(vars(tiny_gpt(**stoch).config)) == plan_name(stoch)  # a built model: its config's fields
    assert plan_name(vars(tiny_gpt().config)) == "AB (baseline)"
