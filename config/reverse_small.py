# MobileLLM reverse sharing: layers 0..7, then 7..0 (16 applications).
# python train.py config/reverse_small.py
out_dir = "out/reverse_small"
signature = "reverse"
