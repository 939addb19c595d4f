"""Realized outcomes on a tiny hand-made world, on real DuckDB: every number below is worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import pyarrow as pa
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.evaluation.outcomes import OUTCOMES_SQL, OUTCOMES_TABLE, evaluate_outcomes
from airflow_ml_provider.core.features.render import render_sql_file
from airflow_ml_provider.core.warehouse.ddl import ensure_tables
from airflow_ml_provider.exceptions import EmptyResultError, HorizonNotPassedError
from tests.paths import PIPELINE, SQL_DIR

D = dt.date(2026, 3, 10)  # served date; horizon (03-10, 03-17]
TODAY = dt.date(2026, 3, 20)
BASE = load_spec(PIPELINE)
SPEC = BASE.model_copy(update={"inference": BASE.inference.model_copy(update={"top_k": 2})})
# Served lists (k = 2) of model recsys v1.
LISTS = {"u1": ["i1", "i2"], "u2": ["i2", "i3"], "u3": ["i1", "i3"], "u4": ["i3", "i1"]}
EVENTS = [
    # before D (the popularity lookback (02-10, 03-10]): i1 by u1, u2, u4 and i4 by u1, u2, u3 -> [i1, i4, i2]
    ("2026-03-05", "u1", "i1", "view"),
    ("2026-03-06", "u2", "i1", "view"),
    ("2026-03-07", "u1", "i4", "view"),
    ("2026-03-08", "u2", "i4", "view"),
    ("2026-03-09", "u3", "i4", "add_to_cart"),
    ("2026-03-01", "u3", "i2", "view"),  # in the lookback: i2 has one user, third
    ("2026-03-10", "u4", "i1", "view"),  # on D: in the popularity window, not in the horizon
    # the horizon
    ("2026-03-12", "u1", "i2", "purchase"),  # a hit at rank 2, bought twice
    ("2026-03-14", "u1", "i2", "purchase"),
    ("2026-03-13", "u1", "i3", "view"),  # not recommended to u1
    ("2026-03-15", "u2", "i4", "purchase"),  # never a candidate of u2: only the popularity list has it
    ("2026-03-17", "u9", "i1", "view"),  # a user without a list
    ("2026-03-18", "u4", "i1", "view"),  # after the horizon
]
PRICES = {"i1": 10.0, "i2": 20.0, "i3": 5.0, "i4": 100.0}


def _seed(wh: DuckDBWarehouse, events=EVENTS) -> None:
    ts = [dt.datetime.fromisoformat(d).replace(hour=12, tzinfo=dt.UTC) for d, *_ in events]
    wh.replace_table(
        "events",
        pa.table(
            {
                "event_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "user_id": [e[1] for e in events],
                "item_id": [e[2] for e in events],
                "event_type": [e[3] for e in events],
            }
        ),
    )
    wh.replace_table(
        "items",
        pa.table({"item_id": list(PRICES), "category": ["a"] * 4, "price": list(PRICES.values())}),
    )


def _serve(wh: DuckDBWarehouse, day: dt.date = D) -> None:
    ensure_tables(wh, "recommendations")
    rows = [(u, i, r) for u, items in LISTS.items() for r, i in enumerate(items, 1)]
    wh.replace_partition(
        "recommendations",
        "prediction_date",
        day,
        pa.table(
            {
                "user_id": [r[0] for r in rows],
                "item_id": [r[1] for r in rows],
                "rank": pa.array([r[2] for r in rows], pa.int64()),
                "score": [1.0 / r[2] for r in rows],
                "model_name": ["recsys"] * len(rows),
                "model_version": ["v1"] * len(rows),
                "run_id": ["t"] * len(rows),
                "generated_at": pa.array(
                    [dt.datetime(2026, 3, 10, tzinfo=dt.UTC)] * len(rows), pa.timestamp("us", "UTC")
                ),
                "source": ["model"] * len(rows),
            }
        ),
    )


def _evaluate(wh: DuckDBWarehouse, day: dt.date = D, today: dt.date = TODAY):
    sql = render_sql_file(SQL_DIR / OUTCOMES_SQL, day, SPEC)
    return evaluate_outcomes(wh, SPEC, day, sql, run_id="test", today=today)


@pytest.fixture
def wh(tmp_path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _seed(wh)
    _serve(wh)
    return wh


def _stored(wh: DuckDBWarehouse) -> dict[str, dict]:
    rows = wh.query(f"SELECT * FROM {OUTCOMES_TABLE} ORDER BY list_source").to_pylist()
    return {r["list_source"]: r for r in rows}


def test_outcome_rows_match_the_hand_computation(wh):
    written, _ = _evaluate(wh)
    assert written.rows == 2
    rows = _stored(wh)
    model, popular = rows["model"], rows["global_popularity"]
    for r in (model, popular):
        assert (r["prediction_date"], r["horizon_start"], r["horizon_end"]) == (
            D,
            dt.date(2026, 3, 11),
            dt.date(2026, 3, 17),
        )
        assert (r["model_name"], r["model_version"], r["segment"], r["k"]) == ("recsys", "v1", "all", 2)
        # u1 (bought i2, viewed i3) and u2 (bought i4) did something; u3 nothing; u4 only on D and after.
        assert (r["lists"], r["active_users"], r["hits"], r["hit_rate"]) == (4, 2, 1, 0.5)
        assert r["precision_at_k"] == pytest.approx(0.25)
    # Model: u1 hit i2 (relevance 3) at rank 2 of positives {i2: 3, i3: 1}; u2's purchase was never listed.
    u1_ndcg = (7 / math.log2(3)) / (7 + 1 / math.log2(3))
    assert model["recall_at_k"] == pytest.approx((0.5 + 0) / 2)
    assert model["ndcg_at_k"] == pytest.approx(u1_ndcg / 2)
    assert (model["purchases"], model["revenue"]) == (2, 40.0)
    assert model["coverage"] == pytest.approx(3 / 4)
    # Global popularity [i1, i4] (3 distinct users each up to D, tie by item): u2's i4 purchase at rank 2.
    assert popular["recall_at_k"] == pytest.approx((0 + 1) / 2)
    assert popular["ndcg_at_k"] == pytest.approx((7 / math.log2(3)) / 7 / 2)
    assert (popular["purchases"], popular["revenue"]) == (1, 100.0)
    assert popular["coverage"] == pytest.approx(2 / 4)


def test_rerun_replaces_the_partition(wh):
    _evaluate(wh)
    first = _stored(wh)
    _evaluate(wh)
    counts = wh.query(f"SELECT COUNT(*) AS n FROM {OUTCOMES_TABLE}").to_pylist()[0]["n"]
    assert counts == 2
    again = _stored(wh)
    for source in first:
        assert {k: v for k, v in first[source].items() if k != "evaluated_at"} == {
            k: v for k, v in again[source].items() if k != "evaluated_at"
        }


@pytest.mark.parametrize(
    ("today", "events", "expected"),
    [
        (dt.date(2026, 3, 17), EVENTS, "has not passed yet"),  # the horizon's last day is not over
        (TODAY, [e for e in EVENTS if e[0] < "2026-03-16"], "reaches only to 2026-03-15"),  # events stop early
    ],
    ids=["clock", "events"],
)
def test_refused_before_the_horizon_has_passed(wh, today, events, expected):
    _seed(wh, events)
    with pytest.raises(HorizonNotPassedError, match=expected) as err:
        _evaluate(wh, today=today)
    assert "becomes ready on 2026-03-18" in str(err.value)
    assert not wh.table_exists(OUTCOMES_TABLE)


def test_a_date_without_lists_is_refused(wh):
    with pytest.raises(EmptyResultError, match="no lists were served"):
        _evaluate(wh, day=dt.date(2026, 3, 9))
    assert not wh.table_exists(OUTCOMES_TABLE)


def test_the_same_rows_on_the_gcp_backend(gcp):
    """outcomes.sql and the popularity lists through the real BigQuery client on the local endpoint; same numbers."""
    from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
    from airflow_ml_provider.core.contract.config import PlatformConfig
    from tests.fakes.gcp import DATASET, PROJECT

    bq = BigQueryWarehouse(PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US"))
    _seed(bq)
    _serve(bq)
    written, _ = _evaluate(bq)
    assert written.rows == 2
    queries = [c["query"] for c in gcp.bigquery.job_configs("query")]
    assert any("FULL OUTER JOIN horizon_events" in q for q in queries)  # the GoogleSQL itself, not a transpilation
    assert any("popularity_rank" in q and "INTERVAL @lookback_days DAY" in q for q in queries)
    stored = {r["list_source"]: r for r in gcp.bigquery.rows(PROJECT, DATASET, OUTCOMES_TABLE).to_pylist()}
    assert (stored["model"]["hits"], stored["model"]["revenue"]) == (1, 40.0)
    assert stored["model"]["ndcg_at_k"] == pytest.approx((7 / math.log2(3)) / (7 + 1 / math.log2(3)) / 2)
    assert (stored["global_popularity"]["purchases"], stored["global_popularity"]["revenue"]) == (1, 100.0)
    assert {r["prediction_date"] for r in stored.values()} == {D}


def test_the_popularity_list_skips_what_each_user_bought_and_revenue_needs_prices(wh):
    """exclude_seen: purchased, u1 bought i4 before D, so their popularity list is [i1, i2]; no prices, no revenue."""
    ts = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    wh.execute(
        "INSERT INTO events VALUES (@ts, 'u1', 'i4', 'purchase')", {"ts": ts}
    )  # i4 has the same 3 users: still second
    wh.replace_table("items", pa.table({"item_id": list(PRICES), "category": ["a"] * 4}))  # a shop without prices
    spec = SPEC.model_copy(
        update={
            "inference": SPEC.inference.model_copy(update={"exclude_seen": "purchased"}),
            "source_columns": {"items": {"price": None}},
        }
    )
    evaluate_outcomes(wh, spec, D, render_sql_file(SQL_DIR / OUTCOMES_SQL, D, spec), run_id="t", today=TODAY)
    popular = _stored(wh)["global_popularity"]
    # u2 still gets [i1, i4] and finds its i4 purchase; u1's list no longer holds i4 (it holds i2: a hit).
    assert popular["hits"] == 2 and popular["recall_at_k"] == pytest.approx((1 / 2 + 1) / 2)
    assert popular["revenue"] is None and _stored(wh)["model"]["revenue"] is None


def test_cli_judges_a_range_and_prints_json(wh, capsys):
    from airflow_ml_provider.cli import main

    assert main(["outcomes", "--warehouse", str(wh.path), "--date", D.isoformat(), "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    (summary,) = out["summary"]
    # k = 10 (the contract): the popularity list [i1, i4, i2] also holds u1's i2 (bought twice at 20).
    assert (summary["model_hit_rate"], summary["popularity_revenue"]) == (0.5, 140.0)
    assert main(["outcomes", "--warehouse", str(wh.path), "--date", "2026-03-09", "-q"]) == 1  # nothing served
    assert "no lists were served that day" in capsys.readouterr().err


def test_cli_prints_revenue_in_the_contracts_currency(wh, capsys):
    from airflow_ml_provider.cli import main

    assert main(["outcomes", "--warehouse", str(wh.path), "--date", D.isoformat(), "-q"]) == 0
    out = capsys.readouterr().out
    # The reference contract says currency: EUR; without it the line says "in the items' price unit".
    assert "revenue from recommended items, in EUR)" in out
    assert re.search(r"revenue EUR +popular", out), out
