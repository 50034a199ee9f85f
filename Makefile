# Two commands do all the set-up: `make train` and `make test` create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test test-fast test-slurm lint bench clean

# Training needs the core dependencies only; tests, search and the other loggers add the extras.
$(CORE): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(CORE)

$(STAMP): $(CORE)
	$(PY) -m pip install --quiet -e '.[dev,search,mlflow,wandb]'
	touch $(STAMP)

install: $(STAMP)

train: $(CORE)
	$(PY) train.py $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Starts a local SLURM cluster (installs slurm-wlm and munge with apt-get when missing: needs root).
test-slurm: $(STAMP)
	$(PY) -m pytest -q --slurm -m slurm $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf outputs .pytest_cache .ruff_cache
