# Arena baseline AB: the plain 4-layer GPT every arena variant is measured against.
# Model S of the character-level arena: 4 layers, d=64, context 128, batch 32 (~0.2M non-embedding
# parameters; the 96-symbol head is ~2% of the training FLOPs). Data: python prepare.py english_char.
# The sweep behind README's arena table (its exact commands are in README; logs in results/arena_s):
# python compare.py config/arena_baseline.py config/arena_rins.py --budgets 1.25e13 --lrs 1e-3,2e-3,4e-3,8e-3,1.6e-2 \
#     --out results/arena_s
# make demo (1e13 FLOPs; 2026-12-01, 2-core CPU, 3.5 min): test loss 1.746 (A^2B: 1.848).
out_dir = "out/arena_baseline"
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
