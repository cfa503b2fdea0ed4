# One command each on a fresh clone: `make demo` and `make test` install what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo lint test test-fast bench clean

install: $(STAMP)

# torch first and pinned: an unpinned torch pulls GBs of CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py

# The lint gate: ruff's checks and its formatter (settings in pyproject.toml); `ruff format .` mends the format.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q tests

# The inner loop: everything but the tests marked slow (kill-and-resume, several processes, long runs).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,bench]"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs
