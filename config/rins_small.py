# RINS A^2B: the first half (layers 0-3) runs twice, then the second half once. 12 block applications
# instead of 8 at the same parameters; at the same FLOP budget it sees ~20% fewer tokens than the baseline.
# python train.py config/rins_small.py    (CPU: add --flop_budget=1e14 for a ~10-minute run)
out_dir = "out/rins_small"
signature = "A^rB"
r = 2
eval_r = [1, 2, 3]
