# ViT on Fashion-MNIST, baseline: RINS's negative control in the paper. 4 pre-LN layers, d=64,
# 7x7 patches (16 per image, mean-pooled), 4e12 training FLOPs; config/vit_fashion_rins.py is its A^2B twin.
# Expected: the twin is no better (the paper finds no RINS gain for supervised image classification).
# python prepare.py fashion_mnist && python train.py config/vit_fashion.py
# Device: CPU, 2 cores; measured results and wall time: see the issue-7 report / README.
out_dir = "out/vit_fashion"
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
