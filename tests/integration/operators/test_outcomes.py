"""OutcomeEvaluationOperator and the recsys_outcomes DAG on the tiny world of tests/integration/core/test_outcomes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.operators.outcomes import OutcomeEvaluationOperator
from tests.integration.core.test_outcomes import D, _seed, _serve
from tests.paths import DAGS_DIR, PIPELINE, SQL_DIR


@pytest.fixture
def wh(tmp_path, monkeypatch) -> DuckDBWarehouse:
    path = tmp_path / "warehouse.duckdb"
    wh = DuckDBWarehouse(path)
    _seed(wh)
    _serve(wh)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ML_PLATFORM_DEFAULT",
        json.dumps({"conn_type": "ml_platform", "extra": {"warehouse_path": str(path)}}),
    )
    return wh


def _run(ds: str, **kwargs) -> dict:
    with DAG("recsys_outcomes_test", schedule=None, template_searchpath=[str(SQL_DIR)]):
        op = OutcomeEvaluationOperator(task_id="outcomes", pipeline=str(PIPELINE), run_date=ds, **kwargs)
    ti = types.SimpleNamespace(dag_id="recsys_outcomes_test", task_id="outcomes", run_id=f"r-{ds}")
    return op.execute({"ds": ds, "ti": ti})


def test_the_run_date_judges_the_newest_date_whose_horizon_passed(wh):
    out = _run("2026-03-18")  # 03-18 - 7 days - 1 = the served 03-10
    assert out["prediction_date"] == D.isoformat() and out["rows"] == 2
    (summary,) = out["outcomes"]
    assert (summary["model_version"], summary["lists"], summary["active_users"]) == ("v1", 4, 2)
    # The popularity list (k = 10 over the 28-day lookback: i1, i4, i2) holds u1's i2 and u2's i4.
    assert (summary["model_hit_rate"], summary["popularity_hit_rate"]) == (0.5, 1.0)
    rows = wh.query("SELECT list_source, run_id FROM recommendation_outcomes ORDER BY 1").to_pylist()
    assert rows == [
        {"list_source": "global_popularity", "run_id": "r-2026-03-18"},
        {"list_source": "model", "run_id": "r-2026-03-18"},
    ]


def test_an_explicit_date_before_its_horizon_fails_without_retries_and_writes_nothing(wh):
    today = dt.datetime.now(dt.UTC).date()
    with pytest.raises(AirflowFailException, match=f"becomes ready on {today + dt.timedelta(days=7)}"):
        _run(today.isoformat(), prediction_date=(today - dt.timedelta(days=1)).isoformat())
    assert not wh.table_exists("recommendation_outcomes")


@pytest.mark.integration
def test_airflow_dags_test_recsys_outcomes(wh, tmp_path, airflow_db):
    """The reference DAG under a real `airflow dags test`: the sensor finds 03-10's lists, the operator judges them."""
    env = {k: v for k, v in os.environ.items()}
    env.update(AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR), AIRFLOW_ML_HOME=str(tmp_path))
    airflow = str(Path(sys.executable).parent / "airflow")
    out = subprocess.run(
        [airflow, "dags", "test", "recsys_outcomes", "2026-03-18"], env=env, capture_output=True, text=True
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0 and "state=success" in log, log[-4000:]
    assert "Outcomes 2026-03-10 | recsys v1: 4 lists, 2 active users, hit rate 0.5000" in log
    assert wh.query("SELECT COUNT(*) AS n FROM recommendation_outcomes").to_pylist()[0]["n"] == 2
