# A^2B at degree 2 (our fractal-substitution hypothesis, not from the paper): each letter
# becomes the A^2B plan of its own half: 0 1 0 1 2 3 | 0 1 0 1 2 3 | 4 5 4 5 6 7 (18 applications).
# python train.py config/degree2_small.py
out_dir = "out/degree2_small"
signature = "A^rB"
r = 2
degree = 2
