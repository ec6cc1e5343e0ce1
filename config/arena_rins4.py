# Arena RINS A^4B: layers 0-1 run four times, then 2-3 once (10 applications, 2.5x the baseline's compute per token).
# Model S of the character-level arena: 4 layers, d=64, context 128, batch 32 (~0.2M non-embedding
# parameters; the 96-symbol head is ~2% of the training FLOPs). Data: python prepare.py english_char.
# For claim 3 (the best r per budget) in model XS: docs/arena.md has the commands (--set n_embd=32).
# python train.py config/arena_rins4.py --flop_budget=1.25e13
out_dir = "out/arena_rins4"
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
r = 4
eval_r = [1, 2, 3, 6, 8]
