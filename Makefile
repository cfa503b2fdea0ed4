# One command each on a fresh clone: `make demo` and `make test` install what is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo lint docs test test-fast bench clean

install: $(STAMP)

# torch first and pinned: an unpinned torch pulls GBs of CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,docs]"
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py

# The lint gate: ruff's checks and its formatter (settings in pyproject.toml); `ruff format .` mends the format.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site (mkdocs.yml, docs/) into site/. Strict: a broken link or a page missing from disk fails it.
# bench/summary.py first writes the table of current figures from bench/results/*.json; the CLI reference
# is generated from the Typer app during the build.
docs: install
	$(BIN)/python bench/summary.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs
	$(BIN)/python -m pytest -q tests

# The inner loop: everything but the tests marked slow (kill-and-resume, several processes, long runs).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,bench]"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs site
