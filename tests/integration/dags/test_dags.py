"""The reference DAGs parse fast with no connections, and run under a real `airflow dags test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.paths import DAGS_DIR, REPO, SQL_DIR
from tests.small_world import small_world_dags

DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py"))
#: Budget for parsing one reference DAG file in a fresh interpreter, beyond what a minimal DAG
#: with an asset costs in the same conditions (measured beside it: Airflow's providers manager
#: loads every provider's asset handlers on the first Asset, seconds on a loaded machine).
PARSE_BUDGET_SECONDS = 5.0
MINIMAL_DAG = """
import pendulum
from airflow.sdk import DAG, Asset
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("minimal", schedule=[Asset(name="a", uri="ml-platform://a/b")], start_date=pendulum.datetime(2000, 1, 1)):
    EmptyOperator(task_id="t")
"""
#: Modules a DAG file must not import at parse time (they belong inside tasks).
HEAVY = ("pandas", "lightgbm", "google.cloud.bigquery", "duckdb", "sqlglot")


def test_dags_import_without_errors_or_connections(monkeypatch, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    for key in list(os.environ):
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.delenv(key)
    monkeypatch.syspath_prepend(str(DAGS_DIR))  # as Airflow's DAG processor does
    bag = DagBag(dag_folder=str(DAGS_DIR))
    assert bag.import_errors == {}
    assert {"recsys_features", "recsys_training", "recsys_outcomes"} <= set(bag.dag_ids)
    outcomes = bag.get_dag("recsys_outcomes")
    assert outcomes.get_task("outcomes").upstream_task_ids == {"served"}
    # The served date comes from the contract's 7-day horizon: the run of April 9 judges April 1.
    assert outcomes.user_defined_macros["served_date"]("2026-04-09") == "2026-04-01"
    dag = bag.get_dag("recsys_features")
    assert dag.doc_md and "Owners" in dag.doc_md
    steps = {"user_features", "item_features", "candidates"}
    assert {t.task_id for t in dag.tasks} == {"source_checks", *steps, "features", "data_checks"}
    assert all(dag.get_task(t).upstream_task_ids == {"source_checks"} for t in steps)
    assert dag.get_task("features").upstream_task_ids == steps
    assert dag.get_task("data_checks").upstream_task_ids == {"features"}


def _parse(dag_file: Path) -> dict:
    """Seconds to parse ``dag_file`` in a fresh interpreter (after ``import airflow.sdk``), and heavy modules loaded."""
    script = (
        "import sys, time, runpy\n"
        f"sys.path.insert(0, {str(DAGS_DIR)!r})\n"  # Airflow puts the DAGs folder on sys.path
        "import airflow.sdk\n"  # Airflow itself is the scheduler's cost, not the DAG's
        "t = time.perf_counter()\n"
        f"runpy.run_path({str(dag_file)!r})\n"
        "took = time.perf_counter() - t\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(__import__('json').dumps({'seconds': took, 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_within_budget_and_without_heavy_imports(dag_file: Path, tmp_path: Path):
    """A fresh interpreter parses the file; pandas, lightgbm and google.cloud stay unloaded."""
    minimal = tmp_path / "minimal_dag.py"
    minimal.write_text(MINIMAL_DAG)
    baseline = _parse(minimal)["seconds"]
    report = _parse(dag_file)
    assert report["heavy"] == []
    assert report["seconds"] - baseline < PARSE_BUDGET_SECONDS, {**report, "minimal_dag_seconds": baseline}


def _airflow_env(tmp_path: Path, warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        # The reference DAGs with the small-world gate: these worlds have a few hundred users.
        AIRFLOW__CORE__DAGS_FOLDER=str(small_world_dags(tmp_path / "dags")),
        AIRFLOW_ML_SQL_DIR=str(SQL_DIR),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_ML_HOME=str(warehouse.parent),
    )
    return env


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.integration
def test_airflow_dags_test_recsys_features_twice_is_idempotent(tmp_path):
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.demo import DemoConfig, generate

    warehouse = tmp_path / "ml" / "warehouse.duckdb"
    wh = DuckDBWarehouse(warehouse)
    world = generate(DemoConfig(users=300, items=80, days=40))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    env = _airflow_env(tmp_path, warehouse)
    migrate = _airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    def run_and_checksum() -> dict:
        started = time.monotonic()
        out = _airflow(env, "dags", "test", "recsys_features", "2026-03-30")
        assert out.returncode == 0 and "state=success" in out.stdout + out.stderr, (out.stdout + out.stderr)[-4000:]
        assert time.monotonic() - started < 300
        with wh.connect(read_only=True) as con:
            return {
                t: con.execute(
                    f"SELECT count(*), sum(hash(x)), min(as_of_date), max(as_of_date) FROM {t} AS x"
                ).fetchone()
                for t in ("user_features", "item_features", "candidates", "features")
            }

    first = run_and_checksum()
    assert all(v[0] > 0 for v in first.values())
    assert all(str(v[2]) == str(v[3]) == "2026-03-30" for v in first.values())
    assert run_and_checksum() == first

    # A date before the contract's start_date (2026-01-17) fails and says why, writing nothing.
    early = _airflow(env, "dags", "test", "recsys_features", "2026-01-16")
    log = early.stdout + early.stderr
    assert early.returncode != 0, log[-4000:]
    assert "logical date 2026-01-16 is before the pipeline's start_date 2026-01-17" in log, log[-4000:]
    assert "set start_date earlier in the contract" in log
    with wh.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM features WHERE as_of_date = '2026-01-16'").fetchone() == (0,)


@pytest.mark.integration
def test_training_and_inference_dags_run_end_to_end(tmp_path):
    """recsys_training then recsys_batch_inference under `airflow dags test`, on a small world."""
    import datetime as dt

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features.build import build_features
    from tests.paths import PIPELINE

    warehouse = tmp_path / "ml" / "warehouse.duckdb"
    wh = DuckDBWarehouse(warehouse)
    world = generate(DemoConfig(users=200, items=80, days=60))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    spec = load_spec(PIPELINE)
    run_date = dt.date(2026, 3, 31)
    train, valid = spec.training_dates(run_date)
    build_features(wh, spec, SQL_DIR, [*train, *valid, run_date])  # the features DAG's history
    env = _airflow_env(tmp_path, warehouse)
    assert _airflow(env, "db", "migrate").returncode == 0

    for dag_id in ("recsys_training", "recsys_batch_inference"):
        out = _airflow(env, "dags", "test", dag_id, str(run_date))
        assert out.returncode == 0 and "state=success" in out.stdout + out.stderr, (out.stdout + out.stderr)[-4000:]

    champion = wh.query("SELECT version FROM ml_models WHERE status = 'champion'").to_pylist()
    assert len(champion) == 1
    recs = wh.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT user_id) AS users, MAX(rank) AS k, ANY_VALUE(model_version) AS v "
        "FROM recommendations WHERE prediction_date = @d",
        {"d": run_date},
    ).to_pylist()[0]
    assert recs["n"] > 0 and recs["k"] == spec.inference.top_k and recs["v"] == champion[0]["version"]
    runs = wh.query("SELECT status FROM recommendation_runs").to_pylist()
    assert runs == [{"status": "success"}]
