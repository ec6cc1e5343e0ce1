# MobileLLM immediate block-wise sharing: each layer runs twice in a row (0 0 1 1 ... 7 7).
# python train.py config/blockwise_small.py
out_dir = "out/blockwise_small"
signature = "blockwise"
