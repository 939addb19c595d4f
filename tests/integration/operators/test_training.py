"""Training on the local runner with real DuckDB, real LightGBM and a real subprocess trainer."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import types
from pathlib import Path

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.training.envelope import MODEL_FILE, read_envelope
from airflow_ml_provider.operators.evaluation import EvaluateAndPromoteOperator
from airflow_ml_provider.operators.training import TrainModelOperator
from tests.paths import PIPELINE, SQL_DIR

RUN_DATE = "2026-03-31"
FAST = Path()  # the fast contract, set by the fast_pipeline fixture


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory) -> Path:
    """Features and labels for the training window of a small world, built once."""
    path = tmp_path_factory.mktemp("train") / "warehouse.duckdb"
    wh = DuckDBWarehouse(path)
    world = generate(DemoConfig(users=300, items=100, days=60))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    spec = load_spec(PIPELINE)
    train, valid = spec.training_dates(dt.date.fromisoformat(RUN_DATE))
    build_features(wh, spec, SQL_DIR, [*train, *valid], labels=True)
    return path


@pytest.fixture
def warehouse(built_warehouse, tmp_path, monkeypatch) -> DuckDBWarehouse:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    extra = {"warehouse_path": str(path), "artifact_root": (tmp_path / "artifacts").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    return DuckDBWarehouse(path)


def _context(task_id: str, run_id: str = "scheduled__2026-03-31") -> dict:
    ti = types.SimpleNamespace(dag_id="recsys_training", task_id=task_id, run_id=run_id)
    return {"ds": RUN_DATE, "ti": ti}


@pytest.fixture(autouse=True)
def fast_pipeline(tmp_path_factory):
    """The reference contract with fewer, larger boosting steps: same code path, seconds not minutes."""
    folder = tmp_path_factory.mktemp("fast")
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["model"].update(num_boost_round=40, params={"learning_rate": 0.15})
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(PIPELINE.parent / "model.py", folder / "model.py")
    global FAST
    FAST = folder / "pipeline.yaml"
    return FAST


def train(pipeline: Path | None = None, run_id: str = "scheduled__2026-03-31") -> dict:
    pipeline = pipeline or FAST
    with DAG("recsys_training_test", schedule=None):
        op = TrainModelOperator(task_id="train", pipeline=str(pipeline), run_date=RUN_DATE)
    return op.execute(_context("train", run_id))


def promote(version: str, pipeline: Path | None = None, on_reject: str = "skip") -> dict:
    pipeline = pipeline or FAST
    with DAG("recsys_training_test", schedule=None):
        op = EvaluateAndPromoteOperator(task_id="promote", pipeline=str(pipeline), version=version, on_reject=on_reject)
    return op.execute(_context("promote"))


def _pipeline_copy(tmp_path: Path, edit=None, model_py: str | None = None) -> Path:
    folder = tmp_path / "pipeline"
    folder.mkdir()
    raw = yaml.safe_load(FAST.read_text())
    if edit:
        edit(raw)
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    (folder / "model.py").write_text(model_py if model_py is not None else (PIPELINE.parent / "model.py").read_text())
    return folder / "pipeline.yaml"


def test_trains_registers_and_beats_popularity(warehouse):
    result = train()
    assert result["version"].startswith("20260331-")
    assert result["model"]["ndcg"] > result["baseline"]["ndcg"]
    envelope = read_envelope(result["uri"])
    assert envelope.version == result["version"]
    assert [f.name for f in envelope.features] == [f.name for f in load_spec(PIPELINE).features]
    assert envelope.data.validation_dates[0] > envelope.data.train_dates[1]  # time split
    assert set(envelope.profile["features"]) >= {"item_price", "item_category"}
    assert envelope.hooks_sha256 and storage.exists(storage.join(result["uri"], "model.py"))
    # Gain importance per model feature, for the Models page: the trees split on some of them.
    assert set(envelope.feature_importance) == set(envelope.feature_names())
    assert all(g >= 0 for g in envelope.feature_importance.values())
    assert sum(envelope.feature_importance.values()) > 0
    # LightGBM text, never a pickle
    assert storage.read_text(storage.join(result["uri"], MODEL_FILE)).startswith("tree\n")
    record = ModelRegistry(warehouse).get("recsys", result["version"])
    assert record.status == "candidate"
    assert record.metrics["model"]["ndcg"] == pytest.approx(result["model"]["ndcg"], abs=1e-6)


def test_retry_of_the_same_run_reuses_the_version_and_never_duplicates(warehouse):
    first = train(run_id="scheduled__x")
    second = train(run_id="scheduled__x")
    assert second["version"] == first["version"]
    rows = warehouse.query("SELECT COUNT(*) AS n FROM ml_models WHERE version = @v", {"v": first["version"]})
    assert rows.to_pylist() == [{"n": 1}]


def test_gate_promotes_then_rejects_a_worse_candidate(warehouse, tmp_path):
    first = train(run_id="run-1")
    assert promote(first["version"])["promoted"] is True
    # A model that cannot learn (one tree, one leaf) must not replace the champion.
    worse = _pipeline_copy(
        tmp_path, edit=lambda raw: raw["model"].update(num_boost_round=1, params={"num_leaves": 2, "max_depth": 1})
    )
    second = train(worse, run_id="run-2")
    registry = ModelRegistry(warehouse)
    assert registry.get("recsys", second["version"]).metrics["champion"]["version"] == first["version"]
    with pytest.raises(AirflowSkipException, match=r"rejected: .*champion"):
        promote(second["version"], worse)
    assert registry.get("recsys", second["version"]).status == "rejected"
    assert registry.champion("recsys").version == first["version"]


def test_a_model_a_simple_ranker_beats_is_never_promoted_even_without_a_champion(warehouse, tmp_path):
    """The gate compares with the strongest simple ranker: a popularity list once beat a promoted model."""
    weak = _pipeline_copy(
        tmp_path,
        edit=lambda raw: raw["model"].update(
            num_boost_round=1, params={"num_leaves": 2, "max_depth": 1, "learning_rate": 0.001}
        ),
    )
    result = train(weak, run_id="weak")
    metrics = read_envelope(result["uri"]).metrics
    chosen = metrics["baseline_name"]
    assert metrics["baseline_rule"] == "strongest" and chosen == max(metrics["baselines"], key=metrics["baselines"].get)
    assert set(metrics["baselines"]) == {"global_popularity", "candidate_order", "candidate_popularity"}
    assert metrics["model"]["ndcg"] < metrics["baseline"]["ndcg"] * 1.05
    with pytest.raises(AirflowSkipException, match=rf"rejected: .*over the {chosen.replace('_', ' ')} "):
        promote(result["version"], weak)
    assert ModelRegistry(warehouse).get("recsys", result["version"]).status == "rejected"
    assert ModelRegistry(warehouse).champion("recsys") is None


CONSTANT_MODEL_PY = """
def transform(df):
    df["item_age_days"] = 3
    df["pair_views"] = 0
    return df
"""


def test_constant_features_leave_the_model_and_are_named(warehouse, tmp_path):
    """Two columns constant in the fit window: out of the model, in the envelope's skipped features, served fine."""
    pipeline = _pipeline_copy(tmp_path, model_py=CONSTANT_MODEL_PY)
    result = train(pipeline, run_id="constant")
    envelope = read_envelope(result["uri"])
    assert {"item_age_days", "pair_views"}.isdisjoint(envelope.feature_names())
    skipped = envelope.metrics["skipped_features"]
    assert skipped["item_age_days"] == "constant in the fit window (every row 3)"
    assert skipped["pair_views"] == "constant in the fit window (every row 0)"
    assert "item_age_days" not in envelope.profile["features"]


def test_broken_model_py_fails_before_training(warehouse, tmp_path):
    broken = _pipeline_copy(
        tmp_path, model_py="def params(defaults):\n    return defaults\n\ndef paramz(x):\n    return x\n"
    )
    with pytest.raises(AirflowFailException, match=r"model\.py: defines paramz, which are not documented hooks"):
        train(broken)
    assert not warehouse.table_exists("ml_models") or warehouse.query(
        "SELECT COUNT(*) AS n FROM ml_models"
    ).to_pylist() == [{"n": 0}]


def test_feature_missing_from_training_data_is_named(warehouse, tmp_path):
    def add_feature(raw):
        raw["features"].append({"name": "user_lifetime_value", "type": "FLOAT64"})

    with pytest.raises(AirflowFailException, match="user_lifetime_value"):
        train(_pipeline_copy(tmp_path, edit=add_feature))


def test_label_with_one_class_fails_before_training(warehouse):
    warehouse.execute("UPDATE labels SET relevance = 0, label = 0")
    with pytest.raises(AirflowFailException, match=r"one class only"):
        train()


def test_trainer_help_documents_vertex_conventions():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "airflow_ml_provider.core.training.trainer", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "AIP_MODEL_DIR" in out.stdout and "--champion-dir" in out.stdout


def test_too_few_lists_is_no_decision_and_the_model_stays_a_candidate(warehouse, tmp_path):
    """min_lists above the test window's lists: the gate neither promotes nor rejects."""
    strict = _pipeline_copy(tmp_path, edit=lambda raw: raw["evaluation"].update(min_lists=10_000_000))
    result = train(strict)
    envelope = read_envelope(result["uri"])
    metrics = envelope.metrics
    assert metrics["scope"] == "all_active" and metrics["model"]["users"] < 10_000_000
    # Every scope and ranker is labelled in the envelope, with k, window, lists and users.
    for scope in ("end_to_end", "all_active"):
        assert set(metrics["scopes"][scope]) == {
            "model",
            "candidate_order",
            "candidate_popularity",
            "global_popularity",
        }
    served, everyone = metrics["scopes"]["end_to_end"]["model"], metrics["scopes"]["all_active"]["model"]
    # All-active lists include the served ones; a user counts once however many test dates they are active on.
    assert everyone["lists"] >= served["lists"] and everyone["users"] <= everyone["lists"]
    dates = envelope.data.validation_dates
    assert everyone["lists"] <= everyone["users"] * ((dates[1] - dates[0]).days + 1)
    assert 0 < metrics["candidate_recall"] < 1 and metrics["window"] == "test"
    assert envelope.data.early_stopping_dates[1] < envelope.data.validation_dates[0]
    with pytest.raises(AirflowSkipException, match=r"not judged \(no decision\): No decision, too few users"):
        promote(result["version"], strict)
    assert ModelRegistry(warehouse).get("recsys", result["version"]).status == "candidate"
