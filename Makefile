# vitdream -- two commands: `make lab` and `make test`. Both bootstrap .venv once.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# the CPU build of torch that lies on this kind of machine; GPU machines keep their own torch
TORCH_CPU ?= torch==2.13.0
PLUGIN_DIRS := $(wildcard plugins/vitdream-*/pyproject.toml)
STAMP := $(VENV)/.vitdream-installed
PYTEST_ARGS ?=

.PHONY: install lab test test-fast test-browser bench clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Re-run only when a requirement file changes: running `make test` twice does not reinstall.
$(STAMP): pyproject.toml $(PLUGIN_DIRS) | $(PY)
	@if ! $(PY) -c "import torch" 2>/dev/null; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	    echo "CUDA present: installing the default torch build"; $(PIP) install "torch>=2.4"; \
	  else \
	    echo "No CUDA: installing the CPU build $(TORCH_CPU)"; $(PIP) install "$(TORCH_CPU)"; \
	  fi; \
	fi
	$(PIP) install --quiet -e ".[test,lab]"
	@for d in $(dir $(PLUGIN_DIRS)); do echo "installing plugin $$d"; $(PIP) install --quiet -e "$$d" || exit 1; done
	@bash scripts/ensure_chromium.sh
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --notebook-dir=notebooks

# Tests run torch single-threaded: tiny models gain nothing from more threads, and a kernel,
# JupyterLab and Chromium share the cores during the browser tests. Override: make test TEST_THREADS=2
TEST_THREADS ?= 1
# VITDREAM_QUICK=1 shortens the capability notebooks (docs/course.md); the tour always runs its real path.
TEST_ENV := OMP_NUM_THREADS=$(TEST_THREADS) MKL_NUM_THREADS=$(TEST_THREADS) VITDREAM_QUICK=1

test: $(STAMP)
	@bash scripts/ensure_chromium.sh
	$(TEST_ENV) $(PY) -m pytest tests plugins notebooks --nbmake $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests plugins -m "not browser and not slow" $(PYTEST_ARGS)

test-browser: $(STAMP)
	@bash scripts/ensure_chromium.sh
	$(TEST_ENV) $(PY) -m pytest tests -m browser $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
