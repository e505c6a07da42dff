# `make run` and `make test` work on a fresh machine: the first use creates .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# Defaults for `make run`; the environment overrides them. honcho gives the first process of
# the Procfile (web) exactly $PORT.
export DATA_DIR ?= var
export ESDB_PORT ?= 2113
# esdblocal's HTTP API and stream browser (make run prints the URL).
export ESDB_HTTP_PORT ?= 2114
export PORT ?= 8000

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Starts every process of the Procfile: the web API (gunicorn), the projector and esdblocal.
# With ESDB_URI pointing at a real EventStoreDB, esdblocal is left out.
run: $(STAMP)
	@if [ -n "$$ESDB_URI" ]; then \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $(VENV)/bin/honcho start web projector; \
	else \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $(VENV)/bin/honcho start; \
	fi

test: lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/throughput.py
	$(PY) bench/esdblocal_bench.py
	$(PY) bench/long_stream_bench.py
	$(PY) bench/paging_bench.py
	$(PY) bench/worker_bench.py
	$(PY) bench/soak.py --quick
	$(PY) bench/persistent_bench.py
	$(PY) bench/projections_bench.py
	$(PY) bench/http_bench.py

# Emmett's Express sample, the peer of bench/peer.py (issue 28), built in var/emmett (git-ignored,
# never committed; EMMETT_DIR moves it). Without GitHub, put the tree there by hand (see
# bench/peer.py's docstring); the clone is skipped when the sample is already there.
EMMETT_DIR ?= var/emmett
EMMETT_URL ?= https://github.com/event-driven-io/emmett
EMMETT_COMMIT ?= 97b16c567711c907a6739aa7b38272d01e7c169d
EMMETT_SAMPLE := $(EMMETT_DIR)/samples/webApi/expressjs-with-esdb
.PHONY: peer
peer:
	@if [ ! -f $(EMMETT_SAMPLE)/package.json ]; then \
		set -e; mkdir -p $(EMMETT_DIR); git -C $(EMMETT_DIR) init -q; \
		git -C $(EMMETT_DIR) fetch -q --depth 1 $(EMMETT_URL) $(EMMETT_COMMIT); \
		git -C $(EMMETT_DIR) checkout -q FETCH_HEAD; \
	fi
	cd $(EMMETT_SAMPLE) && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
