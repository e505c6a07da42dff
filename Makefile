# `make run` and `make test` work on a fresh machine: the first use creates .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

DATA_DIR ?= var
ESDB_PORT ?= 2113

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Starts everything that exists: esdblocal (unless ESDB_URI points at a real server).
run: $(STAMP)
	@if [ -n "$$ESDB_URI" ]; then \
		echo "ESDB_URI is set ($$ESDB_URI): nothing local to start."; \
	else \
		exec $(PY) -m esdblocal --host 127.0.0.1 --port $(ESDB_PORT) --data $(DATA_DIR)/esdb; \
	fi

test: lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/esdblocal_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
