"""inference.exclude_seen drops already-consumed items in SQL before scoring, on real DuckDB."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import FeatureColumn, load_spec
from airflow_ml_provider.core.inference.scoring import candidate_features_sql
from tests.paths import PIPELINE

DAY = dt.date(2026, 3, 20)


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_table(
        "features",
        pa.table(
            {
                "as_of_date": [DAY] * 4,
                "user_id": ["u1", "u1", "u1", "u2"],
                "item_id": ["bought", "viewed", "new", "bought"],
                "candidate_score": [1.0, 2.0, 3.0, 4.0],
            }
        ),
    )
    ts = lambda d: dt.datetime.combine(d, dt.time(12), tzinfo=dt.UTC)  # noqa: E731
    wh.replace_table(
        "events",
        pa.table(
            {
                "user_id": ["u1", "u1", "u1"],
                "item_id": ["bought", "viewed", "new"],
                "event_type": ["purchase", "view", "purchase"],
                # u1 buys `new` only after the prediction date: it must stay.
                "event_ts": [ts(DAY - dt.timedelta(days=40)), ts(DAY), ts(DAY + dt.timedelta(days=1))],
            }
        ),
    )
    return wh


@pytest.mark.parametrize(
    ("exclude", "expected"),
    [
        ("none", {("u1", "bought"), ("u1", "viewed"), ("u1", "new"), ("u2", "bought")}),
        ("purchased", {("u1", "viewed"), ("u1", "new"), ("u2", "bought")}),
        ("interacted", {("u1", "new"), ("u2", "bought")}),
    ],
)
def test_exclude_seen(warehouse, exclude, expected):
    spec = load_spec(PIPELINE)
    spec = spec.model_copy(
        update={
            "features": [FeatureColumn(name="candidate_score", type="FLOAT64")],
            "inference": spec.inference.model_copy(update={"exclude_seen": exclude}),
        }
    )
    rows = warehouse.query(candidate_features_sql(spec), {"as_of": DAY}).to_pylist()
    assert {(r["user_id"], r["item_id"]) for r in rows} == expected


@pytest.mark.parametrize("exclude", ["none", "purchased", "interacted"])
def test_training_export_flags_exactly_the_rows_inference_excludes(warehouse, exclude):
    """The evaluation drops the rows flagged seen_before; they must be the rows inference never scores."""
    from airflow_ml_provider.core.training.job import training_data_sql, truth_data_sql

    spec = load_spec(PIPELINE)
    spec = spec.model_copy(
        update={
            "features": [FeatureColumn(name="candidate_score", type="FLOAT64")],
            "inference": spec.inference.model_copy(update={"exclude_seen": exclude}),
        }
    )
    keys = pa.table({"as_of_date": [DAY] * 4, "user_id": ["u1", "u1", "u1", "u2"]})
    items = ["bought", "viewed", "new", "bought"]
    warehouse.replace_table(
        "labels", keys.append_column("item_id", pa.array(items)).append_column("relevance", pa.array([1, 1, 1, 1]))
    )
    dates = {"train_start": DAY, "fit_end": DAY, "early_start": DAY, "train_end": DAY}
    dates |= {"validation_start": DAY, "validation_end": DAY}
    served = {
        (r["user_id"], r["item_id"]) for r in warehouse.query(candidate_features_sql(spec), {"as_of": DAY}).to_pylist()
    }
    params = {**dates, "lookback_days": spec.windows.feature_lookback_days, "top_k": spec.evaluation.k}
    if not warehouse.table_exists("items"):  # the popularity lists rank the catalogue
        warehouse.replace_table("items", pa.table({"item_id": sorted(set(items))}))
    for sql in (training_data_sql(spec), truth_data_sql(spec)):
        # The truth export also carries the popularity lists (popularity_rank set): not truth rows.
        rows = [r for r in warehouse.query(sql, params).to_pylist() if r.get("popularity_rank") is None]
        assert len(rows) == 4
        assert {(r["user_id"], r["item_id"]) for r in rows if not r["seen_before"]} == served
