# RINS A^3B: the first half runs three times (16 applications, 2x the baseline's block compute).
# python train.py config/rins3_small.py
out_dir = "out/rins3_small"
signature = "A^rB"
r = 3
eval_r = [1, 2, 3, 4]
