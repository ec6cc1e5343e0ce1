# GPU arena baseline: the GPT-2-small shape (12 layers, d=768, 12 heads: 85 M non-embedding parameters), context
# 1024, GPT-2 BPE on FineWeb-Edu. Data: python prepare.py fineweb_edu --max_tokens=4e9  (needs the network)
# The other sizes keep every other setting (docs/running.md has the sweep commands and the GPU-hours table):
#   ~20 M:  --n_layer=8 --n_embd=448 --n_head=7      ~300 M: --n_layer=24 --n_embd=1024 --n_head=16
# python train.py config/gpu_baseline.py --flop_budget=1e18 --dry_run   (iterations, tokens, predicted hours)
out_dir = "out/gpu_baseline"
dataset = "fineweb_edu"
n_layer = 12
n_head = 12
n_embd = 768
block_size = 1024
batch_size = 32
gradient_accumulation_steps = 16  # 512 sequences, 0.5 M tokens per step, as GPT-2 and nanoGPT use
learning_rate = 6e-4  # nanoGPT's GPT-2-small value; tune with compare.py --lrs at the smallest budget
min_lr = 6e-5
warmup_iters = 200
weight_decay = 0.1
eval_interval = 250
eval_iters = 40
flop_budget = 1e18
