"""DriftCheckOperator end to end on DuckDB: a real trained champion, the demo world's drift injection, real Airflow."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.dates import date_range
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.operators.drift import DriftCheckOperator
from airflow_ml_provider.operators.inference import BatchRecommendOperator
from airflow_ml_provider.operators.training import TrainModelOperator
from tests.paths import DAGS_DIR, PIPELINE, SQL_DIR

RUN_DATE = dt.date(2026, 3, 31)
#: Tastes shift towards electronics and activity rises x1.5 from here on (after the validation window).
DRIFT_FROM = dt.date(2026, 3, 25)
CLEAN, DRIFTED = "2026-03-24", "2026-03-31"
#: What the injection moves in this world: the category mix (per row, critical in the contract).
MOVED = ("item_category",)


def _context(task_id: str, ds: str, run_id: str = "drift-run") -> dict:
    return {
        "ds": ds,
        "logical_date": None,
        "ti": types.SimpleNamespace(dag_id="recsys_drift", task_id=task_id, run_id=run_id),
    }


def _fast_pipeline(folder: Path, edit=None) -> Path:
    """The reference contract with a quick model; ``edit`` changes the raw YAML."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["model"].update(num_boost_round=40, params={"learning_rate": 0.15})
    if edit:
        edit(raw)
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(PIPELINE.parent / "model.py", folder / "model.py")
    return folder / "pipeline.yaml"


def _connection(path: Path, artifacts: Path) -> str:
    extra = {"warehouse_path": str(path), "artifact_root": artifacts.as_uri()}
    return json.dumps({"conn_type": "ml_platform", "extra": extra})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A drifted demo world with features for every day, and a trained, promoted champion."""
    root = tmp_path_factory.mktemp("drift")
    path, artifacts = root / "warehouse.duckdb", root / "artifacts"
    wh = DuckDBWarehouse(path)
    world = generate(DemoConfig(users=400, items=100, days=74, end_date=RUN_DATE, drift_from=DRIFT_FROM))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    spec = load_spec(PIPELINE)
    train, valid = spec.training_dates(RUN_DATE)
    build_features(wh, spec, SQL_DIR, [*train, *valid], labels=True)
    build_features(wh, spec, SQL_DIR, date_range(valid[-1] + dt.timedelta(days=1), RUN_DATE))
    os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = _connection(path, artifacts)
    try:
        with DAG("recsys_training_test", schedule=None):
            op = TrainModelOperator(
                task_id="train", pipeline=str(_fast_pipeline(root / "fast")), run_date=str(RUN_DATE)
            )
        version = op.execute(_context("train", str(RUN_DATE)))["version"]
    finally:
        del os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"]
    ModelRegistry(wh).promote("recsys", version, blessed_by="test", reason="drift tests")
    return path, artifacts


@pytest.fixture
def warehouse(built, tmp_path, monkeypatch) -> DuckDBWarehouse:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built[0], path)
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", _connection(path, built[1]))
    return DuckDBWarehouse(path)


def check(day: str, pipeline: Path | str = PIPELINE, run_id: str = "drift-run", **kwargs) -> dict:
    with DAG("recsys_drift_test", schedule=None):
        op = DriftCheckOperator(task_id="drift_check", pipeline=str(pipeline), partition_date=day, **kwargs)
    return op.execute(_context("drift_check", day, run_id))


def psi_by_column(warehouse: DuckDBWarehouse, day: str) -> dict[str, float]:
    rows = warehouse.query(
        "SELECT feature, value FROM drift_results WHERE logical_date = @d AND metric = 'psi' "
        "AND segment = '__all__' AND status = 'evaluated'",
        {"d": dt.date.fromisoformat(day)},
    ).to_pylist()
    return {r["feature"]: r["value"] for r in rows}


def test_clean_day_passes_and_the_drifted_day_finds_the_drifted_features(warehouse):
    clean = check(CLEAN, predictions_table=None)
    drifted = check(DRIFTED, predictions_table=None)
    assert clean["verdict"] in ("ok", "warn") and "item_category" not in clean["drifted"]
    assert drifted["verdict"] == "drift"
    assert set(MOVED) <= set(drifted["drifted"]) and drifted["results"]["table"] == "drift_results"
    # Item activity is profiled per item (drift.per_item): this world has under 100 items a day,
    # too few to judge (min_items), so those columns are skipped, not read as drift.
    per_item = load_spec(PIPELINE).drift.per_item
    for summary in (clean, drifted):
        assert {c: summary["skipped"].get(c, "")[:9] for c in per_item} == dict.fromkeys(per_item, "too_small")
        assert all("fewer than min_items=100" in summary["skipped"][c] for c in per_item)
    before, after = psi_by_column(warehouse, CLEAN), psi_by_column(warehouse, DRIFTED)
    # The injected change itself: the category mix.
    # The new candidate generators dilute the category shift a little: 3x on this world, was 4x+.
    assert after["item_category"] >= max(0.10, 2.5 * before["item_category"]), (before, after)
    # Features the injection does not touch stay put: the user's own rates and pair history.
    for column in ("user_purchase_rate", "pair_views", "pair_conversions"):
        assert after[column] < 0.10, (column, after[column])
    # Segments are judged against their own reference, built once from the training window.
    segments = warehouse.query(
        "SELECT DISTINCT segment FROM drift_results WHERE logical_date = @d AND segment != '__all__'",
        {"d": dt.date.fromisoformat(DRIFTED)},
    ).to_pylist()
    assert {r["segment"] for r in segments} >= {"candidate_source=covisit", "candidate_source=repeat"}
    stored = warehouse.query("SELECT COUNT(DISTINCT segment) AS n FROM drift_profiles WHERE segment_by != ''")
    assert stored.to_pylist()[0]["n"] >= 2


def test_per_item_columns_count_each_item_once(warehouse, tmp_path):
    # With min_items lowered to this world's catalog, item activity is judged on distinct items.
    pipeline = _fast_pipeline(tmp_path, lambda raw: raw["drift"].update(min_items=50))
    check(DRIFTED, pipeline=pipeline, predictions_table=None)
    day = {"d": dt.date.fromisoformat(DRIFTED)}
    partition = warehouse.query(
        "SELECT COUNT(*) AS n_rows, COUNT(DISTINCT item_id) AS n_items FROM features WHERE as_of_date = @d", day
    ).to_pylist()[0]
    results = warehouse.query(
        "SELECT feature, status, n_cur FROM drift_results WHERE logical_date = @d AND metric = 'psi' "
        "AND segment = '__all__' AND table_name = 'features'",
        day,
    ).to_pylist()
    per_item = set(load_spec(PIPELINE).drift.per_item)
    counted = {r["feature"]: r["n_cur"] for r in results if r["status"] == "evaluated"}
    assert per_item <= set(counted) and partition["n_items"] < partition["n_rows"]
    assert {c: n for c, n in counted.items() if c in per_item} == dict.fromkeys(per_item, partition["n_items"])
    assert {n for c, n in counted.items() if c not in per_item} == {partition["n_rows"]}


def test_rerun_leaves_one_set_of_results(warehouse):
    first = check(DRIFTED, run_id="run-1", predictions_table=None)
    check(DRIFTED, run_id="run-2", predictions_table=None)
    rows = warehouse.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS runs, MIN(run_id) AS run FROM drift_results "
        "WHERE logical_date = @d",
        {"d": dt.date.fromisoformat(DRIFTED)},
    ).to_pylist()[0]
    assert (rows["runs"], rows["run"]) == (1, "run-2")
    assert rows["n"] == warehouse.query("SELECT COUNT(*) AS n FROM drift_results").to_pylist()[0]["n"]
    profiles = warehouse.query("SELECT COUNT(*) AS n FROM drift_profiles").to_pylist()[0]["n"]
    check(DRIFTED, run_id="run-3", predictions_table=None)
    assert warehouse.query("SELECT COUNT(*) AS n FROM drift_profiles").to_pylist()[0]["n"] == profiles
    assert first["verdict"] == "drift"


def test_prediction_drift_uses_the_days_recommendations(warehouse):
    with DAG("recsys_batch_inference_test", schedule=None):
        op = BatchRecommendOperator(task_id="recommend", pipeline=str(PIPELINE), prediction_date=DRIFTED)
    op.execute(
        {
            **_context("recommend", DRIFTED),
            "ti": types.SimpleNamespace(dag_id="d", task_id="r", run_id="r", try_number=1),
        }
    )
    check(DRIFTED)
    score = warehouse.query(
        "SELECT table_name, n_cur, status FROM drift_results WHERE feature = 'score' AND metric = 'psi'"
    ).to_pylist()
    assert score == [{"table_name": "recommendations", "n_cur": score[0]["n_cur"], "status": "evaluated"}]
    assert score[0]["n_cur"] > 1000


def test_fail_on_fails_after_writing_the_results(warehouse):
    with pytest.raises(AirflowFailException, match=r"verdict drift with fail_on='drift' \(drifted: .*item_category"):
        check(DRIFTED, fail_on="drift", predictions_table=None)
    assert psi_by_column(warehouse, DRIFTED)["item_category"] > 0.10
    with pytest.raises(AirflowFailException, match="fail_on='warn'"):
        check(DRIFTED, fail_on="warn", predictions_table=None)
    assert check(DRIFTED, fail_on="never", predictions_table=None)["verdict"] == "drift"
    with pytest.raises(AirflowFailException, match="fail_on must be one of drift, warn, never, got 'always'"):
        check(DRIFTED, fail_on="always", predictions_table=None)


def test_a_threshold_out_of_range_in_the_contract_is_a_clear_error(warehouse, tmp_path):
    def results() -> int:
        if not warehouse.table_exists("drift_results"):
            return 0
        return warehouse.query("SELECT COUNT(*) AS n FROM drift_results").to_pylist()[0]["n"]

    before = results()
    bad = _fast_pipeline(tmp_path / "bad", edit=lambda raw: raw["drift"].update(psi_warn=12))
    with pytest.raises(AirflowFailException) as info:
        check(DRIFTED, pipeline=bad)
    message = str(info.value)
    assert "pipeline.yaml: drift.psi_warn: psi_warn must be a number between 0 and 10" in message
    assert results() == before  # nothing written


def test_unknown_pinned_version_names_the_fix(warehouse):
    with pytest.raises(AirflowFailException, match=r"has no version 'v404' .*airflow-ml models list"):
        check(DRIFTED, model_version="v404", predictions_table=None)


def test_empty_partition_is_skipped_not_crashed(warehouse):
    summary = check("2026-04-15", predictions_table=None)
    assert summary["verdict"] == "skipped" and summary["evaluated"] == 0
    assert all(reason.startswith("empty: no current rows") for reason in summary["skipped"].values())


@pytest.mark.integration
def test_recsys_drift_dag_emits_drift_detected_only_on_the_drifted_day(built, tmp_path, airflow_db):
    """`airflow dags test` of the reference DAG after batch inference, on a clean and a drifted day."""
    home = tmp_path / "ml"
    home.mkdir()
    shutil.copy(built[0], home / "warehouse.duckdb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR),
        AIRFLOW_ML_HOME=str(home),
        AIRFLOW_CONN_ML_PLATFORM_DEFAULT=_connection(home / "warehouse.duckdb", built[1]),
    )
    os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = env["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"]
    try:
        for day in (CLEAN, DRIFTED):
            with DAG("recsys_batch_inference_test", schedule=None):
                op = BatchRecommendOperator(task_id="recommend", pipeline=str(PIPELINE), prediction_date=day)
            ti = types.SimpleNamespace(dag_id="d", task_id="recommend", run_id=f"r-{day}", try_number=1)
            op.execute({"ds": day, "ti": ti})
    finally:
        del os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"]
    db = airflow_db / "airflow.db"

    def drift_events() -> list[dict]:
        with sqlite3.connect(db) as con:
            rows = con.execute(
                "SELECT e.extra FROM asset_event AS e JOIN asset AS a ON a.id = e.asset_id "
                "WHERE a.name = 'recsys_drift_detected'"
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    airflow = str(Path(sys.executable).parent / "airflow")
    seen = len(drift_events()) if db.exists() else 0
    for day, emits in ((CLEAN, False), (DRIFTED, True)):
        out = subprocess.run([airflow, "dags", "test", "recsys_drift", day], env=env, capture_output=True, text=True)
        log = out.stdout + out.stderr
        assert out.returncode == 0 and "state=success" in log, log[-4000:]
        assert "Drift | verdict" in log
        events = drift_events()
        assert len(events) == seen + emits, (day, events)
        seen = len(events)
    assert events[-1]["logical_date"] == DRIFTED and "item_category" in events[-1]["drifted"]


def test_the_checked_date_comes_from_the_triggering_event_then_the_run():
    with DAG("recsys_drift_test", schedule=None):
        op = DriftCheckOperator(task_id="drift_check", pipeline=str(PIPELINE))

    def event(extra: dict, minute: int, source_date: dt.date | None = None):
        run = types.SimpleNamespace(logical_date=dt.datetime.combine(source_date, dt.time())) if source_date else None
        return types.SimpleNamespace(extra=extra, timestamp=dt.datetime(2026, 4, 1, 6, minute), source_dag_run=run)

    newest_first = {"recs": [event({"prediction_date": "2026-03-30"}, 1), event({"prediction_date": "2026-03-31"}, 2)]}
    run_after = types.SimpleNamespace(run_after=dt.datetime(2026, 4, 2, 7))
    assert op.check_date({"triggering_asset_events": newest_first, "dag_run": run_after}) == dt.date(2026, 3, 31)
    from_source = {"recs": [event({}, 1, dt.date(2026, 3, 29))]}
    assert op.check_date({"triggering_asset_events": from_source, "dag_run": run_after}) == dt.date(2026, 3, 29)
    logical = {"logical_date": dt.datetime(2026, 3, 28, tzinfo=dt.UTC), "dag_run": run_after}
    assert op.check_date(logical) == dt.date(2026, 3, 28)
    assert op.check_date({"triggering_asset_events": {}, "dag_run": run_after}) == dt.date(2026, 4, 2)
    op.partition_date = "2026-03-27"
    assert op.check_date({"triggering_asset_events": newest_first}) == dt.date(2026, 3, 27)
