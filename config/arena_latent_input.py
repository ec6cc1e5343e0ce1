# Arena latent recurrent depth, input first state: as arena_latent.py (prelude layer 0, core 1-2 iterated
# 1 + Poisson(LogNormal) times with mean r=2, coda layer 3, W [state, prelude] injection, backprop through 2 rounds)
# but the first state is the prelude's output instead of noise. One of the recipes tried to make the trained latent
# model use its rounds: docs/latent.md has the sweep (results/latent_recipes) and the measurements.
out_dir = "out/arena_latent_input"
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
signature = "AB^rC"
partition = "1:2:1"
r = 2
round_sampler = "poisson"
injection = "concat"
state_init = "input"  # the prelude output, not noise
bptt_rounds = 2
eval_r = [1, 3, 4]
