# Two commands: `make repro` runs the pipeline, `make test` runs lint, types and tests.
# Both build .venv from requirements.lock first if it is missing or older than the lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stages are run by DVC as `python -m mnist_pipeline.<stage>`: the venv's python must come first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: .venv repro test test-fast lint types unit params lock bench bench-scale clean

.venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Air-gapped: `make repro MIRROR=../shared/mirror/mnist` (a folder, or a file:// or http(s) URL)
# puts that mirror in place of the public ones through a Hydra override; DATASET picks another
# dataset of conf/dataset/ (`make repro DATASET=fashion_mnist MIRROR=../shared/mirror/fashion_mnist`).
MIRROR ?=
DATASET ?=

repro: $(STAMP)
ifeq ($(MIRROR)$(DATASET),)
	$(BIN)/dvc repro
else
	$(BIN)/dvc exp run -S 'dataset=$(or $(DATASET),mnist)' \
	  $(if $(MIRROR),-S 'datasets.$(or $(DATASET),mnist).mirrors=[$(MIRROR)]')
endif

test: lint types unit

# The quick loop while developing: everything but the DVC end-to-end and real-archive tests.
test-fast: lint types
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Regenerate params.yaml from conf/ after editing conf/ (dvc exp run does it by itself).
params: $(STAMP)
	$(BIN)/mnist-pipeline params

# Re-resolve requirements.lock from pyproject.toml (needs the package registry).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	(echo "# Exact versions for Python 3.11 (make lock regenerates this from pyproject.toml)."; \
	 .lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^pip==') > requirements.lock
	rm -rf .lock-venv

# Benchmarks (results also in benchmarks/results/latest.md): `make bench BENCH_ARGS='--scale 10 --emnist'`;
# --quick tries it on small sizes. `make bench-scale` runs only the scale and floor part.
BENCH_ARGS ?=

bench: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-scale: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench_scale.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
