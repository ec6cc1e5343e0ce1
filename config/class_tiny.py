# Class-sized run: the arena's model S (4 layers, d=64, context 128, batch 32) at 6e12 training FLOPs, about a
# minute per run on a laptop CPU. Data: python prepare.py english_char. The same budget for both arms, so the
# recursive run takes a third fewer steps (the run table printed at the start says how many):
#   python train.py config/class_tiny.py                                                  # baseline AB
#   python train.py config/class_tiny.py --signature=A^rB --r=2 --out_dir=out/class_tiny_rins   # RINS A^2B
# 2026-12-03, 2-core CPU VM, 2 threads: 58 s, test loss 1.862 (AB); 60 s, test loss 2.043 (A^2B; r=1: 2.18).
out_dir = "out/class_tiny"
dataset = "english_char"
n_layer = 4
n_head = 4
n_embd = 64
block_size = 128
batch_size = 32
learning_rate = 8e-3  # the arena's best for A^2B at 6.25e12 (docs/arena.md); the baseline's is higher there
min_lr = 8e-4
warmup_iters = 100  # capped at a tenth of the run's iterations (train.py)
flop_budget = 6e12
eval_interval = 100
eval_iters = 10
log_interval = 50
eval_r = [1, 3]
