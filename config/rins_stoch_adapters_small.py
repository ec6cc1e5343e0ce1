# Stochastic RINS + linear adapters, the paper's "no-regret" recipe: after the k-th application of A,
# h += U_k norm(h), U_k rank 16 and zero-initialised (3 adapters: 0.39% of the non-embedding params).
# Claim to test: better than the baseline even when run at r = 1.
# python train.py config/rins_stoch_adapters_small.py
out_dir = "out/rins_stoch_adapters_small"
signature = "A^rB"
r = 3
round_sampler = "binomial"
stochastic_p = 0.5
adapter = "per_round"
adapter_rank = 16
eval_r = [1, 2, 3]
