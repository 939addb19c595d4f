"""candidates.sql cuts every generator to its quota before it meets the users (issue 26).

The category generator's cut is exact: it gives the same rows as joining every user category to
the whole category. The covisit cut keeps each item's ``covisit_neighbours`` most co-visited
items: with room for all of them it is the uncut generator; smaller, it bounds the join.
"""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import SQL_PARAM_DEFAULTS, load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.render import render_sql_file
from tests.paths import PIPELINE, SQL_DIR

AS_OF = dt.date(2026, 3, 20)
SPEC = load_spec(PIPELINE)
CUT_CATEGORY = (
    "FROM category_slots AS c\n  JOIN category_ranked AS h ON h.category = c.category AND h.category_rank = c.slot"
)
WHOLE_CATEGORY = "FROM user_categories AS c\n  JOIN item_heat AS h ON h.category = c.category"
CUT_COVISIT = "JOIN similar_top AS s ON s.item_a = u.item_id"
ALL_NEIGHBOURS = "JOIN similar AS s ON s.item_a = u.item_id"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path_factory.mktemp("linear") / "w.duckdb")
    demo = generate(DemoConfig(users=300, items=80, days=40))
    wh.replace_table("users", demo.users)
    wh.replace_table("items", demo.items)
    wh.replace_table("events", demo.events)
    return wh


def _spec(exclude_seen: str, **sql_params):
    return SPEC.model_copy(
        update={
            "sql_params": {**SPEC.sql_params, **sql_params},
            "inference": SPEC.inference.model_copy(update={"exclude_seen": exclude_seen}),
        }
    )


def _rows(wh: DuckDBWarehouse, sql: str, spec) -> list[dict]:
    return sorted(
        wh.query(sql, spec.query_params(AS_OF), source="candidates.sql").to_pylist(),
        key=lambda r: (r["user_id"], r["candidate_rank"]),
    )


@pytest.mark.parametrize("exclude_seen", ["none", "purchased", "interacted"])
def test_the_category_cut_is_exact_and_the_covisit_cut_with_room_for_all_is_the_uncut_generator(world, exclude_seen):
    spec = _spec(exclude_seen, covisit_neighbours=100_000)
    sql = render_sql_file(SQL_DIR / "recsys" / "candidates.sql", AS_OF, spec)
    assert CUT_CATEGORY in sql and CUT_COVISIT in sql
    unbounded = sql.replace(CUT_CATEGORY, WHOLE_CATEGORY).replace(CUT_COVISIT, ALL_NEIGHBOURS)
    got = _rows(world, sql, spec)
    assert got and got == _rows(world, unbounded, spec)


def test_each_item_lends_at_most_covisit_neighbours_items(world):
    spec = _spec("none", covisit_neighbours=2, covisit_candidates=50)
    sql = render_sql_file(SQL_DIR / "recsys" / "candidates.sql", AS_OF, spec)
    # The query's CTEs, then a question about the neighbour lists instead of the final SELECT.
    ctes = sql[: sql.rindex("\nSELECT\n  user_id,")]
    most = world.query(
        ctes + "\nSELECT MAX(n) AS most FROM (SELECT item_a, COUNT(*) AS n FROM similar_top GROUP BY item_a)",
        spec.query_params(AS_OF),
    ).to_pylist()
    assert most[0]["most"] == 2


def test_contracts_without_the_knob_get_its_default():
    bare = SPEC.model_copy(
        update={"sql_params": {k: v for k, v in SPEC.sql_params.items() if k != "covisit_neighbours"}}
    )
    assert bare.query_params(AS_OF)["covisit_neighbours"] == SQL_PARAM_DEFAULTS["covisit_neighbours"] == 50
    assert _spec("none", covisit_neighbours=7).query_params(AS_OF)["covisit_neighbours"] == 7
