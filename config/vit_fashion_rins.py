# ViT on Fashion-MNIST, RINS A^2B: config/vit_fashion.py with layers 0-1 run twice (6 of 4 layers,
# 1.5x the block FLOPs per image), at the same 4e12-FLOP budget, so it sees ~1/3 fewer images.
# Expected: no better than the baseline (the paper's negative control); scored at r = 1, 2, 3.
# python prepare.py fashion_mnist && python train.py config/vit_fashion_rins.py
# Device: CPU, 2 cores; measured results and wall time: see the issue-7 report / README.
out_dir = "out/vit_fashion_rins"
task = "vit"
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
eval_r = [1, 2, 3]
