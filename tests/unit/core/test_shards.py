"""User shards: BigQuery's FARM_FINGERPRINT on both backends, the shard plan, and the publish checks.

What the two-backend test proves and what not: the local BigQuery (tests/fakes) runs SQL on
DuckDB with the same ``fingerprint64`` the embedded warehouse registers, so agreement there only
shows that the SQL, its parameters and the Storage Read path put each user in the same shard on
both. That ``fingerprint64`` is BigQuery's own function is shown separately, against the values
BigQuery's documentation prints for FARM_FINGERPRINT.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.inference.shards import (
    ShardPlan,
    check_staged,
    fingerprint64,
    publish_staged,
    shard_of,
    shard_sql,
    staging_tables,
    unlocked_batches,
    with_shard,
)
from airflow_ml_provider.exceptions import ShardError
from tests.fakes.gcp import DATASET, PROJECT, LocalGcp

DAY = dt.date(2024, 5, 1)
USERS = [f"user-{i}" for i in range(300)] + ["", "ünïcødé", "a" * 100]


def test_fingerprint64_is_bigquerys_farm_fingerprint():
    # https://cloud.google.com/bigquery/docs/reference/standard-sql/hash_functions#farm_fingerprint
    documented = {"1footrue": -1541654101129638711, "2applefalse": 2794438866806483259, "3true": -4880158226897771312}
    assert fingerprint64(pa.array(list(documented))).to_pylist() == list(documented.values())
    assert fingerprint64(pa.chunked_array([["1footrue", None], ["1footrue"]])).to_pylist() == [
        -1541654101129638711,
        None,
        -1541654101129638711,
    ]


def test_duckdb_farm_fingerprint_and_shards_match_the_python_definition(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_table("users", pa.table({"user_id": USERS}))
    got = wh.query(
        "SELECT user_id, FARM_FINGERPRINT(user_id) AS f, ABS(MOD(FARM_FINGERPRINT(user_id), 3)) AS s FROM users"
    ).to_pylist()
    assert {r["user_id"]: r["f"] for r in got} == dict(
        zip(USERS, fingerprint64(pa.array(USERS)).to_pylist(), strict=True)
    )
    assert all(r["s"] == shard_of(r["user_id"], 3) for r in got)
    assert {r["s"] for r in got} == {0, 1, 2}


def _shards(wh, n: int) -> dict[str, int]:
    rows = {}
    for shard in range(n):
        sql = shard_sql("SELECT user_id FROM users", "user_id")
        for r in wh.query(sql, {"shard_index": shard, "shard_count": n}).to_pylist():
            assert r["user_id"] not in rows, f"{r['user_id']} in two shards"
            rows[r["user_id"]] = shard
    return rows


@pytest.mark.integration
def test_both_backends_put_each_user_in_the_same_shard(tmp_path, gcp: LocalGcp):
    local = DuckDBWarehouse(tmp_path / "w.duckdb")
    bigquery = BigQueryWarehouse(PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US"))
    for wh in (local, bigquery):
        wh.replace_table("users", pa.table({"user_id": USERS}))
    on_duckdb, on_bigquery = _shards(local, 4), _shards(bigquery, 4)
    assert on_duckdb == on_bigquery and sorted(on_duckdb) == sorted(USERS)  # every user in exactly one shard
    assert set(on_duckdb.values()) == {0, 1, 2, 3}


def test_a_plan_round_trips_and_an_inconsistent_one_is_refused():
    plan = ShardPlan(DAY, 3, "recsys", "v7")
    tasks = plan.tasks()
    assert [t["shard"] for t in tasks] == [0, 1, 2] and ShardPlan.from_tasks(tasks) == plan
    with pytest.raises(ShardError, match="inconsistent"):
        ShardPlan.from_tasks([*tasks[:2], {**tasks[2], "model_version": "v8"}])
    with pytest.raises(ShardError, match="inconsistent"):
        ShardPlan.from_tasks(tasks[:2])


def _lists(users: list[str]) -> pa.Table:
    return pa.table({"user_id": users, "item_id": ["i1"] * len(users), "rank": [1] * len(users)})


@pytest.mark.integration
def test_gcp_publish_checks_the_shards_then_writes_the_partition_decorator(gcp: LocalGcp):
    wh = BigQueryWarehouse(
        PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US"),
        labels={"airflow-run": "r1"},
    )
    plan = ShardPlan(DAY, 3, "recsys", "v1")
    names = staging_tables("recommendations", plan, "run-1")
    wh.replace_partition("recommendations", "prediction_date", DAY, _lists(["old"]), cluster_by=("user_id",))
    before = wh.query("SELECT user_id FROM recommendations").to_pylist()
    by_shard: dict[int, list[str]] = {}
    for user in USERS[:30]:
        by_shard.setdefault(shard_of(user, 3), []).append(user)
    for shard in (0, 2):
        wh.stage_table(names[shard], with_shard(_lists(by_shard[shard]), shard))
    with pytest.raises(ShardError, match=r"shard\(s\) 1 of 3 are not staged"):
        check_staged(wh, names)
    assert wh.query("SELECT user_id FROM recommendations").to_pylist() == before
    assert gcp.bigquery.meta(PROJECT, DATASET, names[0]).expires_ms  # a lost run leaves nothing permanent
    wh.stage_table(names[1], with_shard(_lists(by_shard[1]), 1))
    wh.stage_table(names[1], with_shard(_lists(by_shard[1]), 1))  # a retry replaces, never appends
    assert check_staged(wh, names) == {"rows_written": 30, "users": 30, "items": 1}
    written = publish_staged(wh, "recommendations", "prediction_date", DAY, names, ["user_id", "item_id", "rank"])
    assert written.rows == 30
    assert sorted(r["user_id"] for r in wh.query("SELECT user_id FROM recommendations").to_pylist()) == sorted(
        USERS[:30]
    )
    queries = gcp.bigquery.job_configs("query")
    publishes = [c for c in queries if c.get("destinationTable", {}).get("tableId") == "recommendations$20240501"]
    assert len(publishes) == 2  # the day's first write, then the shards' publish
    publish = publishes[-1]
    staged_union = [
        c
        for c in queries
        if "_staging_recommendations_20240501_" in c["query"].split("AS", 1)[0] and all(n in c["query"] for n in names)
    ]
    assert len(staged_union) == 1  # the union of the shards, staged by the partition-write primitive
    assert publish["writeDisposition"] == "WRITE_TRUNCATE"
    assert not gcp.bigquery.job_configs("copy")


def test_unlocked_batches_release_the_duckdb_lock_before_the_caller_scores(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=0.5)
    wh.replace_table("users", pa.table({"user_id": USERS}))
    sql = shard_sql("SELECT user_id FROM users", "user_id")
    params = {"shard_index": 0, "shard_count": 2}
    with unlocked_batches(wh, sql, params, batch_rows=50, source="test") as batches:
        # Another shard's task writes while this one still holds unread batches.
        wh.stage_table("other_shard", pa.table({"x": [1]}))
        got = pa.Table.from_batches(list(batches))["user_id"].to_pylist()
    assert sorted(got) == sorted(u for u in USERS if shard_of(u, 2) == 0)


def test_duckdb_all_table_columns_lists_the_tables_list_tables_lists(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_table("users", pa.table({"user_id": ["a"]}))
    wh.stage_table(staging_tables("recommendations", ShardPlan(DAY, 1, "m", "1"), "run")[0], pa.table({"x": [1]}))
    assert (
        wh.all_table_columns()
        == {t: wh.table_columns(t) for t in wh.list_tables()}
        == {"users": {"user_id": "VARCHAR"}}
    )
