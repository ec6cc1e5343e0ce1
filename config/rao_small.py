# RAO (AB)^2, MobileLLM's "repeat all over": the whole stack runs twice (16 applications).
# The paper's main rival to RINS at matched parameters and compute.
# python train.py config/rao_small.py
out_dir = "out/rao_small"
signature = "(AB)^r"
r = 2
eval_r = [1, 2]
