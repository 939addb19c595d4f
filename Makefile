# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   seed demo data and run the pipeline on the embedded default (DuckDB)
#   make test   run the test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW_ML_HOME ?= $(CURDIR)/.ml
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export UV_PYTHON_DOWNLOADS := never

# The demo world: DEMO_DAYS of events ending on DEMO_DATE, tastes drifting from DRIFT_FROM.
# HISTORY_FROM..DEMO_DATE-1 is the feature history the training run reads: its fit,
# early-stopping and test windows (pipeline.yaml windows) start 46 days before DEMO_DATE,
# and the events start a full feature lookback (28 days) before that.
DEMO_DATE ?= 2026-03-31
DEMO_DAYS ?= 74
DRIFT_FROM ?= 2026-03-29
HISTORY_FROM ?= 2026-02-13
HISTORY_TO ?= 2026-03-30
# A day before the drift shows in the features, for the clean half of the drift demo.
CLEAN_DATE ?= 2026-03-28
# Served dates whose 7-day horizon ends inside the world, for realized outcomes; the
# recsys_outcomes run of OUTCOMES_RUN judges OUTCOME_TO (run date - horizon - 1 day).
OUTCOME_FROM ?= 2026-03-22
OUTCOME_TO ?= 2026-03-24
OUTCOMES_RUN ?= 2026-04-01

.PHONY: help install system-deps demo airflow validate test e2e system-test lint bench lock airflow-db clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements/constraints.txt setup.cfg pyproject.toml
	@echo "==> creating $(VENV) with $(PYTHON) and installing pinned dependencies (uv $(UV_VERSION))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install -q -c requirements/constraints.txt -e ".[dev]"
	@touch $@

install: $(BIN)/.installed ## create .venv and install the package with pinned deps

$(AIRFLOW_HOME)/airflow.db: $(BIN)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	@echo "==> initialising the Airflow metadata DB in $(AIRFLOW_HOME)"
	@$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -40 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

airflow-db: $(AIRFLOW_HOME)/airflow.db ## initialise the local Airflow metadata DB

demo: install airflow-db ## the whole pipeline on the embedded default: seed, features, train, recommend, drift, outcomes
	@rm -rf $(AIRFLOW_ML_HOME)/warehouse.duckdb $(AIRFLOW_ML_HOME)/warehouse.duckdb.wal $(AIRFLOW_ML_HOME)/artifacts
	$(BIN)/airflow-ml seed-demo --end-date $(DEMO_DATE) --days $(DEMO_DAYS) --drift-from $(DRIFT_FROM)
	@echo "==> feature history $(HISTORY_FROM)..$(HISTORY_TO) (what a backfill of recsys_features would write)"
	@$(BIN)/airflow-ml features --date $(HISTORY_FROM) --to $(HISTORY_TO) --no-preflight -q
	@./scripts/dags-test.sh recsys_features $(DEMO_DATE)
	@./scripts/dags-test.sh recsys_training $(DEMO_DATE)
	@./scripts/dags-test.sh recsys_batch_inference $(DEMO_DATE)
	@echo "==> drift: a clean day ($(CLEAN_DATE)) and a drifted day ($(DEMO_DATE))"
	@./scripts/dags-test.sh recsys_batch_inference $(CLEAN_DATE)
	@./scripts/dags-test.sh recsys_drift $(CLEAN_DATE)
	@./scripts/dags-test.sh recsys_drift $(DEMO_DATE)
	@echo "==> realized outcomes: serve $(OUTCOME_FROM)..$(OUTCOME_TO), then judge each date's lists (and the global popularity list) on the 7 days after it"
	@$(BIN)/airflow-ml recommend --date $(OUTCOME_FROM) --to $(OUTCOME_TO) > $(AIRFLOW_HOME)/recommend.log 2>&1 || (tail -30 $(AIRFLOW_HOME)/recommend.log; exit 1)
	@grep -E "^Recommendations for" $(AIRFLOW_HOME)/recommend.log | sed -e 's/^/    /'
	@./scripts/dags-test.sh recsys_outcomes $(OUTCOMES_RUN)
	@$(BIN)/airflow-ml outcomes --date $(OUTCOME_FROM) --to $(OUTCOME_TO) -q
	@echo "==> models (ndcg@10 of the model over every user active on the held-out test window vs the strongest simple ranker, and candidate recall)"
	@$(BIN)/airflow-ml models list
	@$(BIN)/airflow-ml recommendations --date $(DEMO_DATE)
	@$(BIN)/airflow-ml tables
	@echo "==> see it in the Airflow UI: make airflow, then open http://localhost:8080 and the Models, Drift and Recommendations pages"
	@echo "Warehouse: $(AIRFLOW_ML_HOME)/warehouse.duckdb (open it with: $(BIN)/python -c \"import duckdb; print(duckdb.connect('$(AIRFLOW_ML_HOME)/warehouse.duckdb', read_only=True).sql('FROM features LIMIT 5'))\")"

system-deps: ## Debian packages the tests need (Chromium for the UI test; PostgreSQL and Redis for the e2e layout)
	@./scripts/install-system-deps.sh

validate: install ## check every pipeline's contract, SQL and model.py on a tiny DuckDB sample (seconds, no cloud)
	@for p in dags/*/pipeline.yaml; do $(BIN)/airflow-ml validate --pipeline $$p || exit 1; done

AIRFLOW_PORT ?= 8080

# scripts/airflow-local.py: the venv's bin first on PATH, the port checked first, a bounded start-up
# that names a component that died, and Ctrl-C / SIGTERM stopping every component (no orphans).
airflow: install airflow-db ## start Airflow (standalone) on the embedded default with the ML pages; run make demo first for data
	@test -f $(AIRFLOW_ML_HOME)/warehouse.duckdb || echo "==> no warehouse yet: the ML pages will be empty until you run 'make demo'"
	@echo "    ML pages: Browse > Models, Drift, Recommendations (or http://localhost:$(AIRFLOW_PORT)/ml/models)"
	@AIRFLOW_PORT=$(AIRFLOW_PORT) $(BIN)/python scripts/airflow-local.py

# The real-Airflow e2e tests run alone (one cluster, timing-sensitive faults); the rest runs on
# two xdist workers, which CI's two cores keep busy (tests spawn Airflow and trainer processes).
TEST_WORKERS ?= 2

test: install system-deps ## run the test suite: e2e on a real Airflow, then unit and integration on $(TEST_WORKERS) workers (system tests skip without GCP)
	$(BIN)/pytest tests/e2e
	$(BIN)/pytest -n $(TEST_WORKERS) --ignore=tests/e2e

e2e: install system-deps ## only the real-Airflow tests (PostgreSQL + CeleryExecutor + Redis): pipeline, 7-day backfill, SIGKILL faults, worker crash, UI
	$(BIN)/pytest tests/e2e

system-test: install ## the system tests on a real GCP project (needs SYSTEM_TESTS_GCP_PROJECT, _BUCKET, TRAINING_IMAGE; docs/gcp.md)
	@test -n "$$SYSTEM_TESTS_GCP_PROJECT" || { echo "set SYSTEM_TESTS_GCP_PROJECT (and SYSTEM_TESTS_GCP_BUCKET, SYSTEM_TESTS_TRAINING_IMAGE): see docs/gcp.md"; exit 2; }
	$(BIN)/pytest tests/system -m system -v

lint: install ## ruff and mypy
	$(BIN)/ruff check airflow_ml_provider dags tests bench
	$(BIN)/ruff format --check airflow_ml_provider dags tests bench
	$(BIN)/mypy airflow_ml_provider

# Peak RSS of batch inference at these candidate row counts, users fixed (bench/memory.py).
MEMORY_ROWS ?= 5000000,20000000,50000000

bench: install ## benchmarks (ratios against baselines measured in the same run; JSON last)
	$(BIN)/python bench/training.py --threads 1 $(BENCH_ARGS)
	$(BIN)/python bench/drift.py $(DRIFT_BENCH_ARGS)
	$(BIN)/python bench/batch_inference.py --threads 1 $(INFERENCE_BENCH_ARGS)
	$(BIN)/python bench/shards.py --threads 1 $(SHARDS_BENCH_ARGS)
	$(BIN)/python bench/memory.py --threads 1 --rows $(MEMORY_ROWS) $(MEMORY_BENCH_ARGS)
	$(BIN)/python bench/cost.py $(COST_BENCH_ARGS)
	$(BIN)/python bench/scale.py $(SCALE_BENCH_ARGS)
	$(BIN)/python bench/cli_startup.py $(CLI_BENCH_ARGS)

lock: ## re-resolve requirements/constraints.txt from requirements/requirements.in (needs uv)
	uv pip compile -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" requirements/requirements.in -o requirements/constraints.txt

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) .airflow .ml
