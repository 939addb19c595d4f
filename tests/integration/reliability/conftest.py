"""Shared world for the reliability suite: a small seeded warehouse with everything a day of the pipeline leaves.

``world`` (session-scoped) builds it once: the demo sources, features and labels for a
training window, a trained LightGBM champion (with its drift profile), the day's
recommendations and drift results. ``case`` copies the DuckDB file and the artifacts into
the test's tmp dir and points the default ``ml_platform`` connection at the copy, so a test
may break anything without touching the others.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import PIPELINE, SQL_DIR

DAY = dt.date(2026, 3, 31)
MODEL = "recsys"
VERSION = "v1"


@dataclass(frozen=True)
class World:
    """Where one copy of the world lives."""

    root: Path
    warehouse: Path
    artifacts: Path
    pipeline: Path

    @property
    def model_dir(self) -> Path:
        return self.artifacts / MODEL / VERSION / "model"

    def connection(self, **extra: Any) -> str:
        """``AIRFLOW_CONN_*`` JSON of a local ml_platform connection on this copy."""
        base = {"warehouse_path": str(self.warehouse), "artifact_root": self.artifacts.as_uri()}
        return json.dumps({"conn_type": "ml_platform", "extra": {**base, **extra}})


def fast_contract(folder: Path) -> Path:
    """The reference contract with a quick model (same code path, seconds not minutes), and its model.py."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["model"].update(num_boost_round=30, params={"learning_rate": 0.2})
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copy(PIPELINE.parent / "model.py", folder / "model.py")
    return folder / "pipeline.yaml"


def context(task_id: str, run_id: str = "manual__reliability", try_number: int = 1, **extra: Any) -> dict[str, Any]:
    """The minimal task context the provider's operators read."""
    ti = types.SimpleNamespace(dag_id="reliability", task_id=task_id, run_id=run_id, try_number=try_number)
    return {"ds": DAY.isoformat(), "logical_date": None, "ti": ti, **extra}


def build_world(root: Path) -> World:
    """Seed, build features and labels, train and promote a champion, recommend and check drift for DAY."""
    from airflow.sdk import DAG

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.contract.model_hooks import load_hooks
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.job import training_data_sql, training_params
    from airflow_ml_provider.core.training.trainer import train
    from airflow_ml_provider.operators.drift import DriftCheckOperator
    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    w = World(root, root / "warehouse.duckdb", root / "artifacts", fast_contract(root / "contract"))
    wh = DuckDBWarehouse(w.warehouse, lock_timeout=30)
    demo = generate(DemoConfig(users=250, items=90, days=60, end_date=DAY))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(demo, name))
    spec = load_spec(w.pipeline)
    train_dates, valid_dates = spec.training_dates(DAY)
    build_features(wh, spec, SQL_DIR, [*train_dates, *valid_dates], labels=True)
    build_features(wh, spec, SQL_DIR, [DAY])
    data = wh.export_parquet(training_data_sql(spec), training_params(spec, DAY), (root / "data").as_uri())
    hooks = load_hooks(w.pipeline.parent / "model.py")
    envelope = train(
        spec,
        data,
        w.model_dir.as_uri(),
        name=MODEL,
        version=VERSION,
        validation_from=valid_dates[0],
        hooks=hooks,
    )
    registry = ModelRegistry(wh)
    registry.register_trained(envelope, w.model_dir.as_uri())
    registry.promote(MODEL, VERSION, blessed_by="reliability", reason="fixture")
    saved = os.environ.get("AIRFLOW_CONN_ML_PLATFORM_DEFAULT")
    os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = w.connection()
    try:
        with DAG("reliability_world", schedule=None):
            rec = BatchRecommendOperator(task_id="recommend", pipeline=str(w.pipeline), prediction_date=str(DAY))
            drift = DriftCheckOperator(task_id="drift", pipeline=str(w.pipeline), partition_date=str(DAY))
        rec.execute(context("recommend", run_id="world"))
        drift.execute(context("drift", run_id="world"))
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = saved
    return w


def copy_world(src: World, dest: Path) -> World:
    """A private copy of ``src`` under ``dest``; ml_models points at the copied artifacts."""
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.warehouse, dest / "warehouse.duckdb")
    shutil.copytree(src.artifacts, dest / "artifacts")
    shutil.copytree(src.pipeline.parent, dest / "contract")
    w = World(dest, dest / "warehouse.duckdb", dest / "artifacts", dest / "contract" / "pipeline.yaml")
    with DuckDBWarehouse(w.warehouse).connect() as con:
        con.execute(
            "UPDATE ml_models SET uri = replace(uri, $old, $new)",
            {"old": src.artifacts.as_uri(), "new": w.artifacts.as_uri()},
        )
    return w


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    """The world, built once per session (every test works on its own copy)."""
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def case(world: World, tmp_path: Path, monkeypatch) -> World:
    """A private copy of the world; the default ml_platform connection points at it."""
    w = copy_world(world, tmp_path / "case")
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", w.connection())
    return w


def table_checksums(path: Path) -> dict[str, tuple[int, int]]:
    """Every base table of the DuckDB file (all schemas): row count and an order-independent hash of all rows."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        out = {}
        for schema, name in tables:
            count, digest = con.execute(
                f'SELECT count(*), coalesce(sum(hash(t)), 0) FROM "{schema}"."{name}" AS t'
            ).fetchone()
            out[f"{schema}.{name}"] = (int(count), int(digest))
        return out
    finally:
        con.close()
