# The README's two commands: `make run` and `make test`. Both build .venv from scratch if needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: run test lint typecheck unit e2e bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned: the CPU build. An unpinned resolve could fetch a multi-GB CUDA build.
$(VENV)/.torch: $(BIN)/python
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.torch pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/ppo-explorer

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/pytest

test: lint typecheck unit

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/core_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
