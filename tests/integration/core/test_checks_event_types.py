"""The unknown_event_types check on real DuckDB: events the contract does not map are counted and named."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import parse_spec
from airflow_ml_provider.core.features.data_checks import run_checks
from airflow_ml_provider.core.features.event_types import unknown_event_types_query
from tests.paths import PIPELINE

DAY = dt.date(2011, 12, 9)
NOW = dt.datetime(2011, 12, 10, tzinfo=dt.UTC)


def _spec(**keys) -> object:
    raw = yaml.safe_load(PIPELINE.read_text())
    raw.update(keys)
    return parse_spec(yaml.safe_dump(raw), "pipeline.yaml")


def _events(wh: DuckDBWarehouse, kinds: list[str | None], days_ago: list[int]) -> None:
    ts = [dt.datetime(2011, 12, 9, 12, tzinfo=dt.UTC) - dt.timedelta(days=d) for d in days_ago]
    wh.replace_table(
        "retail_events",
        pa.table(
            {
                "CustomerID": [f"c{i}" for i in range(len(kinds))],
                "StockCode": ["s1"] * len(kinds),
                "InvoiceDate": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "kind": pa.array(kinds, pa.string()),
            }
        ),
    )


def _run(wh: DuckDBWarehouse, spec) -> list:
    """The unknown_event_types verdict (the query also judges event_type_variants, tested below)."""
    query = unknown_event_types_query(spec, DAY)
    assert query is not None
    results = query.evaluate(wh.query(query.sql, query.params, source="test").to_pylist()[0])
    return [r for r in results if r.name == "unknown_event_types"]


RETAIL = {
    "sources": {"events": "retail_events", "items": "items", "users": "users"},
    "source_columns": {
        "events": {"user_id": "CustomerID", "item_id": "StockCode", "event_ts": "InvoiceDate", "event_type": "kind"}
    },
    "event_types": {"purchase": ["transaction", "order"]},
}


def test_unmapped_types_in_the_lookback_are_counted_and_named(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    # 6 in the window: 3 mapped, 2 cancellations, 1 NULL; one cancellation before the lookback is not counted.
    _events(wh, ["transaction", "order", "transaction", "cancellation", "cancellation", None, "cancellation"],
            [0, 1, 2, 3, 4, 5, 40])  # fmt: skip
    [r] = _run(wh, _spec(**RETAIL))
    assert (r.table, r.status, r.severity, r.observed, r.threshold) == ("retail_events", "warn", "warn", 0.5, 0.0)
    assert "3 of 6 events" in r.message
    assert "cancellation (2), NULL (1)" in r.message
    assert "known: order, transaction" in r.message


def test_an_error_threshold_fails_and_mapped_types_pass(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _events(wh, ["transaction", "refund"], [0, 1])
    checks = {"events": {"unknown_event_types": {"max_share": 0.25, "severity": "error"}}}
    spec = _spec(**{**RETAIL, "checks": checks})
    [r] = _run(wh, spec)
    assert r.failed and r.observed == 0.5 and "refund (1)" in r.message
    mapped = _spec(**{**RETAIL, "checks": checks, "event_types": {"purchase": ["transaction"], "view": ["refund"]}})
    [r] = _run(wh, mapped)
    assert r.status == "pass" and r.observed == 0.0 and r.message == ""


def test_without_a_mapping_the_known_types_are_the_sqls(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_table(
        "events",
        pa.table(
            {
                "event_ts": pa.array([dt.datetime(2011, 12, 9, tzinfo=dt.UTC)] * 3, pa.timestamp("us", tz="UTC")),
                "user_id": ["u1", "u2", "u3"],
                "item_id": ["i1", "i1", "i1"],
                "event_type": ["view", "purchase", "wishlist"],
            }
        ),
    )
    results = run_checks(wh, _spec(), DAY, NOW, scope="events")  # beside the other event checks
    [r] = [r for r in results if r.name == "unknown_event_types"]
    assert r.observed == round(1 / 3, 6) and "wishlist (1)" in r.message
    off = {"events": {"unknown_event_types": None, "event_type_variants": None}}
    assert unknown_event_types_query(_spec(checks=off), DAY) is None


def test_known_types_in_another_case_or_with_spaces_fail_by_name(tmp_path):
    """'Purchase' and ' purchase' are not purchases to the SQL: an error naming them, unless mapped."""
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_table(
        "events",
        pa.table(
            {
                "event_ts": pa.array([dt.datetime(2011, 12, 9, tzinfo=dt.UTC)] * 4, pa.timestamp("us", tz="UTC")),
                "user_id": ["u1", "u2", "u3", "u4"],
                "item_id": ["i1", "i1", "i1", "i1"],
                "event_type": ["purchase", "Purchase", " purchase", "wishlist"],
            }
        ),
    )
    query = unknown_event_types_query(_spec(), DAY)
    assert query is not None
    results = {r.name: r for r in query.evaluate(wh.query(query.sql, query.params, source="t").to_pylist()[0])}
    variants = results["event_type_variants"]
    assert variants.failed and variants.observed == 2
    assert "'Purchase' (1)" in variants.message and "' purchase' (1)" in variants.message
    assert "LOWER(TRIM(event_type))" in variants.message
    assert results["unknown_event_types"].observed == 0.75  # wishlist and the two variants
    mapped = _spec(event_types={"purchase": ["purchase", "Purchase", " purchase"]})
    query = unknown_event_types_query(mapped, DAY)
    results = {r.name: r for r in query.evaluate(wh.query(query.sql, query.params, source="t").to_pylist()[0])}
    assert results["event_type_variants"].status == "pass"
