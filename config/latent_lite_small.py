# Latent recurrence, lite flavour: the same prelude/core/coda split with additive injection
# (state + prelude output each round), fixed r = 2, full backprop and no extra parameters.
# It isolates loop placement plus injection from Geiping et al.'s training tricks.
# python train.py config/latent_lite_small.py
out_dir = "out/latent_lite_small"
signature = "AB^rC"
partition = "1:2:1"
r = 2
injection = "add"
eval_r = [1, 2, 3]
