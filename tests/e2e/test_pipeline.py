"""The reference pipeline on a real Airflow, driven through the REST API v2.

features -> training -> batch inference (triggered: their cron schedules would wait for
the calendar) -> drift (started by the recsys_recommendations asset), then the tables.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import RUN_DATE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def test_reference_dags_run_through_the_rest_api_and_fill_the_tables(recsys):
    client = recsys.client
    recsys.run("recsys_features", RUN_DATE)
    features = recsys.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT user_id) AS users FROM features WHERE as_of_date = @d", d=RUN_DATE
    )[0]
    assert features["n"] > 0 and features["users"] > 0

    recsys.run("recsys_training", RUN_DATE, timeout=600)
    champions = recsys.query("SELECT version FROM ml_models WHERE model_name = 'recsys' AND status = 'champion'")
    assert len(champions) == 1, champions
    version = champions[0]["version"]

    drift_before = len(recsys.drift_runs())
    inference_run = recsys.run("recsys_batch_inference", RUN_DATE)
    recs = recsys.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT user_id) AS users, MAX(rank) AS k, "
        "COUNT(DISTINCT model_version) AS versions, ANY_VALUE(model_version) AS v "
        "FROM recommendations WHERE prediction_date = @d",
        d=RUN_DATE,
    )[0]
    assert recs["n"] > 0 and recs["k"] == 10 and recs["versions"] == 1 and recs["v"] == version
    dupes = recsys.query(
        "SELECT COUNT(*) AS n FROM (SELECT user_id, item_id FROM recommendations WHERE prediction_date = @d "
        "GROUP BY 1, 2 HAVING COUNT(*) > 1) AS x",
        d=RUN_DATE,
    )
    assert dupes == [{"n": 0}]
    runs = recsys.query(
        "SELECT try_number, status, rows_written FROM recommendation_runs WHERE run_id = @r", r=inference_run
    )
    assert runs == [{"try_number": 1, "status": "success", "rows_written": recs["n"]}]

    # The recsys_recommendations asset event starts recsys_drift; no trigger needed.
    deadline = time.monotonic() + 180
    while len(drift := recsys.drift_runs()) <= drift_before:
        assert time.monotonic() < deadline, "the recsys_recommendations asset event started no recsys_drift run"
        time.sleep(2)
    drift_run = drift[-1]
    assert drift_run["run_type"] == "asset_triggered"
    client.wait_for_run("recsys_drift", drift_run["dag_run_id"], timeout=300)
    check = client.task_instance("recsys_drift", drift_run["dag_run_id"], "drift_check")
    assert check["state"] == "success"
    results = recsys.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT model_version) AS versions, ANY_VALUE(model_version) AS v "
        "FROM drift_results WHERE logical_date = @d",
        d=RUN_DATE,
    )[0]
    assert results["n"] > 0 and results["versions"] == 1 and results["v"] == version
