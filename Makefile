# Two commands: `make repro` runs the pipeline, `make test` runs lint, types and tests.
# Both build .venv from requirements.lock first if it is missing or older than the lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stages are run by DVC as `python -m pipeline.<stage>`: the venv's python must come first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: .venv repro test lint types unit params lock bench clean

.venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Air-gapped: `make repro MIRROR=../shared/mirror/mnist` (a folder, or a file:// or http(s) URL)
# puts that mirror in place of the public ones through a Hydra override.
MIRROR ?=

repro: $(STAMP)
ifeq ($(MIRROR),)
	$(BIN)/dvc repro
else
	$(BIN)/dvc exp run -S 'dataset.mirrors=[$(MIRROR)]'
endif

test: lint types unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Regenerate params.yaml from conf/ after editing conf/ (dvc exp run does it by itself).
params: $(STAMP)
	$(BIN)/python -m pipeline.params

# Re-resolve requirements.lock from pyproject.toml (needs the package registry).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	(echo "# Exact versions for Python 3.11 (make lock regenerates this from pyproject.toml)."; \
	 .lock-venv/bin/pip freeze --exclude-editable) > requirements.lock
	rm -rf .lock-venv

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
