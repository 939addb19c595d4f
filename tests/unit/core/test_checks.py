"""The checks: section and its compile to one aggregation per table (pure: no warehouse)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from airflow_ml_provider.core.contract.spec import parse_spec
from airflow_ml_provider.core.features.checks import (
    DataCheckError,
    event_check_query,
    raise_on_errors,
    table_check_query,
    table_checks,
)
from airflow_ml_provider.core.warehouse.sql import referenced_params, to_duckdb
from airflow_ml_provider.exceptions import ContractError
from tests.paths import PIPELINE

DAY = dt.date(2026, 3, 31)
NOW = dt.datetime(2026, 4, 1, 6, tzinfo=dt.UTC)


def spec_with(checks: dict | None = None, **edits):
    raw = yaml.safe_load(PIPELINE.read_text())
    if checks is not None:
        raw["checks"] = checks
    raw.update(edits)
    return parse_spec(yaml.safe_dump(raw), "pipeline.yaml")


def test_reference_contract_gets_automatic_checks_on_the_feature_table_only():
    spec = spec_with()
    names = [c.name for c in table_checks(spec, "features")]
    assert names[:2] == ["not_null(user_id)", "not_null(item_id)"]
    assert "not_null(item_category)" in names and "not_null(pair_days_since_last_event)" not in names
    assert "unique(user_id, item_id)" in names
    assert names[-3:] == [f"{c.check}({c.column})" for c in spec.checks.tables["features"]]  # declared ones last
    assert table_checks(spec, "user_features") == []
    assert table_checks(spec_with({"automatic": False}), "features") == []


def test_declared_checks_are_added_and_values_travel_as_parameters():
    spec = spec_with(
        {
            "tables": {
                "features": [
                    {"check": "accepted_values", "column": "candidate_source", "values": ["history", "x'; DROP"]},
                    {"check": "range", "column": "item_price", "min": 0, "severity": "warn"},
                ]
            }
        }
    )
    query = table_check_query(spec, "features", "staged", DAY)
    assert query is not None
    assert "DROP" not in query.sql  # the value is a parameter, never SQL text
    assert referenced_params(query.sql) <= set(query.params)
    assert "x'; DROP" in query.params.values()
    to_duckdb(query.sql)  # GoogleSQL the DuckDB backend can run


def test_judging_a_row_gives_values_not_exceptions():
    spec = spec_with(
        {"tables": {"features": [{"check": "range", "column": "item_price", "min": 0, "severity": "warn"}]}}
    )
    query = table_check_query(spec, "features", "staged", DAY)
    assert query is not None
    n = len(table_checks(spec, "features"))
    row = {"chk_rows": 10, **{f"chk_{i}": 0 for i in range(n)}}
    row["chk_2"] = 3  # not_null(candidate_source)
    row[f"chk_{n - 1}"] = 2  # the range check, a warning
    results = query.evaluate(row)
    by_name = {r.name: r for r in results}
    assert by_name["not_null(candidate_source)"].status == "fail"
    assert by_name["not_null(candidate_source)"].observed == 3
    assert by_name["range(item_price)"].status == "warn"
    assert by_name["not_null(item_id)"].status == "pass" and by_name["not_null(item_id)"].message == ""
    with pytest.raises(DataCheckError, match=r"features partition 2026-03-31: 1 data check\(s\) failed"):
        raise_on_errors(results, "features partition 2026-03-31")
    raise_on_errors([r for r in results if r.status != "fail"], "only warnings pass")


def test_event_checks_compile_to_one_query_with_trailing_days():
    spec = spec_with({"events": {"row_count": {"trailing_days": 3}}})
    query = event_check_query(spec, DAY, NOW)
    assert query is not None and query.table == "events"
    assert query.sql.count("FROM events") == 1
    assert {"chk_day_0", "chk_day_3"} <= {c.split(" AS ")[-1].strip(",") for c in query.sql.split("\n")}
    to_duckdb(query.sql)
    row = {"chk_lag": 0, "chk_future": 0, "chk_duplicates": 0, "chk_window": 100, "chk_day_0": 0}
    row |= {"chk_day_1": 10, "chk_day_2": 12, "chk_day_3": 11}
    by_name = {r.name: r for r in query.evaluate(row)}
    assert by_name["row_count"].status == "warn" and by_name["row_count"].observed == 1.0
    assert "0 events on 2026-03-31 against a median of 11" in by_name["row_count"].message
    assert by_name["freshness"].status == "pass"


def test_row_count_without_history_is_skipped_not_judged():
    query = event_check_query(spec_with(), DAY, NOW)
    assert query is not None
    by_name = {r.name: r for r in query.evaluate({"chk_lag": None, "chk_day_0": 5})}
    assert by_name["row_count"].status == "skipped"
    assert by_name["freshness"].status == "fail" and "no event in the scanned window" in by_name["freshness"].message


def test_label_step_gets_label_completeness():
    spec = spec_with()
    query = table_check_query(spec, "labels", "staged", DAY)
    assert query is not None and "FROM events" in query.sql
    results = {r.name: r for r in query.evaluate({"chk_rows": 50, "chk_positives": 0, "chk_horizon_days": 7})}
    assert results["label_completeness(horizon_ended)"].status == "pass"
    assert results["label_completeness(positives)"].status == "fail"
    assert "0 positive label(s) of 50 row(s)" in results["label_completeness(positives)"].message


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ({"tables": {"nope": []}}, r"checks\.tables: 'nope' is not written by a step"),
        ({"tables": {"features": [{"check": "unique"}]}}, r"unique needs `columns`"),
        ({"tables": {"features": [{"check": "not_null"}]}}, r"not_null needs `column`"),
        ({"tables": {"features": [{"check": "range", "column": "x"}]}}, r"range needs `min`, `max` or both"),
        ({"tables": {"features": [{"check": "range", "column": "x", "min": 2, "max": 1}]}}, r"min \(2\) must not"),
        ({"tables": {"features": [{"check": "accepted_values", "column": "x"}]}}, r"needs `values`"),
        ({"tables": {"features": [{"check": "not_null", "column": "a; DROP"}]}}, r"not a valid identifier"),
        ({"events": {"source": "clicks"}}, r"checks\.events\.source: 'clicks' is not a role in `sources`"),
        ({"events": {"freshness": {"severity": "fatal"}}}, r"checks\.events\.freshness\.severity"),
        ({"freshness": {}}, r"checks\.freshness"),
    ],
)
def test_contract_errors_name_the_key(checks, message):
    with pytest.raises(ContractError, match=message):
        spec_with(checks)


def test_events_checks_can_be_switched_off():
    spec = spec_with({"events": None, "label_completeness": None})
    assert event_check_query(spec, DAY, NOW) is None
    assert table_check_query(spec, "labels", "staged", DAY) is None
