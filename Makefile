# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; \
          done)
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql://root@127.0.0.1:5432/test

.PHONY: run test install lint typecheck test-sqlite test-postgres bench clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "leadhub needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

## make run: set up, create or upgrade ./leadhub.db, load demo data when empty, serve http://127.0.0.1:8000
run: install
	$(BIN)/leadhub config init
	$(BIN)/leadhub db upgrade
	$(BIN)/leadhub demo
	$(BIN)/leadhub serve

## make test: every check: ruff, mypy --strict, the suite on SQLite and on PostgreSQL
test: install lint typecheck test-sqlite test-postgres

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

test-sqlite: install
	LEADHUB_TEST_DATABASE_URL= $(BIN)/pytest -q

test-postgres: install
	scripts/ensure-postgres
	LEADHUB_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -q

## make bench: every benchmark beside its anchor (PostgreSQL; minutes each, the backfill ~20 min)
bench: install
	scripts/ensure-postgres
	scripts/ensure-bench-tools
	$(BIN)/python benchmarks/phones.py
	$(BIN)/python benchmarks/intake.py
	$(BIN)/python benchmarks/webhooks.py
	$(BIN)/python benchmarks/meta_sync.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/backfill.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
