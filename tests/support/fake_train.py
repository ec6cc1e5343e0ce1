"""
A stand-in for train.py in test_sweep.py: appends its command line to calls.txt beside the config file,
fails for a config named *broken*, and otherwise logs a finished run whose numbers follow its arguments.
"""

import json
import os
import sys

cfg, args = sys.argv[1], dict(a[2:].split("=", 1) for a in sys.argv[2:])
with open(os.path.join(os.path.dirname(cfg), "calls.txt"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + f" threads={os.environ['NANORINS_THREADS']},{os.environ['OMP_NUM_THREADS']}\n")
if "broken" in cfg:
    print("boom: something broke\n=====")  # the rule, as torchrun ends its report, must not hide the reason
    sys.exit(3)
b, out = float(args["flop_budget"]), args["out_dir"]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "log.jsonl"), "a") as f:
    f.write(json.dumps(dict(event="start", config=dict(seed=int(args["seed"]), r=1), flop_budget=b)) + "\n")
    done = dict(event="done", iter=10, tokens=int(b / 1e6), flops=b, val_loss=3.0 + int(args["seed"]) / 10)
    f.write(json.dumps(done) + "\n")
print("trained", out)
