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
from conftest import cli, tiny_gpt


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
              "--repeats=1", "--profile=5")
    assert out.returncode == 0, out.stderr
    calls = {}
    for name in ("baseline_small", "rins_small"):
        block = out.stdout.split(f"profile of {name} (2 steps, self CPU time):")[1].strip().splitlines()[1:6]
        rows = {line.split()[0]: [float(v.rstrip("%")) for v in line.split()[1:]] for line in block}
        assert len(rows) == 5 and 0 < sum(r[2] for r in rows.values()) <= 100.01
        calls[name] = rows["aten::mm"][0]
    assert calls["rins_small"] - calls["baseline_small"] == 12


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
