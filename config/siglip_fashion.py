# SigLIP-style two-tower model on Fashion-MNIST captions, baseline. Image tower: the 4-layer d=64 ViT of
# config/vit_fashion.py; text tower: a 4-layer d=64 causal transformer over caption words (12 tokens),
# pooled at the last word; 64-d L2-normalised embeddings, sigmoid loss (t = 10, b = -10 at init).
# Captions are "template [tone] [style] name" (prepare.py); the 0-shot accuracy uses 5 held-out templates.
# python prepare.py fashion_mnist && python train.py config/siglip_fashion.py
# Device: CPU, 2 cores; measured results and wall time: see the issue-7 report / README.
out_dir = "out/siglip_fashion"
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
