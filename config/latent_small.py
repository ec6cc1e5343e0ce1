# Latent recurrent depth (Geiping et al. 2025), faithful flavour: prelude (layers 0-1), core (2-5)
# iterated, coda (6-7). Each iteration sees W [state, prelude output] (W: 2d -> d, no bias); the first
# state is noise; the iteration count is 1 + Poisson(LogNormal) with mean r = 2 (12 applications on
# average, like A^2B), drawn once per step; backprop through the last 2 iterations only.
# python train.py config/latent_small.py
out_dir = "out/latent_small"
signature = "AB^rC"
partition = "1:2:1"
r = 2
round_sampler = "poisson"
injection = "concat"
state_init = "noise"
bptt_rounds = 2
eval_r = [1, 2, 3, 4]
