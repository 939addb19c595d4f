"""A 7-day backfill of recsys_features and recsys_batch_inference, runs in parallel, one DuckDB file.

Both backfills are created at once through ``POST /api/v2/backfills`` with
``max_active_runs=3``: up to three days of features and three days of inference are in
flight together (inference sensors wait for their day's features), and every write goes
to the one embedded warehouse file, serialised by its file lock (a ``WarehouseLockedError``
would be retried). Afterwards: exactly 7 partitions, no duplicate rows, every inference run
recorded in ``recommendation_runs``, and the file opens and scans cleanly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

# A week that no other e2e test runs through Airflow (a DAG has one run per logical date);
# the feature history already holds these partitions, so the backfill replaces them.
START, END = dt.date(2026, 3, 17), dt.date(2026, 3, 23)
DAYS = 7


def wait_for_backfill(client, backfill_id: int, dag_id: str, timeout: float = 600) -> None:
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


def overlapping(runs: list[dict]) -> bool:
    spans = sorted((r["start_date"], r["end_date"]) for r in runs if r["start_date"] and r["end_date"])
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_seven_day_backfill_in_parallel_writes_seven_partitions_once(recsys):
    client = recsys.client
    recsys.trained()  # batch inference needs a champion
    recsys.settle()
    client.request("PATCH", "/api/v2/dags/recsys_drift", json={"is_paused": True})  # not what this test is about
    try:
        # Airflow 3.3 refuses (503) to create a backfill on SQLite while another component
        # writes the metadata DB, and a half-created one can crash the scheduler
        # (ObjectDeletedError), so the scheduler is stopped while both are created.
        with recsys.cluster.paused_component("scheduler"):
            features = client.backfill("recsys_features", START, END, max_active_runs=3)
            inference = client.backfill("recsys_batch_inference", START, END, max_active_runs=3)
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
        ti = client.task_instance("recsys_batch_inference", run["dag_run_id"], "recommend")
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
