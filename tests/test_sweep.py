"""
Sweeps (sweep.py, run through compare.py's CLI): skip and resume, learning-rate grids, parallel jobs, submitit.
A fake trainer checks the command lines; real train.py runs on a tiny char corpus check what the runs log.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/test_sweep.py -v
"""
import os
import sys

import pytest

import compare
import sweep
from conftest import HERE, SUPPORT, write_log


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    """tests/support/fake_train.py in place of train.py; returns a reader of the command lines it was given."""
    monkeypatch.setattr(sweep, "TRAIN", [sys.executable, os.path.join(SUPPORT, "fake_train.py")])
    for name in ("baseline_small", "broken"):
        (tmp_path / f"{name}.py").write_text("# fake config\n")
    calls = tmp_path / "calls.txt"
    return lambda: calls.read_text().splitlines() if calls.exists() else []


def test_sweep_skips_finished_and_resumes(tmp_path, fake_trainer, capsys):
    out = tmp_path / "sweep"
    argv = [str(tmp_path / "baseline_small.py"), "--budgets", "1e12,2.5e12", "--seeds", "0,1", "--out", str(out),
            "--set", "batch_size=4", "--n_boot", "1"]
    # interrupted runs: with a checkpoint it resumes, without one it starts over
    write_log(sweep.run_dir(out, "baseline_small.py", 1e12, 1), [dict(event="start", config={})])
    open(os.path.join(sweep.run_dir(out, "baseline_small.py", 1e12, 1), "ckpt.pt"), "w").close()
    write_log(sweep.run_dir(out, "baseline_small.py", 2.5e12, 1), [dict(event="start", config={})])
    # a done line short of the planned iteration is not finished (e.g. the run dir was reused with other settings)
    write_log(sweep.run_dir(out, "baseline_small.py", 2.5e12, 0),
              [dict(event="start", config={}, max_iters=20), dict(event="done", iter=10)])
    compare.main(argv)
    calls = fake_trainer()
    assert len(calls) == 4
    assert [c for c in calls if "--init_from=resume" in c] == [c for c in calls if "b1e12_s1" in c]
    assert all("--batch_size=4" in c for c in calls)
    threads = max(1, len(os.sched_getaffinity(0)) // max(len(sweep.gpus()), 1))  # the default: one job per GPU, or 1
    assert all(c.endswith(f" threads={threads},{threads}") for c in calls)
    assert "trained" in (out / "baseline_small" / "b1e12_s0" / "train.out").read_text()
    assert (out / "results.md").exists()
    printed = capsys.readouterr().out
    assert "sweep: 4 runs (1 configs x 2 budgets x 2 seeds), 0 finished, 4 to run" in printed
    compare.main(argv)  # everything finished: nothing runs
    assert len(fake_trainer()) == 4
    assert capsys.readouterr().out.count("finished, skipping") == 4


def test_sweep_goes_on_after_a_failure(tmp_path, fake_trainer, capsys):
    out = str(tmp_path / "sweep")
    with pytest.raises(SystemExit) as e:
        compare.main([str(tmp_path / "broken.py"), str(tmp_path / "baseline_small.py"),
                      "--budgets", "1e12", "--seeds", "0,1", "--jobs", "2", "--out", out])
    assert e.value.code == 1
    printed = capsys.readouterr().out
    calls = fake_trainer()
    assert len(calls) == 4  # the broken config's failures did not stop the other runs
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert all(c.endswith(f" threads={threads},{threads}") for c in calls)  # two jobs split the cores
    assert sweep.finished(sweep.run_dir(out, "baseline_small.py", 1e12, 1))
    for s in (0, 1):
        d = sweep.run_dir(out, "broken.py", 1e12, s)
        assert f"failed: {d}: exit code 3; last line: boom: something broke" in printed
    assert "2 run(s) failed" in printed


def test_lrs_grid_passes_min_lr_through(tmp_path, fake_trainer, capsys):
    out = tmp_path / "sweep"
    compare.main([str(tmp_path / "baseline_small.py"), "--budgets", "1e12", "--lrs", "1e-3,2.5e-4", "--out", str(out),
                  "--set", "min_lr=1e-5", "--n_boot", "1"])
    calls = fake_trainer()
    assert sorted(os.listdir(out / "baseline_small")) == ["b1e12_lr1e-3_s0", "b1e12_lr2.5e-4_s0"]
    for lr in ("0.001", "0.00025"):
        call = next(c for c in calls if f"--learning_rate={lr} " in c)
        assert "--min_lr=1e-5" in call and call.count("--min_lr=") == 1  # the user's min_lr, not lr/10


def test_bad_sweep_input_is_one_clear_line(tmp_path, fake_trainer, monkeypatch):
    out = str(tmp_path / "sweep")
    cfg = str(tmp_path / "baseline_small.py")
    cases = [(["--no-run", "--out", str(tmp_path / "empty")], "no log.jsonl"),
             (["nope.py", "--budgets", "1e12"], "not found"),
             ([cfg, "--budgets", "2e13,x"], "bad --budgets"),
             ([cfg, "--budgets", "1e12", "--lrs", "fast"], "bad --lrs 'fast'"),
             ([cfg, "--budgets", "1e12", "--lrs", "1e-3", "--set", "learning_rate=1e-3"], "give one"),
             ([cfg, "--budgets", "1e12", "--jobs", "0"], "bad --jobs 0"),
             ([cfg, "--budgets", "1e12", "--jobs", "2", "--launcher", "local"], "no --launcher"),
             ([cfg, "--budgets", "1e12", "--slurm_gpus", "2"], "--slurm_gpus needs --launcher"),
             ([cfg, "--budgets", "1e12", "--launcher", "slurm", "--slurm_time", "0"], "--slurm_time and"),
             ([cfg, "--budgets", "1e12", "--launcher", "slurm"], "are you indeed on a slurm cluster")]
    for argv, msg in cases:
        with pytest.raises(SystemExit, match=msg) as e:
            compare.main(["--out", out] + argv)  # a later --out wins
        assert str(e.value).startswith("compare.py: ") and "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    with pytest.raises(SystemExit, match="needs submitit, which is not installed; pip install submitit"):
        compare.main([cfg, "--budgets", "1e12", "--launcher", "slurm", "--out", out])
    assert fake_trainer() == []


# -----------------------------------------------------------------------------
# real train.py runs: a 2-layer, 16-wide model on a tiny char corpus, ~24 iterations each

TINY_SET = ["n_layer=2", "n_embd=16", "n_head=2", "block_size=16", "batch_size=4", "eval_iters=1",
            "eval_interval=10", "dataset=tiny"]


@pytest.fixture
def tiny(char_data, monkeypatch):
    """The --set flags for tiny runs on the tiny char dataset."""
    monkeypatch.chdir(HERE)  # config/*.py paths
    return [a for kv in TINY_SET + [f"data_dir={char_data}"] for a in ("--set", kv)]


def test_jobs_lrs_real_runs(tmp_path, tiny, capsys):
    out = tmp_path / "sweep"
    compare.main(["config/baseline_small.py", "config/rins_small.py", "--budgets", "1e8", "--lrs", "1e-3,4e-3",
                  "--jobs", "2", "--out", str(out), "--n_boot", "1", *tiny])
    printed = capsys.readouterr().out
    assert "sweep: 4 runs (2 configs x 1 budgets x 2 lrs x 1 seeds), 0 finished, 4 to run" in printed
    assert "running 2 at once" in printed and "[4/4 done, 0 failed" in printed
    for stem in ("baseline_small", "rins_small"):
        for lr in (1e-3, 4e-3):
            d = out / stem / f"b1e8_lr{sweep.fmt_lr(lr)}_s0"
            assert sweep.finished(d), (d / "train.out").read_text()
            cfg = sweep.read_log(d)["start"]["config"]
            assert cfg["learning_rate"] == lr and cfg["min_lr"] == lr / 10 and cfg["n_layer"] == 2


def test_submitit_local_runs_then_skips(tmp_path, tiny, capsys):
    out = tmp_path / "sweep"
    argv = ["config/baseline_small.py", "--budgets", "1e8", "--seeds", "0,1", "--out", str(out), "--launcher", "local",
            "--slurm_cpus", "1", "--slurm_gpus", "0", "--n_boot", "1", *tiny]
    compare.main(argv)
    jobs = os.listdir(out / "submitit")
    for s in (0, 1):
        d = sweep.run_dir(out, "baseline_small.py", 1e8, s)
        assert sweep.finished(d) and "done:" in open(os.path.join(d, "train.out")).read()
    assert "[2/2 done, 0 failed" in capsys.readouterr().out
    compare.main(argv)
    assert capsys.readouterr().out.count("finished, skipping") == 2
    assert os.listdir(out / "submitit") == jobs  # nothing submitted


def test_submitit_run_with_two_gpus_goes_through_torchrun(tmp_path, tiny):
    out = tmp_path / "sweep"
    compare.main(["config/rins_small.py", "--budgets", "1e8", "--out", str(out), "--launcher", "local",
                  "--slurm_gpus", "2", "--slurm_cpus", "1", "--n_boot", "1", *tiny])
    d = sweep.run_dir(out, "rins_small.py", 1e8, 0)
    assert sweep.finished(d) and "(float32, 2 processes)" in open(os.path.join(d, "train.out")).read()
