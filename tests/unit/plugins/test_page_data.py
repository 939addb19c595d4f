"""The data behind the detail pages, read from a real DuckDB warehouse (seeded in tests/unit/plugins/world.py)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.inference.runs import record_run, utcnow
from airflow_ml_provider.core.warehouse import ddl
from airflow_ml_provider.plugins import data, data_drift, data_models, data_outcomes, data_quality
from tests.unit.plugins.world import DAYS, PRICE_PROFILE, V3_IMPORTANCE, seed_outcomes


@pytest.fixture
def empty(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "empty.duckdb", lock_timeout=2)


# --- runs ------------------------------------------------------------------------------------


def test_runs_show_a_killed_running_try_as_lost_as_the_cli_does(empty):
    ddl.ensure_tables(empty, "recommendation_runs")
    now = utcnow()
    day, other = dt.date(2026, 3, 31), dt.date(2026, 3, 30)
    for run_id, try_number, on, status, version, started in (
        ("run-a", 1, day, "running", "v1", now - dt.timedelta(minutes=30)),  # a newer try of its date started
        ("run-a", 2, day, "success", "v2", now - dt.timedelta(minutes=10)),
        ("run-b", 1, other, "running", "v2", now - dt.timedelta(minutes=5)),  # still running
    ):
        row = {"run_id": run_id, "try_number": try_number, "prediction_date": on, "model_name": "recsys"}
        times = {"started_at": started, "finished_at": started}  # as core.inference.runs writes a running row
        record_run(empty, {**row, "model_version": version, "status": status, **times})
    shown = {(r["run_id"], r["try_number"]): r["status"] for r in data.recommendations(empty)["runs"]}
    assert shown == {("run-a", 1): "lost", ("run-a", 2): "success", ("run-b", 1): "running"}
    # The newer try judges the older one even when the version filter hides it.
    assert [r["status"] for r in data.recommendations(empty, version="v1")["runs"]] == ["lost"]


# --- outcomes ----------------------------------------------------------------------------------


def test_outcomes_are_the_all_rows_segment_oldest_first_and_filter_by_version_and_date(seeded):
    rows = data_outcomes.outcomes(seeded)
    assert [(r["prediction_date"], r["list_source"]) for r in rows] == [
        ("2026-03-29", "global_popularity"),
        ("2026-03-29", "model"),
        ("2026-03-31", "global_popularity"),
        ("2026-03-31", "model"),
    ]
    assert data_outcomes.outcomes(seeded, version="v1") == []
    assert {r["prediction_date"] for r in data_outcomes.outcomes(seeded, end=DAYS[1])} == {"2026-03-29"}
    segment = data_outcomes.outcomes(seeded, segment="country=DE")
    assert [(r["prediction_date"], r["hit_rate"]) for r in segment] == [("2026-03-31", 1.0)]


def test_outcome_series_leave_a_gap_for_a_date_with_no_outcome(seeded):
    rows = data_outcomes.outcomes(seeded)
    dates = data_outcomes.outcome_dates(rows)
    assert dates == ["2026-03-29", "2026-03-30", "2026-03-31"]
    series = data_outcomes.outcome_series(rows, "hit_rate")
    assert [series["recsys v2"].get(d) for d in dates] == [0.5, None, 0.75]
    assert [series["global popularity"].get(d) for d in dates] == [0.25, None, 0.25]


def test_outcomes_read_as_none_when_the_table_does_not_exist(empty):
    assert data_outcomes.outcomes(empty) == []
    assert data_outcomes.outcome_dates([]) == []


def test_popularity_of_a_date_served_by_two_versions_is_the_one_judged_on_more_users(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "two.duckdb")
    day = DAYS[0]
    base = {"prediction_date": day, "horizon_start": day, "horizon_end": day, "model_name": "m", "segment": "all"}
    seed_outcomes(
        wh,
        [
            base | {"list_source": "model", "model_version": "a", "active_users": 10, "hit_rate": 0.5},
            base | {"list_source": "global_popularity", "model_version": "a", "active_users": 10, "hit_rate": 0.2},
            base | {"list_source": "model", "model_version": "b", "active_users": 90, "hit_rate": 0.6},
            base | {"list_source": "global_popularity", "model_version": "b", "active_users": 90, "hit_rate": 0.3},
        ],
    )
    series = data_outcomes.outcome_series(data_outcomes.outcomes(wh), "hit_rate")
    assert series == {"m a": {"2026-03-29": 0.5}, "m b": {"2026-03-29": 0.6}, "global popularity": {"2026-03-29": 0.3}}


# --- top items and the user lookup -------------------------------------------------------------


def test_top_items_carry_category_and_price_from_the_items_table(seeded):
    found = data_outcomes.top_items(seeded, DAYS[2])
    assert found["attributes"] == ["category", "price"]
    by_item = {r["item_id"]: r for r in found["items"]}
    assert set(by_item) == {"i2", "i3", "i4"}
    assert (by_item["i2"]["category"], by_item["i2"]["price"]) == ("bags", 30.0)
    assert (by_item["i4"]["category"], by_item["i4"]["price"]) == (None, None)  # an item with neither
    assert by_item["i2"]["users"] == 4 and by_item["i2"]["first_place"] == 4


def test_top_items_degrade_when_the_items_table_lacks_price_or_is_missing(seeded, tmp_path):
    wh = DuckDBWarehouse(tmp_path / "copy.duckdb")
    wh.replace_table("recommendations", seeded.query("SELECT * FROM recommendations"))
    assert data_outcomes.top_items(wh, DAYS[2])["attributes"] == []  # no items table at all
    wh.replace_table("items", pa.table({"item_id": ["i2"], "category": ["bags"]}))
    found = data_outcomes.top_items(wh, DAYS[2])
    assert found["attributes"] == ["category"]
    assert {r["item_id"]: (r["category"], r["price"]) for r in found["items"]}["i2"] == ("bags", None)


def test_user_lookup_shows_the_list_and_what_the_user_did_in_the_judged_horizon(seeded):
    found = data_outcomes.user_lookup(seeded, "u0")
    assert found["prediction_date"] == "2026-03-31"
    assert (found["horizon_start"], found["horizon_end"], found["horizon_evaluated"]) == (
        "2026-04-01",
        "2026-04-07",
        True,
    )
    assert [(r["rank"], r["item_id"], r["then"]) for r in found["served"]] == [
        (1, "i2", ["view"]),
        (2, "i3", []),  # viewed on 04-20, after the horizon
        (3, "i4", []),
    ]
    assert [r["score"] for r in found["served"]] == pytest.approx([1.0, 0.9, 0.8])
    # The served day's own view is not in the horizon; the purchase of i0 (never on the list) is.
    assert [(e["item_id"], e["event_type"], e["events"], e["on_list"]) for e in found["did"]] == [
        ("i2", "view", 2, True),
        ("i0", "purchase", 1, False),
    ]


def test_user_lookup_of_an_unevaluated_date_uses_a_provisional_horizon(seeded):
    found = data_outcomes.user_lookup(seeded, "u0", DAYS[1])
    assert found["prediction_date"] == "2026-03-30"
    assert found["horizon_evaluated"] is False
    assert (found["horizon_start"], found["horizon_end"]) == ("2026-03-31", "2026-04-06")


def test_user_lookup_of_an_unknown_user_serves_nothing(seeded):
    found = data_outcomes.user_lookup(seeded, "nobody")
    assert found["served"] == [] and found["prediction_date"] is None


# --- a model version ---------------------------------------------------------------------------


def test_model_version_reads_the_envelope_the_registry_and_the_profile(seeded):
    found = data_models.model_version(seeded, "recsys", "v3")
    env = found["envelope"]
    assert found["envelope_error"] is None
    assert env["params"]["num_leaves"] == 31 and env["best_iteration"] == 42
    assert env["data"]["train_rows"] == 12000 and env["data"]["early_stopping_dates"] == ["2026-03-04", "2026-03-10"]
    # Importance is largest first.
    assert [(i["feature"], i["gain"]) for i in env["feature_importance"]] == sorted(
        V3_IMPORTANCE.items(), key=lambda kv: -kv[1]
    )
    # Both scopes, each with the model and its baselines.
    assert [(r["scope_label"], r["ranker_label"], r["ndcg"]) for r in found["metrics"]] == [
        ("end-to-end", "model", 0.39),
        ("end-to-end", "global popularity", 0.43),
        ("candidate-restricted", "model", 0.61),
        ("candidate-restricted", "candidate popularity", 0.52),
    ]
    assert found["gate"]["status"] == "rejected" and found["gate"]["reason"] == "below the baseline"
    assert found["candidate_recall"] == 0.62
    assert found["outcomes"] == []  # v3 never served


def test_model_version_without_a_readable_envelope_names_the_file_and_keeps_the_rest(seeded):
    found = data_models.model_version(seeded, "recsys", "v2")
    assert found["envelope"] is None
    assert "file:///m/v2/envelope.json could not be read" in found["envelope_error"]
    # Pre-scope metrics: candidates only, against candidate popularity.
    assert [(r["scope"], r["ranker"]) for r in found["metrics"]] == [
        ("candidates", "model"),
        ("candidates", "candidate_popularity"),
    ]
    assert [(p["column_name"], p["kind"], p["n"]) for p in found["profile"]] == [("item_price", "numeric", 100)]
    assert {o["prediction_date"] for o in found["outcomes"]} == {"2026-03-29", "2026-03-31"}


def test_an_unknown_model_version_is_not_found(seeded):
    with pytest.raises(data_models.ModelNotFound, match="model 'recsys' has no version 'v9'"):
        data_models.model_version(seeded, "recsys", "v9")


# --- drift detail --------------------------------------------------------------------------------


def test_psi_trend_is_all_rows_up_to_the_date(seeded):
    trend = data_drift.psi_trend(seeded, "item_price", DAYS[2])
    assert [(r["logical_date"], r["value"]) for r in trend] == [
        ("2026-03-29", 0.02),
        ("2026-03-30", 0.12),
        ("2026-03-31", 0.31),
    ]
    assert [r["logical_date"] for r in data_drift.psi_trend(seeded, "item_price", DAYS[1])] == [
        "2026-03-29",
        "2026-03-30",
    ]
    # user_events has a segment row on 03-31; the trend is the all-rows value only.
    assert [r["value"] for r in data_drift.psi_trend(seeded, "user_events", DAYS[2])] == [0.01, 0.02, 0.03]


def test_bins_count_the_dates_rows_into_the_stored_reference_bins(seeded):
    found = data_drift.bins(seeded, "item_price", DAYS[2])
    assert found["labels"] == ["(-inf, 10.0]", "(10.0, 20.0]", "(20.0, 30.0]", "(30.0, inf)", "__NULL__", "__INF__"]
    assert found["reference"] == [0.25, 0.25, 0.25, 0.25, 0.0, 0.0]
    # 10 rows: 5.0 | 15.0 | none | 35..60 (six) | two nulls.
    assert found["current"] == pytest.approx([0.1, 0.1, 0.0, 0.6, 0.2, 0.0])
    assert (found["n_ref"], found["n_cur"]) == (sum(PRICE_PROFILE["counts"]), 10)
    assert (found["model_version"], found["psi"], found["severity"]) == ("v2", 0.31, "drift")


def test_bins_say_why_when_they_cannot_be_shown(seeded):
    assert "was not checked on 2026-03-31" in data_drift.bins(seeded, "nope", DAYS[2])["reason"]
    # user_events was checked, but v2 has no stored reference for it.
    assert "has no stored reference for user_events" in data_drift.bins(seeded, "user_events", DAYS[2])["reason"]


# --- data checks ---------------------------------------------------------------------------------


def test_data_checks_default_to_the_newest_date_failures_and_warnings_first(seeded):
    found = data_quality.data_checks(seeded)
    assert found["check_date"] == "2026-03-31"
    assert [(c["table_name"], c["check_name"], c["status"]) for c in found["checks"]] == [
        ("features", "not_null(item_price)", "warn"),
        ("labels", "label_completeness(relevance)", "skipped"),
        ("events", "duplicate_events", "pass"),
        ("events", "freshness", "pass"),
    ]
    warn = found["checks"][0]
    assert (warn["observed"], warn["threshold"], warn["severity"]) == (2.0, 0.0, "warn")
    assert [(d["check_date"], d["checks"], d["warned"]) for d in found["dates"]] == [
        ("2026-03-31", 4, 1),
        ("2026-03-30", 1, 0),
    ]


def test_data_checks_filter_by_date_table_and_status(seeded):
    assert data_quality.data_checks(seeded, DAYS[1])["check_date"] == "2026-03-30"
    # A date without checks shows the newest checked date before it.
    assert data_quality.data_checks(seeded, dt.date(2026, 4, 15))["check_date"] == "2026-03-31"
    assert data_quality.data_checks(seeded, dt.date(2026, 1, 1))["check_date"] is None
    events = data_quality.data_checks(seeded, table="events")["checks"]
    assert {c["table_name"] for c in events} == {"events"} and len(events) == 2
    assert [c["check_name"] for c in data_quality.data_checks(seeded, status="warn")["checks"]] == [
        "not_null(item_price)"
    ]


def test_data_checks_of_a_fresh_install_are_empty(empty):
    found = data_quality.data_checks(empty)
    assert found["check_date"] is None and found["checks"] == [] and found["dates"] == []
