# vaultgate: `make run` starts the vault, `make test` passes the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= .vaultgate

LOCK   := requirements.lock
UV     := $(BIN)/uv
UV_VERSION ?= 0.13.9

.PHONY: run test lint typecheck bench clean lock

# The server and dev dependencies install from the lock file, with hashes (`make lock` writes it
# after a change to pyproject.toml). uv does it several times faster than pip; where uv cannot be
# installed, pip installs the same file. The last step adds only what the lock lacks (a
# dependency added without `make lock`), which tests/unit/test_lock_file.py then reports.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION) || echo "uv not installable: installing with pip"
	if [ -x $(UV) ]; then \
	  $(UV) pip install --quiet --python $(BIN)/python -r $(LOCK) && \
	  $(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'; \
	else \
	  $(BIN)/pip install --quiet -r $(LOCK) && $(BIN)/pip install --quiet -e '.[dev]'; \
	fi
	touch $(STAMP)

# Pin every dependency for all platforms from pyproject.toml, keeping the pins it can (the SDK's
# own range stays open in pyproject); `make lock LOCK_ARGS=--upgrade` moves them all to the newest.
lock:
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	[ -x $(UV) ] || $(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(UV) pip compile pyproject.toml --extra dev --universal --generate-hashes \
	  --quiet --output-file $(LOCK) $(LOCK_ARGS)

run: $(STAMP)
	$(BIN)/vaultgate serve --init --data-dir $(DATA)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy src/vaultgate

# The suite mostly waits on real servers (vaults, `serve` fleets, PostgreSQL, Chromium), so it runs
# on TEST_WORKERS pytest-xdist processes; --dist loadfile keeps each file on one worker so its
# module-scoped servers start once. --no-loadscope-reorder hands files out in collection order
# (e2e, functional, then unit): by default xdist starts the files with the most tests first, which
# left the few-test, minute-long fleet and browser files for the end, all at once.
# `.venv/bin/pytest tests/unit/x.py` still runs in one process.
TEST_WORKERS ?= 4
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	@command -v wrk >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq wrk nginx >/dev/null) || \
	  echo "wrk missing and not installable here"
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
