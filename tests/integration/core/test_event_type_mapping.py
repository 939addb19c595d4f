"""Mapping one event type leaves the others their meaning: view, add_to_cart and purchase map to themselves.

Before, ``event_types: {purchase: [buy]}`` rendered every other raw type, the shop's own
``view`` and ``add_to_cart`` included, as ``'unknown'``: the views weighed nothing, silently.
The rule (docs/bring-your-own-data.md, section 2): each of the SQL's types that ``event_types``
does not mention, as a key or among the listed types, keeps its meaning; a key lists all of
its raw types; anything else is ``'unknown'``.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.references import in_source_shape, render_source
from airflow_ml_provider.core.contract.spec import load_spec, parse_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.features.event_types import known_event_types, unknown_event_types_query
from tests.paths import PIPELINE, SQL_DIR

pytestmark = pytest.mark.integration

SPEC = load_spec(PIPELINE)
AS_OF = dt.date(2026, 3, 20)
RAW = ["buy", "view", "add_to_cart", "purchase", "refund", None]


def _spec(event_types: dict[str, list[str]]):
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["event_types"] = event_types
    return parse_spec(yaml.safe_dump(raw), "pipeline.yaml")


def _rendered_types(tmp_path, event_types: dict[str, list[str]]) -> dict[str | None, str]:
    """Raw type -> the type ``{{ source('events') }}`` gives the SQL, on a one-row-per-type table."""
    wh = DuckDBWarehouse(tmp_path / "types.duckdb")
    n = len(RAW)
    wh.replace_table(
        "events",
        pa.table(
            {
                "user_id": [f"u{i}" for i in range(n)],
                "item_id": ["i1"] * n,
                "event_ts": pa.array([dt.datetime(2026, 3, 1, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")),
                "event_type": pa.array(RAW, pa.string()),
            }
        ),
    )
    spec = _spec(event_types)
    sql = f"SELECT user_id, event_type FROM {render_source(spec, 'events')} AS e ORDER BY user_id"
    return {RAW[int(r["user_id"][1:])]: r["event_type"] for r in wh.query(sql, {}, source="test").to_pylist()}


def test_mapping_only_purchase_keeps_views_and_carts(tmp_path):
    assert _rendered_types(tmp_path, {"purchase": ["buy"]}) == {
        "buy": "purchase",
        "view": "view",
        "add_to_cart": "add_to_cart",
        "purchase": "unknown",  # purchase is a key: its raw types are exactly the listed ones
        "refund": "unknown",
        None: "unknown",
    }


@pytest.mark.parametrize(
    ("event_types", "expected"),
    [
        # A key lists all its raw types: a raw `view` is unknown unless listed too.
        ({"view": ["pageview"]}, {"view": "unknown", "add_to_cart": "add_to_cart", "purchase": "purchase"}),
        ({"view": ["pageview", "view"]}, {"view": "view", "add_to_cart": "add_to_cart", "purchase": "purchase"}),
        # A SQL type listed under another key means that key, never itself.
        ({"purchase": ["view"]}, {"view": "purchase", "add_to_cart": "add_to_cart", "purchase": "unknown"}),
        # A name the SQL does not know is how to make the SQL ignore one of its own types.
        ({"ignored": ["add_to_cart"]}, {"view": "view", "add_to_cart": "ignored", "purchase": "purchase"}),
    ],
    ids=["key-lists-all", "key-lists-itself", "listed-elsewhere", "ignored"],
)
def test_a_sql_type_the_mapping_mentions_means_what_the_mapping_says(tmp_path, event_types, expected):
    rendered = _rendered_types(tmp_path, event_types)
    assert {t: rendered[t] for t in expected} == expected


def test_without_a_mapping_the_source_is_read_as_it_is():
    assert render_source(SPEC, "events") == "events"
    assert SPEC.event_type_mapping == {}


def test_the_known_types_of_the_check_include_the_kept_ones(tmp_path):
    spec = _spec({"purchase": ["buy", "order"]})
    assert spec.event_type_mapping == {
        "purchase": ["buy", "order"],
        "view": ["view"],
        "add_to_cart": ["add_to_cart"],
    }
    assert known_event_types(spec) == ["add_to_cart", "buy", "order", "view"]
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    n = len(RAW)
    wh.replace_table(
        "events",
        pa.table(
            {
                "user_id": [f"u{i}" for i in range(n)],
                "item_id": ["i1"] * n,
                "event_ts": pa.array([dt.datetime(2026, 3, 20, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")),
                "event_type": pa.array(RAW, pa.string()),
            }
        ),
    )
    query = unknown_event_types_query(spec, AS_OF)
    assert query is not None
    results = query.evaluate(wh.query(query.sql, query.params, source="test").to_pylist()[0])
    [result] = [r for r in results if r.name == "unknown_event_types"]
    # Unknown: the raw `purchase` (purchase is a key), `refund` and NULL; views and carts are not.
    assert "3 of 6 events" in result.message, result.message
    assert "view (" not in result.message and "add_to_cart (" not in result.message
    assert "known: buy, order; view, add_to_cart as themselves" in result.message


def test_validates_sample_round_trips_through_the_mapping():
    """validate writes its demo sample in your shape (in_source_shape); source() must read it back the same."""
    spec = _spec({"purchase": ["buy"]})
    sample = pa.table({"event_type": pa.array(["view", "add_to_cart", "purchase", None], pa.string())})
    assert in_source_shape(spec, "events", sample).column("event_type").to_pylist() == [
        "view",
        "add_to_cart",
        "buy",
        None,
    ]


def _world_warehouse(path, purchase_as: str | None = None) -> DuckDBWarehouse:
    world = generate(DemoConfig(users=250, items=60, days=45))
    wh = DuckDBWarehouse(path)
    wh.replace_table("users", world.users)
    wh.replace_table("items", world.items)
    wh.replace_table("events", world.events)
    if purchase_as:
        wh.execute(f"UPDATE events SET event_type = '{purchase_as}' WHERE event_type = 'purchase'")
    return wh


def test_a_shop_mapping_only_its_purchases_builds_what_the_sql_types_build(tmp_path):
    """Views and carts under their own names count: every feature and label equals the unmapped world's."""
    reference = _world_warehouse(tmp_path / "reference.duckdb")
    build_features(reference, SPEC, SQL_DIR, [AS_OF], labels=True)
    shop = _world_warehouse(tmp_path / "shop.duckdb", purchase_as="buy")
    build_features(shop, _spec({"purchase": ["buy"]}), SQL_DIR, [AS_OF], labels=True)
    views = "SELECT SUM(user_views) AS v FROM user_features"
    assert shop.query(views, {}, source="test").to_pylist()[0]["v"] > 0
    for step in [*SPEC.steps, SPEC.label.step]:
        sql = f"SELECT * FROM {step.table} ORDER BY ALL"
        with shop.connect(read_only=True) as a, reference.connect(read_only=True) as b:
            assert a.sql(sql).fetchall() == b.sql(sql).fetchall(), step.table
