# SigLIP-style two-tower model, RINS A^2B in one tower or both: config/siglip_fashion.py at the same
# 4e12-FLOP budget (per pair: both towers), with the recursion where rins_tower says; the other tower runs AB.
# The paper's claim: RINS helps language-supervised vision (+2% 0-shot ImageNet, B/16);
# which tower it used is unknown, so run all three:
# python train.py config/siglip_fashion_rins.py                      # image tower
# python train.py config/siglip_fashion_rins.py --rins_tower=text --out_dir=out/siglip_fashion_rins_text
# python train.py config/siglip_fashion_rins.py --rins_tower=both --out_dir=out/siglip_fashion_rins_both
# Device: CPU, 2 cores; measured results and wall time: see the issue-7 report / README.
out_dir = "out/siglip_fashion_rins"
task = "siglip"
dataset = "fashion_mnist"
n_layer = 4
n_head = 4
n_embd = 64
patch_size = 7
batch_size = 250
eval_iters = 40  # 40 x 250 = all 10,000 test images, in order
eval_interval = 500
learning_rate = 2e-3
min_lr = 1e-4
flop_budget = 4e12
signature = "A^rB"
r = 2
rins_tower = "image"  # 'image' | 'text' | 'both'
eval_r = [1, 2]
