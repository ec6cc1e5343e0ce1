# AB^2: recurse the *late* half instead of the early one (12 applications, same cost as A^2B).
# The "which half" control: RINS says the early half is the one to repeat.
# python train.py config/ab2_small.py
out_dir = "out/ab2_small"
signature = "AB^r"
r = 2
eval_r = [1, 2]
