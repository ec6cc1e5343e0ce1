# CPU demo, baseline: a 4-layer char-level GPT on ~1.1 MB of Shakespeare, 2.5e13 training FLOPs.
# make demo runs it next to config/shakespeare_rins.py at the same budget. Measured 2026-11-25, 2 CPU cores,
# seed 0 (as make demo runs it): val loss 1.714 after 4,731 iterations (4.84M tokens), 237 s of training.
# python prepare.py shakespeare_char && python train.py config/shakespeare_baseline.py
out_dir = "out/shakespeare_baseline"
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
