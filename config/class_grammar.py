# Class-sized run on the grammar (the language with matching brackets and a known floor): the arena's model XS
# (4 layers, d=32) on grammar_match at 4e12 training FLOPs, about two minutes per run on a laptop CPU. At this
# budget the baseline has just learnt to close each subtree with the word that opened it and A^2B, seeing a third
# fewer tokens, has not yet: the gap is one rule, learnt late. Data: python prepare.py grammar_match (35 s).
#   python train.py config/class_grammar.py                                                        # baseline AB
#   python train.py config/class_grammar.py --signature=A^rB --r=2 --out_dir=out/class_grammar_rins   # RINS A^2B
# 2026-12-07, 2-core CPU VM, 2 threads: 119 s, test loss 1.2196 (AB); 130 s, 1.5450 (A^2B; r=1: 2.2032); floor 1.1816.
# The settings and seed of results/grammar_match_xs's 4e12 pair (run there on one thread: 1.2392 and 1.7471).
exec(open("config/arena_baseline.py").read())
out_dir = "out/class_grammar"
dataset = "grammar_match"
n_embd = 32
learning_rate = 1.6e-2  # the grammar sweeps' rate (results/grammar_*)
min_lr = 1.6e-3
flop_budget = 4e12
seed = 0  # the sweep's seed 0: these are its 4e12 runs
