"""Worlds whose items have no category, no price or neither: validate, features, training and serving work.

The contract declares the columns absent (``source_columns: {items: {category: null, price: null}}``);
the SQL reads typed NULLs, the features that require them stay in the table and leave the model,
and batch inference reads exactly the model's features (it once selected every declared feature
and refused to serve: "unexpected item_price, pair_price_ratio").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.evaluation.popularity import served_users_sql
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.validate.pipeline import validate_pipeline
from tests.paths import PIPELINE, REPO, SQL_DIR

RUN_DATE = dt.date(2026, 3, 31)
CATEGORY = {"user_top_category_share", "item_category", "pair_category_affinity"}
PRICE = {"item_price", "pair_price_ratio"}


def _contract(tmp_path: Path, absent: tuple[str, ...] = ("category", "price")) -> Path:
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["sources"]["items"] = "bare_items"
    raw["source_columns"] = {"items": dict.fromkeys(absent)}
    raw["windows"].update(
        feature_lookback_days=14, label_horizon_days=3, training_days=6, early_stopping_days=2, validation_days=3
    )
    raw["model"].update(num_boost_round=30, params={"learning_rate": 0.15})
    raw["evaluation"]["min_lists"] = 1
    raw["drift"].update(critical_features=[], thresholds={})
    raw["model"].pop("hooks", None)  # the reference model.py caps pair_price_ratio, which is all NULL here
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


WORLDS = {"no_price": ("price",), "no_category": ("category",), "neither": ("category", "price")}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW_ML_HOME": str(tmp_path / "ml")}
    return subprocess.run(
        [sys.executable, "-m", "airflow_ml_provider.cli", *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("world", ["no_price", "no_category"])
def test_a_world_without_one_attribute_is_served(tmp_path, world):
    """Features, training and batch inference on a world missing one item attribute: every active user gets k items."""
    absent = WORLDS[world]
    contract = _contract(tmp_path, absent)
    spec = load_spec(contract)
    skipped = (CATEGORY if "category" in absent else set()) | (PRICE if "price" in absent else set())
    assert set(spec.skipped_features) == skipped

    wh = DuckDBWarehouse(tmp_path / "ml" / "warehouse.duckdb")
    world_tables = generate(DemoConfig(users=200, items=70, days=40, end_date=RUN_DATE))
    wh.replace_table("users", world_tables.users)
    wh.replace_table("events", world_tables.events)
    wh.replace_table("bare_items", world_tables.items.drop_columns(list(absent)))
    train_dates, test_dates = spec.training_dates(RUN_DATE)
    build_features(wh, spec, SQL_DIR, [*train_dates, *test_dates], labels=True)
    build_features(wh, spec, SQL_DIR, [RUN_DATE])
    common = ("--pipeline", str(contract), "--warehouse", str(wh.path))
    out = _cli(tmp_path, "train", *common, "--sql-dir", str(SQL_DIR), "--date", RUN_DATE.isoformat(),
               "--no-promote", "--artifacts", str(tmp_path / "artifacts"))  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    [envelope] = (tmp_path / "artifacts").rglob("envelope.json")
    saved = json.loads(envelope.read_text())
    assert {f["name"] for f in saved["features"]} == {f.name for f in spec.features} - skipped

    out = _cli(tmp_path, "recommend", *common, "--date", RUN_DATE.isoformat(), "--model-version", saved["version"],
               "--json")  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    counts = wh.query(
        "SELECT user_id, COUNT(*) AS n FROM recommendations WHERE prediction_date = @d GROUP BY user_id",
        {"d": RUN_DATE},
    ).to_pylist()
    assert counts and {row["n"] for row in counts} == {spec.inference.top_k}
    served = wh.query(
        f"SELECT COUNT(*) AS n FROM ({served_users_sql(spec)})", {"as_of": RUN_DATE, "lookback_days": 14}
    ).to_pylist()[0]["n"]
    assert len(counts) == served, "every user active in the lookback gets a list"


def test_validate_features_and_training_without_category_and_price(tmp_path):
    contract = _contract(tmp_path)
    spec = load_spec(contract)
    assert set(spec.skipped_features) == CATEGORY | PRICE
    assert "items.category declared absent" in spec.skipped_features["item_category"]

    report = validate_pipeline(contract, SQL_DIR, DuckDBWarehouse(tmp_path / "sample.duckdb"))
    assert report.ok, "\n".join(report.lines())
    [features] = [c for c in report.checks if c.check == "features"]
    assert "item_price skipped (items.price declared absent in source_columns)" in features.detail

    wh = DuckDBWarehouse(tmp_path / "ml" / "warehouse.duckdb")
    world = generate(DemoConfig(users=250, items=80, days=45, end_date=RUN_DATE))
    wh.replace_table("users", world.users)
    wh.replace_table("events", world.events)
    wh.replace_table("bare_items", world.items.drop_columns(["category", "price"]))
    train_dates, test_dates = spec.training_dates(RUN_DATE)
    build_features(wh, spec, SQL_DIR, [*train_dates, *test_dates], labels=True)
    row = wh.query(
        "SELECT COUNT(*) AS n, COUNT(item_category) AS cat, COUNT(item_price) AS price, "
        "COUNTIF(candidate_source = 'category') AS by_category FROM features"
    ).to_pylist()[0]
    assert row["n"] > 0 and row["cat"] == row["price"] == row["by_category"] == 0

    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW_ML_HOME": str(tmp_path / "ml")}
    out = subprocess.run(
        [sys.executable, "-m", "airflow_ml_provider.cli", "train", "--pipeline", str(contract), "--sql-dir",
         str(SQL_DIR), "--date", RUN_DATE.isoformat(), "--no-promote", "--warehouse", str(wh.path),
         "--artifacts", str(tmp_path / "artifacts")],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "Feature item_category skipped: items.category declared absent" in out.stdout + out.stderr
    [envelope] = (tmp_path / "artifacts").rglob("envelope.json")
    saved = json.loads(envelope.read_text())
    names = {f["name"] for f in saved["features"]}
    assert names == {f.name for f in spec.features} - CATEGORY - PRICE
    assert set(saved["metrics"]["skipped_features"]) == CATEGORY | PRICE
    assert saved["metrics"]["scopes"]["end_to_end"]["model"]["lists"] > 0


@pytest.mark.parametrize("column", ["launch_date", "item_id"])
def test_only_optional_attributes_may_be_absent(tmp_path, column):
    from airflow_ml_provider.exceptions import ContractError

    raw = yaml.safe_load(PIPELINE.read_text())
    raw["source_columns"] = {"items": {column: None}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ContractError, match=f"source_columns.items.{column}: null .* items.category, items.price"):
        load_spec(tmp_path / "p.yaml")
