"""The reference pipeline on a real Airflow, driven through the REST API v2.

features -> training -> batch inference (triggered: their cron schedules would wait for
the calendar) -> drift (started by the recsys_recommendations asset), then the tables.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import RUN_DATE, SHARDS

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
    promoted = {r["version"] for r in recsys.query("SELECT version FROM ml_models WHERE promoted_at IS NOT NULL")}
    assert champions[0]["version"] in promoted

    inference_run = recsys.run("recsys_batch_inference", RUN_DATE)
    # Sharded: SHARDS mapped score_shard tasks scored in parallel, one publish wrote the partition.
    tasks = client.task_instances("recsys_batch_inference", inference_run)
    shards = sorted(t["map_index"] for t in tasks if t["task_id"] == "score_shard")
    assert shards == list(range(SHARDS)), tasks
    assert {t["state"] for t in tasks} == {"success"}, tasks
    with recsys.warehouse.connect(read_only=True) as con:  # the staged shards were dropped once published
        staged = "SELECT table_name FROM information_schema.tables WHERE starts_with(table_name, '_staging_')"
        assert con.execute(staged).fetchall() == []
    runs = recsys.query(
        "SELECT try_number, status, rows_written, model_version FROM recommendation_runs WHERE run_id = @r",
        r=inference_run,
    )
    assert len({r["try_number"] for r in runs}) == len(runs), runs  # one row per attempt of publish
    final = max(runs, key=lambda r: r["try_number"])
    assert final["status"] == "success" and final["model_version"] in promoted, runs  # scored with a champion
    recs = recsys.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT user_id) AS users, MAX(rank) AS k, "
        "COUNT(DISTINCT model_version) AS versions, ANY_VALUE(model_version) AS v "
        "FROM recommendations WHERE prediction_date = @d",
        d=RUN_DATE,
    )[0]
    assert recs["n"] == final["rows_written"] > 0 and recs["k"] == 10, recs
    assert recs["versions"] == 1 and recs["v"] == final["model_version"], recs
    # Every user active in the 28-day lookback gets exactly k items (the popularity list fills short lists).
    active = recsys.query(
        "SELECT COUNT(DISTINCT user_id) AS n FROM events WHERE DATE(event_ts) <= @d "
        "AND DATE(event_ts) > DATE_SUB(@d, INTERVAL 28 DAY) AND event_type IN ('view', 'add_to_cart', 'purchase')",
        d=RUN_DATE,
    )[0]["n"]
    assert recs["users"] == active and recs["n"] == 10 * active, (recs, active)
    dupes = recsys.query(
        "SELECT COUNT(*) AS n FROM (SELECT user_id, item_id FROM recommendations WHERE prediction_date = @d "
        "GROUP BY 1, 2 HAVING COUNT(*) > 1) AS x",
        d=RUN_DATE,
    )
    assert dupes == [{"n": 0}]

    # The recsys_recommendations asset event of that run started recsys_drift; no trigger needed.
    drift_run = wait_for_drift_run_started_by(client, inference_run)
    assert drift_run["run_type"] == "asset_triggered"
    client.wait_for_run("recsys_drift", drift_run["dag_run_id"], timeout=300)
    assert client.task_instance("recsys_drift", drift_run["dag_run_id"], "drift_check")["state"] == "success"
    results = recsys.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT model_version) AS versions, ANY_VALUE(model_version) AS v "
        "FROM drift_results WHERE logical_date = @d",
        d=RUN_DATE,
    )[0]
    assert results["n"] > 0 and results["versions"] == 1 and results["v"] in promoted, results


def wait_for_drift_run_started_by(client, inference_run: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for run in client.dag_runs("recsys_drift"):
            if run["run_type"] != "asset_triggered":
                continue
            events = client.get(f"/api/v2/dags/recsys_drift/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
            if any(e["source_run_id"] == inference_run for e in events["asset_events"]):
                return run
        assert time.monotonic() < deadline, f"no recsys_drift run was started by {inference_run}'s asset event"
        time.sleep(2)
