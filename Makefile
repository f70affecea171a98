# Two commands: `make repro` runs the pipeline, `make test` runs lint, types and tests.
# `make repro` installs only what the pipeline needs (requirements.lock); `make test` adds the
# development tools and the consumer libraries the tests read exports with (requirements-dev.lock).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# uv installs the locked wheels in seconds where pip takes minutes (measured here: 8 s against
# 140 s for requirements.lock); pip only bootstraps it, at a pinned version. --compile-bytecode
# writes every installed module's .pyc once, as pip does by default and uv does not: where
# PYTHONDONTWRITEBYTECODE is set, every `dvc` command and every stage would otherwise compile
# DVC, numpy and pyarrow from source (README, Quickstart, has the figures).
UV_VERSION := 0.13.9
INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
# Stages are run by DVC as `python -m mnist_pipeline.<stage>`: the venv's python must come first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: .venv .venv-dev repro test test-fast lint types unit params lock bench bench-scale clean

.venv: $(STAMP)
.venv-dev: $(DEV_STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(INSTALL) -r requirements.lock
	$(INSTALL) --no-deps -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(INSTALL) -r requirements-dev.lock
	touch $(DEV_STAMP)

# Air-gapped: `make repro MIRROR=../shared/mirror/mnist` (a folder, or a file:// or http(s) URL)
# tries that mirror before the published ones. It is this machine's setting, not a parameter:
# it reaches the download stage through MNIST_PIPELINE_MIRRORS (README "Mirrors"), so params.yaml
# and dvc.lock stay free of one machine's paths. DATASET picks another dataset of conf/dataset/
# (`make repro DATASET=fashion_mnist MIRROR=../shared/mirror/fashion_mnist`): an experiment.
MIRROR ?=
DATASET ?=
MIRROR_URL = $(if $(findstring ://,$(MIRROR)),$(MIRROR),$(abspath $(MIRROR)))
MIRROR_ENV = $(if $(MIRROR),MNIST_PIPELINE_MIRRORS='$(if $(DATASET),$(DATASET)=)$(MIRROR_URL)' )

repro: $(STAMP)
ifeq ($(DATASET),)
	$(MIRROR_ENV)$(BIN)/dvc repro
else
	$(MIRROR_ENV)$(BIN)/dvc exp run -S 'dataset=$(DATASET)'
endif

test: lint types unit

# The quick loop while developing: everything but the DVC end-to-end, real-archive and large-input
# tests, on both cores.
test-fast: lint types
	$(BIN)/pytest -m "not slow" -n 2

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(DEV_STAMP)
	$(BIN)/mypy

# Both cores: the quick tests spread test by test, then the slow ones (DVC end to end, real
# servers) module by module, so that each module's repository fixture is built once.
unit: $(DEV_STAMP)
	$(BIN)/pytest -m "not slow" -n 2
	$(BIN)/pytest -m slow -n 2 --dist loadfile

# Regenerate params.yaml from conf/ after editing conf/ (dvc exp run does it by itself).
params: $(STAMP)
	$(BIN)/mnist-pipeline params

# Re-resolve both locks from pyproject.toml (needs the package registry): the runtime lock
# from the package alone, the development lock from `.[dev]` constrained to the runtime pins.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e .
	(echo "# Exact versions of what the pipeline needs to run (make lock regenerates this)."; \
	 .lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^pip==') > requirements.lock
	.lock-venv/bin/pip install --quiet -c requirements.lock -e '.[dev]'
	(echo "# Exact versions for make test: requirements.lock plus the development extra (make lock)."; \
	 .lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^pip==') > requirements-dev.lock
	rm -rf .lock-venv

# Benchmarks (results also in benchmarks/results/latest.md): `make bench BENCH_ARGS='--scale 10 --emnist'`;
# --quick tries it on small sizes. `make bench-scale` runs only the scale and floor part.
BENCH_ARGS ?=

bench: $(DEV_STAMP)
	$(INSTALL) -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-scale: $(DEV_STAMP)
	$(INSTALL) -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench_scale.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
