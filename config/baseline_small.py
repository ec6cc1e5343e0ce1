# Baseline AB: the plain 8-layer GPT that every *_small variant is measured against.
# Shape, data (english, GPT-2 BPE) and the 1e15-FLOP budget are train.py's defaults, shared by all
# *_small configs, so each variant file differs from this one only in its recursion fields.
# python prepare.py english && python train.py config/baseline_small.py
out_dir = "out/baseline_small"
