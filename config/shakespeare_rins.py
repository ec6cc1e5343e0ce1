# CPU demo, RINS A^2B: the same model and budget as config/shakespeare_baseline.py, layers 0-1 run twice.
# Costs 1.49x per token, so it sees 33% fewer tokens (the price of compute matching). Measured 2026-11-25,
# 2 CPU cores, seed 0 (make demo): val loss 1.775 at r=2 (1.886 at r=1, 1.860 at r=3), 3,164 iterations, 271 s:
# the baseline wins here.
# python prepare.py shakespeare_char && python train.py config/shakespeare_rins.py
out_dir = "out/shakespeare_rins"
dataset = "shakespeare_char"
n_layer = 4
n_head = 4
n_embd = 128
block_size = 64
batch_size = 16
learning_rate = 2e-3
min_lr = 2e-4
eval_interval = 250
eval_iters = 20
flop_budget = 2.5e13
signature = "A^rB"
r = 2
eval_r = [1, 2, 3]
