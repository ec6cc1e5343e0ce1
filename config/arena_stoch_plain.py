# Arena stochastic RINS A^3B without adapters (the paper's claim 5: near the baseline at r=1, a little below
# deterministic A^3B at full r): each step runs 1 + Binomial(2, 0.5) rounds of A, with no per-round adapters.
# Model S of the character-level arena: 4 layers, d=64, context 128, batch 32 (~0.2M non-embedding
# parameters; the 96-symbol head is ~2% of the training FLOPs). Data: python prepare.py english_char.
# python train.py config/arena_stoch_plain.py --flop_budget=1.25e13
out_dir = "out/arena_stoch_plain"
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
r = 3
round_sampler = "binomial"
stochastic_p = 0.5
eval_r = [1, 2, 3]
