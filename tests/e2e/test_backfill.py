"""A 7-day backfill of recsys_features and recsys_batch_inference, runs in parallel, one DuckDB file.

On the production layout (PostgreSQL, CeleryExecutor, Redis; tests/e2e/cluster.py), with
the scheduler running throughout: both backfills are created at once through
``POST /api/v2/backfills`` with ``max_active_runs=3``, so up to three days of features and
three days of inference are in flight together (inference sensors wait for their day's
features) on a Celery worker with two slots. Every ML task runs in the one-slot
``ml_warehouse`` pool (airflow-layout.env), so the one embedded warehouse file has one
writer at a time. Afterwards: exactly 7 partitions, no duplicate rows, no try of any task
failed (so no lock error failed a task), every inference run recorded in
``recommendation_runs``, and the file opens and scans cleanly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest

# 7 days x (features: 6 tasks; inference: plan, shards, publish) on a 2-slot Celery worker,
# ML tasks one at a time in the ml_warehouse pool: about 10 minutes on 2 cores, after the
# session's world (cluster, demo data, a trained champion) is built by the first e2e test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

# A week that no other e2e test runs through Airflow (a DAG has one run per logical date);
# the feature history already holds these partitions, so the backfill replaces them.
START, END = dt.date(2026, 3, 17), dt.date(2026, 3, 23)
DAYS = 7


def wait_for_backfill(client, backfill_id: int, dag_id: str, timeout: float = 1500) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/api/v2/backfills/{backfill_id}")["completed_at"] is None:
        client.check_alive()
        if time.monotonic() > deadline:
            runs = client.dag_runs(dag_id)
            detail = "\n".join(f"{r['dag_run_id']} {r['state']}" for r in runs if r["run_type"] == "backfill")
            raise AssertionError(f"backfill {backfill_id} of {dag_id} not complete after {timeout:g}s:\n{detail}")
        time.sleep(3)


def backfill_runs(client, dag_id: str) -> list[dict]:
    runs = [r for r in client.dag_runs(dag_id) if r["run_type"] == "backfill"]
    return sorted(runs, key=lambda r: r["logical_date"])


def failed_tries_of(client, dag_id: str, run_id: str) -> list[str]:
    """Tries of the run's tasks that did not succeed (sensor reschedules are not tries that failed)."""
    out = []
    for ti in client.task_instances(dag_id, run_id):
        # A mapped task (the inference shards) has its tries under its map index.
        index = ti.get("map_index", -1)
        mapped = f"/{index}" if index >= 0 else ""
        tries = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}{mapped}/tries")
        for t in tries["task_instances"]:
            if t["state"] not in ("success", "skipped"):
                log = client.task_log(dag_id, run_id, ti["task_id"], t["try_number"], index).splitlines()
                out.append(
                    f"{run_id} {ti['task_id']}[{index}] try {t['try_number']}: {t['state']}\n" + "\n".join(log[-15:])
                )
    return out


def overlapping(runs: list[dict]) -> bool:
    spans = sorted((r["start_date"], r["end_date"]) for r in runs if r["start_date"] and r["end_date"])
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_seven_day_backfill_in_parallel_writes_seven_partitions_once(recsys):
    client = recsys.client
    recsys.trained()  # batch inference needs a champion
    recsys.settle()
    client.request("PATCH", "/api/v2/dags/recsys_drift", json={"is_paused": True})  # not what this test is about
    try:
        features = client.backfill("recsys_features", START, END, max_active_runs=3)
        inference = client.backfill("recsys_batch_inference", START, END, max_active_runs=3)
        assert features["max_active_runs"] == inference["max_active_runs"] == 3
        wait_for_backfill(client, features["id"], "recsys_features")
        wait_for_backfill(client, inference["id"], "recsys_batch_inference")
    finally:
        client.unpause("recsys_drift")

    for dag_id in ("recsys_features", "recsys_batch_inference"):
        runs = backfill_runs(client, dag_id)
        days = [r["logical_date"][:10] for r in runs]
        assert days == [str(START + dt.timedelta(days=i)) for i in range(DAYS)], days
        failed = {r["dag_run_id"]: client.explain(dag_id, r["dag_run_id"]) for r in runs if r["state"] != "success"}
        assert not failed, failed
        assert overlapping(runs), f"{dag_id}: no two backfill runs overlapped: {runs}"
        # Every try of every task succeeded first time: no lock error (nor anything else) failed a try.
        failed_tries = [t for r in runs for t in failed_tries_of(client, dag_id, r["dag_run_id"])]
        assert not failed_tries, failed_tries
    # The ML tasks ran in the one-slot pool (what kept their writes apart), on the Celery worker.
    ml_pool = recsys.cluster.pool_args()[0]
    for dag_id, task_id in (("recsys_features", "features"), ("recsys_batch_inference", "publish")):
        for run in backfill_runs(client, dag_id):
            ti = client.task_instance(dag_id, run["dag_run_id"], task_id)
            assert (ti["pool"], ti["pool_slots"]) == (ml_pool, 1), ti
            assert ti["executor"] in (None, "CeleryExecutor") and ti["queue"] == "default", ti

    in_range = {"a": START, "b": END}
    parts = recsys.query(
        "SELECT COUNT(DISTINCT as_of_date) AS n FROM features WHERE as_of_date BETWEEN @a AND @b", **in_range
    )
    assert parts == [{"n": DAYS}]
    recs = recsys.query(
        "SELECT COUNT(DISTINCT prediction_date) AS n FROM recommendations WHERE prediction_date BETWEEN @a AND @b",
        **in_range,
    )
    assert recs == [{"n": DAYS}]
    for table, key in (
        ("features", "as_of_date, user_id, item_id"),
        ("candidates", "as_of_date, user_id, item_id"),
        ("recommendations", "prediction_date, user_id, item_id"),
        ("recommendations", "prediction_date, user_id, rank"),
    ):
        dupes = recsys.query(f"SELECT COUNT(*) AS n FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING COUNT(*) > 1)")
        assert dupes == [{"n": 0}], (table, key)

    # Every inference run is recorded: its last try succeeded and wrote that day's rows.
    for run in backfill_runs(client, "recsys_batch_inference"):
        ti = client.task_instance("recsys_batch_inference", run["dag_run_id"], "publish")
        recorded = recsys.query(
            "SELECT prediction_date, status, rows_written FROM recommendation_runs "
            "WHERE run_id = @r AND try_number = @t",
            r=run["dag_run_id"],
            t=ti["try_number"],
        )
        day = dt.date.fromisoformat(run["logical_date"][:10])
        rows = recsys.query("SELECT COUNT(*) AS n FROM recommendations WHERE prediction_date = @d", d=day)[0]["n"]
        assert recorded == [{"prediction_date": day, "status": "success", "rows_written": rows}], recorded

    # Never a corrupt file: it opens for writing, checkpoints, and every table scans.
    recsys.settle()
    with recsys.warehouse.connect() as con:
        con.execute("CHECKPOINT")
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for table in tables:
            con.execute(f'SELECT COUNT(*), SUM(HASH(x) % 1000000007) FROM "{table}" AS x').fetchone()
    assert {"features", "recommendations", "recommendation_runs"} <= set(tables)
