# Arena RINS A^2B: layers 0-1 run twice, then 2-3 once (6 applications, 1.5x the baseline's compute per token).
# Model S of the character-level arena: 4 layers, d=64, context 128, batch 32 (~0.2M non-embedding
# parameters; the 96-symbol head is ~2% of the training FLOPs). Data: python prepare.py english_char.
# python train.py config/arena_rins.py --flop_budget=1.25e13
# make demo (1e13 FLOPs; 2026-12-01, 2-core CPU, 3.9 min): test loss 1.848 (baseline: 1.746).
out_dir = "out/arena_rins"
dataset = "english_char"
n_layer = 4
n_head = 4
n_embd = 64
block_size = 128
batch_size = 32
learning_rate = 8e-3  # near the best of both arms in the arena's sweep at 1.25e13 (see README)
min_lr = 8e-4
eval_interval = 200
eval_iters = 20
signature = "A^rB"
r = 2
eval_r = [1, 3]
