# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   train + evaluate on built-in data (creates .venv on first use)
#   make test   the whole test suite (also installs Chromium for the browser test)
#   make check  the fast loop: lint, types, unit tests (not part of set-up)
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint benchmark clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel first, pinned exactly: anything else pulls gigabytes of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev,spark,service,report]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fraudvae demo --out demo_output

# Two workers, one test file each at a time (--dist loadfile keeps a file's module fixtures
# in one process); the longest files are collected first (tests/conftest.py) and handed out
# in that order (--no-loadscope-reorder: xdist would otherwise start with the files holding
# the most tests, and the README's one long test would run last, alone).
test: $(STAMP)
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=25

# The fast loop (under two minutes): lint, types and the unit tests (not the slow tier).
check: lint
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check fraudvae service tests benchmarks
	$(BIN)/ruff format --check fraudvae service tests benchmarks
	$(BIN)/mypy

benchmark: $(STAMP)
	$(BIN)/python benchmarks/detection.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .mypy_cache .ruff_cache
