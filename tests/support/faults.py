"""
Fault injection for test_reliability.py: runs a script (train.py) in-process with hooks, so a test can
SIGKILL it at an exact point or watch what it does.

    python tests/support/faults.py train.py --key=value ...

FAULT_MODE=die_after_save  FAULT_N=k : SIGKILL right after the k-th checkpoint is on disk
FAULT_MODE=die_in_save     FAULT_N=k FAULT_FRAC=f : write fraction f of the (k+1)-th checkpoint, then SIGKILL
FAULT_MODE=record          FAULT_OUT=dir : keep the drawn training rounds and the checkpoint saves in dir/rank<R>.json
"""

import io
import json
import os
import runpy
import signal
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))  # the repository

import torch  # noqa: E402

import checkpoint  # noqa: E402
import model  # noqa: E402

mode, n = os.environ["FAULT_MODE"], int(os.environ.get("FAULT_N", "0"))
saves, rounds = [], []
real_save_checkpoint, real_torch_save, real_sample_r = checkpoint.save_checkpoint, torch.save, model.Plan.sample_r


def save_checkpoint(obj, path):
    real_save_checkpoint(obj, path)
    saves.append(obj["iter_num"])
    record()
    if mode == "die_after_save" and len(saves) == n:
        os.kill(os.getpid(), signal.SIGKILL)


def torch_save(obj, f, *args, **kw):
    if mode == "die_in_save" and len(saves) == n:
        buf = io.BytesIO()
        real_torch_save(obj, buf)
        data = buf.getvalue()
        f.write(data[:int(len(data) * float(os.environ["FAULT_FRAC"]))])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_torch_save(obj, f, *args, **kw)


def sample_r(self, generator):
    rounds.append(real_sample_r(self, generator))
    record()
    return rounds[-1]


def record():  # rewritten at every event, not at exit: train.py leaves DDP runs through os._exit (no atexit)
    if mode == "record":
        with open(os.path.join(os.environ["FAULT_OUT"], f"rank{os.environ.get('RANK', '0')}.json"), "w") as f:
            json.dump({"rounds": rounds, "saves": saves}, f)


checkpoint.save_checkpoint, torch.save, model.Plan.sample_r = save_checkpoint, torch_save, sample_r
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
