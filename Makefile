# The two set-up commands are `make demo` and `make test`; both create .venv and install into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench latency lint constraints clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "okr-sync needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/okr-sync demo

test: install
	$(BIN)/python -m pytest

# The performance benchmark (benchmarks/bench.py; sizes: make bench BENCH_ARGS="--deals 100000").
bench: install
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

# Webhook-to-key-result latency on a real Prefect server (benchmarks/latency.py), then the
# no-change sync time (benchmarks/no_change.py); docs/operations.md has the figures.
latency: install
	$(BIN)/python -m benchmarks.latency $(LATENCY_ARGS)
	$(BIN)/python -m benchmarks.no_change

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-cache  # the floors (README, Architecture): imports point down

# Refresh the pinned versions after changing dependencies in pyproject.toml.
constraints: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -Ev '^(okr-sync|pip|setuptools)==' > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info
