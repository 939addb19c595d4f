"""The UCI Online Retail example of docs/bring-your-own-data.md, through batch inference, on a subsample.

The shop's own column names (examples/online_retail/load.py), no item categories
(`source_columns: {items: {category: null}}`), one mapped event type: features, training and
`recommend` run as a user would run them, and every served user gets exactly k items.
The data is not in the repository (CC BY 4.0); the test skips, saying so, when it is absent.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.evaluation.popularity import served_users_sql
from tests.paths import REPO, SQL_DIR

DATA = Path(os.environ.get("ONLINE_RETAIL_PARQUET", REPO.parent / "shared" / "data" / "online_retail.parquet"))
EXAMPLE = REPO / "examples" / "online_retail"
RUN_DATE = dt.date(2011, 12, 9)

pytestmark = pytest.mark.skipif(
    not DATA.exists(),
    reason=f"{DATA} not found: the UCI Online Retail data is not in the repo (set ONLINE_RETAIL_PARQUET)",
)


def _loader():
    spec = importlib.util.spec_from_file_location("online_retail_load", EXAMPLE / "load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW_ML_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "airflow_ml_provider.cli", *args], env=env, capture_output=True, text=True, check=False
    )


def test_the_retail_example_serves_every_active_customer_k_items(tmp_path):
    tables = _loader().read_tables(DATA)
    events = tables["retail_events"]
    # One customer in three (by id), from mid-September: the example's shape, a test's size.
    ids = pc.cast(events["CustomerID"], "int64")
    recent = pc.greater_equal(events["InvoiceDate"], pc.strptime("2011-09-15", "%Y-%m-%d", "us"))
    keep = pc.and_(recent, pc.equal(pc.remainder(ids, 3), 0))
    wh = DuckDBWarehouse(tmp_path / "ml" / "warehouse.duckdb")
    wh.replace_table("retail_events", events.filter(keep))
    wh.replace_table("retail_items", tables["retail_items"])
    wh.replace_table("retail_customers", tables["retail_customers"])

    raw = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    raw["windows"].update(
        feature_lookback_days=21, label_horizon_days=3, training_days=6, early_stopping_days=2, validation_days=3
    )
    raw["model"].update(num_boost_round=30, params={"learning_rate": 0.15})
    raw["evaluation"]["min_lists"] = 1
    contract = tmp_path / "pipeline.yaml"
    contract.write_text(yaml.safe_dump(raw))
    spec = load_spec(contract)
    train_dates, test_dates = spec.training_dates(RUN_DATE)
    common = ("--pipeline", str(contract), "--sql-dir", str(SQL_DIR), "--warehouse", str(wh.path))
    home = tmp_path / "ml"
    for args in (
        ("features", "--date", train_dates[0].isoformat(), "--to", test_dates[-1].isoformat(), "--labels"),
        ("features", "--date", RUN_DATE.isoformat()),
        ("train", "--date", RUN_DATE.isoformat(), "--no-promote", "--artifacts", str(tmp_path / "artifacts")),
    ):
        out = _cli(home, *args, *common)
        assert out.returncode == 0, (args, (out.stdout + out.stderr)[-4000:])
    [envelope] = (tmp_path / "artifacts").rglob("envelope.json")
    saved = json.loads(envelope.read_text())
    metrics = saved["metrics"]
    assert "item_category" not in {f["name"] for f in saved["features"]}
    # Served-only and all-active metrics side by side, and the popularity baseline in both.
    for scope in ("end_to_end", "all_active"):
        assert {"model", "global_popularity"} <= set(metrics["scopes"][scope])
    assert metrics["scopes"]["all_active"]["model"]["users"] >= metrics["scopes"]["end_to_end"]["model"]["users"]

    out = _cli(home, "recommend", "--date", RUN_DATE.isoformat(), "--model-version", saved["version"], "--json",
               "--pipeline", str(contract), "--warehouse", str(wh.path))  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    run = json.loads(out.stdout)
    counts = wh.query(
        "SELECT user_id, COUNT(*) AS n FROM recommendations WHERE prediction_date = @d GROUP BY user_id",
        {"d": RUN_DATE},
    ).to_pylist()
    params = {"as_of": RUN_DATE, "lookback_days": spec.windows.feature_lookback_days}
    served = wh.query(f"SELECT COUNT(*) AS n FROM ({served_users_sql(spec)})", params).to_pylist()[0]["n"]
    assert len(counts) == served == run["users"], "every customer active in the lookback gets a list"
    assert {row["n"] for row in counts} == {spec.inference.top_k}
    # Coverage is of the catalogue (the items source), not of the day's candidates.
    assert run["catalog_items"] == tables["retail_items"].num_rows
