# The two set-up commands: `make demo` (the main job) and `make test`.
# Each creates .venv and installs everything from pyproject.toml on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help venv lint typecheck test test-fast demo soak bench build clean

help:
	@echo "make demo   - run the example DAGs against the built-in Confluence simulator (real 'airflow dags test')"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make bench  - performance benchmark (writes BENCHMARKS.md)"
	@echo "make soak   - fault-injection soak (writes RELIABILITY.md)"
	@echo "make clean  - remove the virtual environment and build outputs"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check airflow_provider_confluence tests example_dags benchmarks integration

typecheck: venv
	$(BIN)/mypy airflow_provider_confluence

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not e2e and not soak" $(PYTEST_ARGS)

demo: venv
	@bash scripts/demo.sh "$(BIN)"

soak: venv
	CONFLUENCE_SOAK_WRITE_REPORT=1 $(BIN)/python -m pytest -m soak -s tests/test_soak.py

bench: venv
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench.py

build: venv
	$(BIN)/python -m pip install --quiet build
	$(BIN)/python -m build

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

# The provider in a real Airflow deployment (scheduler, dag-processor, triggerer, api-server,
# LocalExecutor, PostgreSQL, the built wheel in a fresh venv, headless Chromium): see README,
# "Integration tests". Own venvs under .venv-integration/; installs PostgreSQL and Chromium if missing.
INTEGRATION_ARGS ?=
.PHONY: test-integration
test-integration:
	@bash integration/run.sh $(INTEGRATION_ARGS)
