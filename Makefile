# The two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run serve test test-clock lint format bench-import bench-c2b bench-reconcile \
	bench-day-close bench-tiny bench-failover failover-packages bench-faults clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Fresh machine -> running service on the embedded SQLite default with the demo fleet.
run: install
	$(BIN)/tuktuk migrate --noinput
	$(BIN)/tuktuk demo
	$(BIN)/tuktuk serve --host $(HOST) --port $(PORT)

# ruff (lint + format check), import-linter (the layers), mypy, then pytest on SQLite,
# PostgreSQL and MariaDB, the three at the same time (each run keeps about one core busy;
# `tools/run_tests.py` without --parallel runs them one after the other).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python tools/run_tests.py --parallel

# The SQLite suite with every test starting at 23:50 Africa/Nairobi, ten minutes before the day
# close (CLOCK_AT=00:00:30 etc. for another instant); needs libfaketime (apt-get install faketime)
# for the processes the tests start. See tests/support/clock_at.py.
CLOCK_AT ?= 23:50
test-clock: install
	$(BIN)/python tools/run_tests.py --backends sqlite --clock-at $(CLOCK_AT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks (not tests): see bench/README.md.
bench-import: install
	$(BIN)/python bench/import_fleet.py $(BENCH_ARGS)

bench-c2b: install
	$(BIN)/python bench/c2b_load.py

bench-reconcile: install
	$(BIN)/python bench/reconcile_bench.py $(BENCH_ARGS)

bench-day-close: install
	$(BIN)/python bench/day_close_bench.py $(BENCH_ARGS)

# Every bench at its tiny size on each database (tests/bench, also part of `make test`): do
# they still run? No figures worth keeping.
bench-tiny: install
	$(BIN)/python tools/run_tests.py --parallel tests/bench

# Fault bench: the PostgreSQL primary killed under C2B load, pg_auto_failover promoting the
# synchronous standby (bench/faults/pg_failover.py, docs/high-availability.md). Debian's
# packages are installed when missing, as .ci/run does for faketime; the test in tests/faults/
# runs only where they are.
FAILOVER_PACKAGES := pg-auto-failover-cli postgresql-15-auto-failover
failover-packages:
	@command -v pg_autoctl >/dev/null \
		&& ls /usr/share/postgresql/*/extension/pgautofailover.control >/dev/null 2>&1 \
		|| (apt-get update && apt-get install -y $(FAILOVER_PACKAGES))

bench-failover: install failover-packages
	$(BIN)/python bench/faults/pg_failover.py $(BENCH_ARGS)

# The fault campaign (tests/faults) with large counts on every database: bench/README.md.
FAULTS_SCENARIO ?= all
bench-faults: install
	$(BIN)/python bench/faults/run.py --scenario $(FAULTS_SCENARIO) --scale large

clean:
	rm -rf $(VENV) var build *.egg-info src/*.egg-info
