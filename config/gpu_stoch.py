# GPU arena stochastic RINS: A^rB with up to 3 rounds, each extra round kept with p = 0.5 during training, and
# rank-8 per-round adapters (the paper's no-regret recipe); scored at r = 1, 2, 3. Sizes and sweep: docs/running.md.
exec(open("config/gpu_baseline.py").read())
out_dir = "out/gpu_stoch"
signature = "A^rB"
r = 3
round_sampler = "binomial"
stochastic_p = 0.5
adapter = "per_round"
adapter_rank = 8
eval_r = [1, 2, 3]
