"""Sharded batch inference on real DuckDB with a real LightGBM champion: plan, mapped shards, one publish.

The operators run the steps as the DAG's tasks; ``airflow-ml recommend --shards N`` runs the same
core functions one after the other in one process.
"""

from __future__ import annotations

import json
import types
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.inference.shards import SHARD_COLUMN, STAGING_PREFIX, shard_of, staging_table
from airflow_ml_provider.operators.inference import (
    PlanRecommendShardsOperator,
    PublishRecommendationsOperator,
    ScoreRecommendShardOperator,
)
from tests.integration.operators import test_inference as unsharded
from tests.integration.operators.test_inference import DAY, recommend

# The unsharded tests' world: features for DAY and a trained champion; a fresh warehouse copy per test.
prepared = unsharded.prepared
warehouse = unsharded.warehouse

LIST_COLUMNS = "prediction_date, user_id, item_id, rank, score, model_name, model_version, run_id"


def _context(task_id: str, run_id: str, try_number: int = 1) -> dict[str, Any]:
    ti = types.SimpleNamespace(dag_id="recsys_batch_inference", task_id=task_id, run_id=run_id, try_number=try_number)
    return {"ds": str(DAY), "ti": ti}


def plan(prepared, shards: int, run_id: str) -> list[dict[str, Any]]:
    with DAG("recsys_batch_inference_test", schedule=None):
        op = PlanRecommendShardsOperator(
            task_id="plan_shards",
            pipeline=str(prepared["root"] / "pipeline.yaml"),
            prediction_date=str(DAY),
            shards=shards,
        )
    return op.execute(_context("plan_shards", run_id))


def score(prepared, task: dict[str, Any], run_id: str, try_number: int = 1) -> dict[str, Any]:
    with DAG("recsys_batch_inference_test", schedule=None):
        op = ScoreRecommendShardOperator(
            task_id="score_shard", pipeline=str(prepared["root"] / "pipeline.yaml"), **task
        )
    return op.execute(_context("score_shard", run_id, try_number))


def publish(prepared, tasks: list[dict[str, Any]], results: list[dict[str, Any]], run_id: str, try_number: int = 1):
    with DAG("recsys_batch_inference_test", schedule=None):
        op = PublishRecommendationsOperator(
            task_id="publish",
            pipeline=str(prepared["root"] / "pipeline.yaml"),
            prediction_date=str(DAY),
            plan=tasks,
            shard_results=results,
        )
    return op.execute(_context("publish", run_id, try_number))


def sharded_run(prepared, shards: int, run_id: str) -> dict[str, Any]:
    tasks = plan(prepared, shards, run_id)
    return publish(prepared, tasks, [score(prepared, t, run_id) for t in tasks], run_id)


def lists(wh: DuckDBWarehouse) -> list[tuple]:
    with wh.connect(read_only=True) as con:
        return con.execute(
            f"SELECT {LIST_COLUMNS} FROM recommendations WHERE prediction_date = $d ORDER BY user_id, rank", {"d": DAY}
        ).fetchall()


def table_checksum(wh: DuckDBWarehouse, table: str) -> tuple:
    with wh.connect(read_only=True) as con:
        return con.execute(f"SELECT count(*), sum(hash(x)) FROM {table} AS x").fetchone()


def test_a_sharded_run_equals_an_unsharded_run_row_for_row(prepared, warehouse):
    unsharded = recommend(prepared, run_id="run-1")
    expected = lists(warehouse)
    result = sharded_run(prepared, 3, "run-1")
    got = lists(warehouse)
    assert got == expected and len(got) == unsharded["rows_written"] > 0
    keys = ("users", "rows_written", "candidates", "coverage", "model_version")
    assert {k: result[k] for k in keys} == {k: unsharded[k] for k in keys}
    # Each user's list was scored by the shard the warehouse's FARM_FINGERPRINT puts it in, and
    # the staging tables are gone once published.
    assert staged(warehouse) == []
    users = {row[1] for row in got}
    assert {shard_of(u, 3) for u in users} == {0, 1, 2}
    runs = warehouse.query("SELECT try_number, status, rows_written FROM recommendation_runs WHERE run_id = 'run-1'")
    assert runs.to_pylist() == [{"try_number": 1, "status": "success", "rows_written": len(got)}]


def test_shards_hold_the_users_their_hash_assigns(prepared, warehouse):
    tasks = plan(prepared, 2, "run-split")
    for task in tasks:
        score(prepared, task, "run-split")
    for task in tasks:
        table = staging_table("recommendations", DAY, "run-split", task["shard"], 2)
        rows = warehouse.query(f"SELECT DISTINCT user_id, {SHARD_COLUMN} AS s FROM {table}").to_pylist()
        assert rows and all(shard_of(r["user_id"], 2) == r["s"] == task["shard"] for r in rows)


def test_a_retried_shard_replaces_only_its_own_staged_rows(prepared, warehouse):
    recommend(prepared, run_id="run-r")
    expected = lists(warehouse)
    tasks = plan(prepared, 3, "run-r")
    results = [score(prepared, t, "run-r") for t in tasks]
    other = staging_table("recommendations", DAY, "run-r", 0, 3)
    before_other = table_checksum(warehouse, other)
    results[1] = score(prepared, tasks[1], "run-r", try_number=2)  # the retry of shard 1
    results[1] = score(prepared, tasks[1], "run-r", try_number=3)
    assert table_checksum(warehouse, other) == before_other
    publish(prepared, tasks, results, "run-r")
    assert lists(warehouse) == expected
    dupes = warehouse.query(
        "SELECT COUNT(*) AS n FROM (SELECT user_id, item_id FROM recommendations WHERE prediction_date = @d "
        "GROUP BY 1, 2 HAVING COUNT(*) > 1) AS x",
        {"d": DAY},
    )
    assert dupes.to_pylist() == [{"n": 0}]


def test_a_publish_with_a_missing_shard_fails_naming_it_and_changes_nothing(prepared, warehouse):
    recommend(prepared, run_id="run-old")
    before = table_checksum(warehouse, "recommendations")
    tasks = plan(prepared, 3, "run-m")
    results = [score(prepared, t, "run-m") for t in tasks if t["shard"] != 1]
    with pytest.raises(AirflowFailException, match=r"shard\(s\) 1 of 3 are not staged"):
        publish(prepared, tasks, results, "run-m")
    assert table_checksum(warehouse, "recommendations") == before
    run = warehouse.query("SELECT status, error FROM recommendation_runs WHERE run_id = 'run-m'").to_pylist()
    assert len(run) == 1 and run[0]["status"] == "failed" and "shard(s) 1 of 3" in run[0]["error"]
    # The shard's retry, then the publish's retry, complete the run.
    results.insert(1, score(prepared, tasks[1], "run-m", try_number=2))
    publish(prepared, tasks, results, "run-m", try_number=2)
    assert table_checksum(warehouse, "recommendations") != before


def test_a_publish_with_a_shard_staged_twice_fails_naming_it_and_changes_nothing(prepared, warehouse):
    recommend(prepared, run_id="run-old")
    before = table_checksum(warehouse, "recommendations")
    tasks = plan(prepared, 2, "run-d")
    results = [score(prepared, t, "run-d") for t in tasks]
    # Shard 1's table holds shard 0's rows: shard 0 is staged twice, shard 1 not at all.
    first, second = (staging_table("recommendations", DAY, "run-d", i, 2) for i in (0, 1))
    with warehouse.connect() as con:
        con.execute(f"CREATE OR REPLACE TABLE {second} AS SELECT * FROM {first}")
    with pytest.raises(AirflowFailException, match="shard 0 is staged twice"):
        publish(prepared, tasks, results, "run-d")
    assert table_checksum(warehouse, "recommendations") == before


def test_a_shard_scored_with_another_shard_count_is_refused(prepared, warehouse):
    recommend(prepared, run_id="run-old")
    before = table_checksum(warehouse, "recommendations")
    tasks = plan(prepared, 2, "run-n")
    results = [score(prepared, t, "run-n") for t in tasks]
    # Shard 1 of 2 restaged from shard 1 of 3's users: some users are now in both shards.
    wrong = {**tasks[1], "shards": 3}
    score(prepared, wrong, "run-n")
    with warehouse.connect() as con:
        con.execute(
            f"CREATE OR REPLACE TABLE {staging_table('recommendations', DAY, 'run-n', 1, 2)} AS "
            f"SELECT * FROM {staging_table('recommendations', DAY, 'run-n', 1, 3)}"
        )
    with pytest.raises(AirflowFailException, match=r"user '.*' is in shard 0 and shard 1"):
        publish(prepared, tasks, results, "run-n")
    assert table_checksum(warehouse, "recommendations") == before


def cli_recommend(prepared, wh: DuckDBWarehouse, capsys, *args: str) -> tuple[int, dict[str, Any], str]:
    """``airflow-ml recommend --json`` for DAY on ``wh``: exit code, the printed summary, stderr."""
    pipeline = str(prepared["root"] / "pipeline.yaml")
    code = main(["recommend", "--warehouse", str(wh.path), "--pipeline", pipeline, "--date", str(DAY), "--json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else {}, err


def list_rows(wh: DuckDBWarehouse) -> list[tuple]:
    """The lists themselves: (user_id, item_id, rank, score) of DAY, in a fixed order."""
    with wh.connect(read_only=True) as con:
        return con.execute(
            "SELECT user_id, item_id, rank, score FROM recommendations WHERE prediction_date = $d "
            "ORDER BY user_id, rank",
            {"d": DAY},
        ).fetchall()


def staged(wh: DuckDBWarehouse) -> list[str]:
    """Staging tables left in the warehouse (``list_tables`` hides them)."""
    with wh.connect(read_only=True) as con:
        rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    return [r[0] for r in rows if r[0].startswith(STAGING_PREFIX)]


def test_cli_recommend_in_shards_equals_the_unsharded_run_and_records_one_run(prepared, warehouse, capsys):
    code, unsharded_run, _ = cli_recommend(prepared, warehouse, capsys, "--shards", "1", "--run-id", "cli-1")
    assert code == 0
    expected = list_rows(warehouse)
    code, sharded_run, _ = cli_recommend(prepared, warehouse, capsys, "--shards", "3", "--run-id", "cli-3")
    assert code == 0
    got = list_rows(warehouse)
    assert got == expected and len(got) == unsharded_run["rows_written"] > 0
    keys = ("prediction_date", "model_name", "model_version", "users", "rows_written", "coverage")
    # candidate_items: counted while scoring unsharded, by a query over the day's candidates at publish.
    keys += ("catalog_items", "candidate_items", "candidate_item_share")
    assert {k: sharded_run[k] for k in keys} == {k: unsharded_run[k] for k in keys}
    assert unsharded_run["candidate_items"] > 0
    assert sharded_run["run_id"] == "cli-3"
    assert {shard_of(user, 3) for user, *_ in got} == {0, 1, 2}
    assert staged(warehouse) == []
    runs = warehouse.query(
        "SELECT try_number, status, rows_written, candidates FROM recommendation_runs WHERE run_id = 'cli-3'"
    ).to_pylist()
    candidates = warehouse.query("SELECT candidates FROM recommendation_runs WHERE run_id = 'cli-1'").to_pylist()
    assert runs == [{"try_number": 1, "status": "success", "rows_written": len(got), **candidates[0]}]


def test_a_failed_sharded_cli_run_is_recorded_keeps_the_partition_and_drops_its_staged_shards(
    prepared, warehouse, capsys
):
    recommend(prepared, run_id="run-old")
    before = table_checksum(warehouse, "recommendations")
    warehouse.execute("DELETE FROM features WHERE as_of_date = @d", {"d": DAY})
    code, _, err = cli_recommend(prepared, warehouse, capsys, "--shards", "2", "--run-id", "cli-empty")
    assert code == 1 and "no shard of 2026-03-31 staged any recommendation" in err
    assert table_checksum(warehouse, "recommendations") == before
    assert staged(warehouse) == []
    runs = warehouse.query("SELECT status, error FROM recommendation_runs WHERE run_id = 'cli-empty'").to_pylist()
    assert len(runs) == 1 and runs[0]["status"] == "failed" and "EmptyResultError" in runs[0]["error"]


def test_cli_recommend_refuses_a_shard_count_out_of_range(prepared, warehouse, capsys):
    code, _, err = cli_recommend(prepared, warehouse, capsys, "--shards", "0")
    assert code == 1 and "--shards: shards must be a whole number from 1 to 256, got 0" in err
    assert not warehouse.table_exists("recommendation_runs")  # refused before any attempt
