# Stochastic RINS: up to A^3B, rounds drawn per step as 1 + Binomial(2, 1 - p) with skip
# probability p = 0.5 (P(1, 2, 3) = 1/4, 1/2, 1/4); the budget is matched on the expected FLOPs.
# Evaluated at r = 1, 2, 3: it should stay usable at r = 1.
# python train.py config/rins_stoch_small.py
out_dir = "out/rins_stoch_small"
signature = "A^rB"
r = 3
round_sampler = "binomial"
stochastic_p = 0.5
eval_r = [1, 2, 3]
