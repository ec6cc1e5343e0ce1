# Arena stochastic RINS A^3B + adapters, the paper's no-regret recipe: each step runs 1 + Binomial(2, 0.5) rounds
# of A; after round k, h += U_k norm(h) with rank-4 zero-initialised U_k (3 adapters, 1,536 params = 0.76%).
# Model S of the character-level arena: 4 layers, d=64, context 128, batch 32 (~0.2M non-embedding
# parameters; the 96-symbol head is ~2% of the training FLOPs). Data: python prepare.py english_char.
# python train.py config/arena_stoch.py --flop_budget=1.25e13
out_dir = "out/arena_stoch"
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
adapter = "per_round"
adapter_rank = 4
eval_r = [1, 2, 3]
