# GPU arena RINS A^2B: config/gpu_baseline.py with the first 6 layers run twice (18 applications of 12 layers);
# at the same --flop_budget it sees 2/3 of the baseline's tokens. Sizes and sweep: docs/running.md.
exec(open("config/gpu_baseline.py").read())
out_dir = "out/gpu_rins"
signature = "A^rB"
r = 2
eval_r = [1, 2, 3, 4]
