"""BatchRecommendOperator on real DuckDB with a real trained LightGBM champion."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.model_hooks import load_hooks
from airflow_ml_provider.core.contract.spec import load_spec, parse_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.training.envelope import MODEL_FILE
from airflow_ml_provider.core.training.job import training_data_sql, training_params
from airflow_ml_provider.core.training.trainer import train
from airflow_ml_provider.operators.inference import BatchRecommendOperator
from tests.paths import PIPELINE, SQL_DIR

DAY = dt.date(2026, 3, 31)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict:
    """A warehouse with features for DAY and a promoted champion trained on a small world."""
    root = tmp_path_factory.mktemp("inference")
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["model"].update(num_boost_round=30, params={"learning_rate": 0.2})
    spec = parse_spec(yaml.safe_dump(raw), "fast pipeline")
    (root / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(PIPELINE.parent / "model.py", root / "model.py")
    wh = DuckDBWarehouse(root / "warehouse.duckdb")
    world = generate(DemoConfig(users=250, items=90, days=60))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    train_dates, valid_dates = spec.training_dates(DAY)
    build_features(wh, spec, SQL_DIR, [*train_dates, *valid_dates], labels=True)
    build_features(wh, spec, SQL_DIR, [DAY])
    data = wh.export_parquet(training_data_sql(spec), training_params(spec, DAY), (root / "data").as_uri())
    model_dir = (root / "models" / "v1").as_uri()
    hooks = load_hooks(root / "model.py")
    envelope = train(spec, data, model_dir, name="recsys", version="v1", validation_from=valid_dates[0], hooks=hooks)
    registry = ModelRegistry(wh)
    registry.register_candidate("recsys", "v1", model_dir, envelope.metrics, None, spec.spec_hash, envelope.created_at)
    registry.promote("recsys", "v1", blessed_by="test", reason="fixture")
    return {"root": root, "warehouse": root / "warehouse.duckdb", "model_dir": model_dir}


@pytest.fixture
def warehouse(prepared, tmp_path, monkeypatch) -> DuckDBWarehouse:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(prepared["warehouse"], path)
    extra = {"warehouse_path": str(path), "artifact_root": (tmp_path / "artifacts").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    return DuckDBWarehouse(path)


def recommend(prepared, run_id: str = "scheduled__1", try_number: int = 1, **kwargs) -> dict:
    with DAG("recsys_batch_inference_test", schedule=None):
        op = BatchRecommendOperator(
            task_id="recommend", pipeline=str(prepared["root"] / "pipeline.yaml"), prediction_date=str(DAY), **kwargs
        )
    ti = types.SimpleNamespace(
        dag_id="recsys_batch_inference", task_id="recommend", run_id=run_id, try_number=try_number
    )
    return op.execute({"ds": str(DAY), "ti": ti})


def lists_checksum(wh: DuckDBWarehouse, day: dt.date = DAY) -> tuple:
    """Count and hash of the lists themselves (run ids and timestamps differ by design)."""
    with wh.connect(read_only=True) as con:
        return con.execute(
            "SELECT count(*), sum(hash(user_id, item_id, rank, score, model_version)) FROM recommendations "
            "WHERE prediction_date = $d",
            {"d": day},
        ).fetchone()


def test_writes_top_k_per_user_and_a_run_row(prepared, warehouse):
    result = recommend(prepared)
    k = load_spec(PIPELINE).inference.top_k
    assert result["model_version"] == "v1" and result["prediction_date"] == str(DAY)
    expected = warehouse.query(
        "SELECT SUM(LEAST(n, @k)) AS rows FROM "
        "(SELECT COUNT(*) AS n FROM features WHERE as_of_date = @d GROUP BY user_id)",
        {"k": k, "d": DAY},
    ).to_pylist()[0]["rows"]
    assert result["rows_written"] == expected  # k per user, or all a user has
    assert 0 < result["coverage"] <= 1
    ranks = warehouse.query(
        "SELECT MIN(rank) AS lo, MAX(rank) AS hi, COUNT(DISTINCT user_id) AS users FROM recommendations"
    ).to_pylist()[0]
    assert ranks == {"lo": 1, "hi": k, "users": result["users"]}
    # Ranks follow scores, ties broken by item id.
    bad = warehouse.query(
        "SELECT COUNT(*) AS n FROM (SELECT rank, score, item_id, LAG(score) OVER w AS prev_score, "
        "LAG(item_id) OVER w AS prev_item FROM recommendations WINDOW w AS (PARTITION BY user_id ORDER BY rank)) "
        "WHERE prev_score < score OR (prev_score = score AND prev_item > item_id)"
    ).to_pylist()[0]["n"]
    assert bad == 0
    runs = warehouse.query("SELECT status, users, rows_written, candidates, error FROM recommendation_runs").to_pylist()
    assert runs == [
        {
            "status": "success",
            "users": result["users"],
            "rows_written": result["rows_written"],
            "candidates": result["candidates"],
            "error": None,
        }
    ]
    latest = warehouse.query("SELECT COUNT(*) AS n FROM recommendations_latest").to_pylist()[0]["n"]
    assert latest == result["rows_written"]


def test_rerun_gives_identical_lists_and_never_appends(prepared, warehouse):
    recommend(prepared, run_id="run-a")
    first = lists_checksum(warehouse)
    recommend(prepared, run_id="run-b")
    assert lists_checksum(warehouse) == first
    assert warehouse.query("SELECT COUNT(*) AS n FROM recommendation_runs").to_pylist() == [{"n": 2}]


def test_fewer_candidates_than_k_are_filled_from_the_popularity_list(prepared, warehouse):
    """The model's candidates come first, then the global popularity list tops every short list up to k."""
    k = load_spec(PIPELINE).inference.top_k
    short = 3  # half the users keep 3 candidates (a top_k above candidates_per_user is refused instead)
    warehouse.execute(
        "DELETE FROM features WHERE as_of_date = @d AND MOD(ABS(FARM_FINGERPRINT(user_id)), 2) = 0 "
        "AND candidate_rank > @short",
        {"d": DAY, "short": short},
    )
    result = recommend(prepared)
    rows = warehouse.query(
        "SELECT user_id, COUNT(*) AS n, COUNTIF(source = 'model') AS model, "
        "COUNTIF(source = 'global_popularity' AND score IS NULL) AS filled, "
        "MAX(IF(source = 'model', rank, 0)) AS last_model FROM recommendations GROUP BY user_id"
    ).to_pylist()
    assert rows and all(r["n"] == k and r["model"] + r["filled"] == k for r in rows)
    assert any(r["model"] <= short and r["filled"] >= k - short for r in rows), "some lists were filled"
    assert all(r["last_model"] == r["model"] for r in rows), "the model's items rank first"
    assert result["rows_written"] == k * len(rows)
    pairs = warehouse.query("SELECT COUNT(*) AS n, COUNT(DISTINCT user_id || '|' || item_id) AS d FROM recommendations")
    assert pairs.to_pylist()[0]["n"] == pairs.to_pylist()[0]["d"], "a filled item is never one the model listed"


def test_top_k_above_candidates_per_user_is_refused_as_validate_refuses_it(prepared, warehouse):
    per_user = load_spec(PIPELINE).candidates_per_user
    with pytest.raises(AirflowFailException, match=rf"top_k={per_user + 20}: a list holds 1 to {per_user} items"):
        recommend(prepared, top_k=per_user + 20)
    assert warehouse.query("SELECT COUNT(*) AS n FROM recommendations").to_pylist() == [{"n": 0}]


def test_empty_candidate_set_fails_and_keeps_the_partition(prepared, warehouse):
    recommend(prepared)
    before = lists_checksum(warehouse)
    warehouse.execute("DELETE FROM features WHERE as_of_date = @d", {"d": DAY})
    with pytest.raises(AirflowFailException, match="no candidate rows to score"):
        recommend(prepared, run_id="run-empty")
    assert lists_checksum(warehouse) == before
    failed = warehouse.query("SELECT status, error FROM recommendation_runs WHERE run_id = 'run-empty'").to_pylist()
    assert failed[0]["status"] == "failed" and "no candidate rows" in failed[0]["error"]


def test_serving_schema_mismatch_names_the_column_and_changes_nothing(prepared, warehouse):
    recommend(prepared)
    before = lists_checksum(warehouse)
    warehouse.execute("ALTER TABLE features RENAME COLUMN item_trend TO item_trend_v2")
    with pytest.raises(AirflowFailException, match=r"item_trend"):
        recommend(prepared, run_id="run-schema")
    assert lists_checksum(warehouse) == before


def test_corrupt_model_names_the_uri_and_changes_nothing(prepared, warehouse, tmp_path):
    recommend(prepared)
    before = lists_checksum(warehouse)
    broken = tmp_path / "broken"
    shutil.copytree(storage.local_path(prepared["model_dir"]), broken)
    text = (broken / MODEL_FILE).read_text()
    (broken / MODEL_FILE).write_text(text[: len(text) // 3])  # truncated
    registry = ModelRegistry(warehouse)
    registry.register_candidate("recsys", "v-broken", broken.as_uri(), {}, None, None, dt.datetime.now(dt.UTC))
    with pytest.raises(AirflowFailException, match=r"broken/model\.txt"):
        recommend(prepared, model_version="v-broken", run_id="run-broken")
    assert lists_checksum(warehouse) == before


def test_unknown_model_version_is_a_clear_error(prepared, warehouse):
    with pytest.raises(AirflowFailException, match="v-missing"):
        recommend(prepared, model_version="v-missing")


def test_inf_is_missing_and_nulls_in_non_nullable_features_fail(prepared, warehouse):
    warehouse.execute("UPDATE features SET item_trend = CAST('inf' AS FLOAT64) WHERE item_id = 'i00001'")
    assert recommend(prepared, run_id="run-inf")["rows_written"] > 0
    warehouse.execute("UPDATE features SET item_views = NULL WHERE item_id = 'i00002'")
    with pytest.raises(AirflowFailException, match=r"item_views is declared nullable: false"):
        recommend(prepared, run_id="run-null")


_KILLED_CHILD = """
import datetime as dt, json, pathlib, sys, time, types
from airflow.sdk import DAG
from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.operators.inference import BatchRecommendOperator

marker = pathlib.Path(sys.argv[1])

class Stalling:
    def __init__(self, con):
        self._con = con
    def __getattr__(self, name):
        return getattr(self._con, name)
    def execute(self, sql, *args, **kwargs):
        if 'INSERT INTO "main"."recommendations"' in sql:
            marker.write_text("inside the transaction")
            time.sleep(120)
        return self._con.execute(sql, *args, **kwargs)

real_open = DuckDBWarehouse._open
DuckDBWarehouse._open = lambda self, *a: Stalling(real_open(self, *a))
with DAG("killed", schedule=None):
    op = BatchRecommendOperator(task_id="recommend", pipeline=sys.argv[2], prediction_date=sys.argv[3])
ti = types.SimpleNamespace(dag_id="killed", task_id="recommend", run_id="run-killed", try_number=1)
op.execute({"ds": sys.argv[3], "ti": ti})
"""


def test_sigkill_mid_write_keeps_the_previous_partition_and_the_rerun_succeeds(prepared, warehouse, tmp_path):
    recommend(prepared, run_id="run-before")
    before = lists_checksum(warehouse)
    marker = tmp_path / "stalled"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_KILLED_CHILD))
    child = subprocess.Popen(
        [sys.executable, str(script), str(marker), str(prepared["root"] / "pipeline.yaml"), str(DAY)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stdout.read().decode()[-3000:] if child.stdout else ""
            assert time.monotonic() < deadline, "the child never reached the write"
            time.sleep(0.1)
        time.sleep(0.3)  # the DELETE of the old partition is in the open transaction
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert lists_checksum(warehouse) == before
    recommend(prepared, run_id="run-after")
    assert lists_checksum(warehouse) == before  # same model, same candidates, same lists
