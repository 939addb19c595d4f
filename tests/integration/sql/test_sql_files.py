"""Every .sql file in the repo runs on DuckDB against seeded demo data, time-correctly."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.features.render import render_sql, render_sql_file
from airflow_ml_provider.core.warehouse.ddl import ensure_tables, render_ddl
from airflow_ml_provider.core.warehouse.sql import check_create_if_not_exists, parse, read_sql_file
from tests.paths import PIPELINE, SQL_DIR

AS_OF = dt.date(2026, 3, 20)
# Analytics queries need recommendation partitions and date ranges: test_analytics.py runs
# every one of them on a world that has both.
SQL_FILES = sorted(p for p in SQL_DIR.rglob("*.sql") if p.parent.name != "analytics")
SPEC = load_spec(PIPELINE)
CONTRACT_FILES = {SQL_DIR / s.sql for s in [*SPEC.steps, SPEC.label.step]}


def _seed(path, cfg: DemoConfig, events_until: dt.date | None = None) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(path)
    world = generate(cfg)
    events = world.events
    if events_until is not None:
        cutoff = dt.datetime.combine(events_until + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        events = events.filter(pc.less(events["event_ts"], cutoff))
    wh.replace_table("users", world.users)
    wh.replace_table("items", world.items)
    wh.replace_table("events", events)
    return wh


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> DuckDBWarehouse:
    wh = _seed(tmp_path_factory.mktemp("sql") / "w.duckdb", DemoConfig(users=400, items=90, days=45))
    build_features(wh, SPEC, SQL_DIR, [AS_OF], labels=True)
    return wh


def test_repo_has_sql_files():
    assert set(SQL_FILES) >= CONTRACT_FILES


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(SQL_DIR)))
def test_sql_file_runs_on_duckdb(path, built):
    sql = read_sql_file(path)
    if path in CONTRACT_FILES:
        step = next(s for s in [*SPEC.steps, SPEC.label.step] if SQL_DIR / s.sql == path)
        parse(render_sql(step, SQL_DIR, AS_OF, SPEC), str(path))  # GoogleSQL once source()/ref() rendered
        table = step.table
        rows = built.query(f"SELECT COUNT(*) AS n FROM {table} WHERE as_of_date = @d", {"d": AS_OF}).to_pylist()
        assert rows[0]["n"] > 0, f"{path} wrote no rows"
    elif path.parent.name == "ddl":  # parsed after rendering
        sql = render_ddl(path.stem, built)  # views qualify names with {{ dataset }}
        check_create_if_not_exists(sql, str(path))
        built.execute(sql, source=str(path))
        built.execute(sql, source=str(path))  # twice: IF NOT EXISTS
    else:
        if "{{" in sql:  # provider SQL over the contract's sources (e.g. recsys/outcomes.sql)
            sql = render_sql_file(path, AS_OF, SPEC)
            ensure_tables(built, "recommendations")
        parse(sql, str(path))
        built.query(sql, SPEC.query_params(AS_OF), source=str(path))


def test_features_do_not_read_the_future(tmp_path):
    """Features for D are the same whether or not events after D exist."""
    cfg = DemoConfig(users=250, items=60, days=40)
    full = _seed(tmp_path / "full.duckdb", cfg)
    cut = _seed(tmp_path / "cut.duckdb", cfg, events_until=AS_OF)
    for wh in (full, cut):
        build_features(wh, SPEC, SQL_DIR, [AS_OF])
    for step in SPEC.steps:
        sql = f"SELECT * FROM {step.table} ORDER BY ALL"
        with full.connect(read_only=True) as a, cut.connect(read_only=True) as b:
            assert a.sql(sql).fetchall() == b.sql(sql).fetchall(), step.table


def test_labels_only_read_the_horizon(built):
    """Labels come from events in (as_of, as_of + horizon], never from as_of itself or later."""
    horizon = SPEC.windows.label_horizon_days
    check = built.query(
        """
        WITH truth AS (
          SELECT user_id, item_id, 1 AS hit FROM events
          WHERE DATE(event_ts) > @as_of AND DATE(event_ts) <= DATE_ADD(@as_of, INTERVAL @h DAY)
          GROUP BY user_id, item_id
        )
        SELECT COUNTIF(l.label != IFNULL(t.hit, 0)) AS wrong, COUNTIF(l.label = 1) AS positives
        FROM labels AS l LEFT JOIN truth AS t USING (user_id, item_id)
        WHERE l.as_of_date = @as_of
        """,
        {"as_of": AS_OF, "h": horizon},
    ).to_pylist()[0]
    assert check["wrong"] == 0
    assert check["positives"] > 0


def test_candidates_respect_per_user_cap_and_are_unique(built):
    stats = built.query(
        "SELECT MAX(n) AS most, SUM(n - distinct_items) AS dupes FROM "
        "(SELECT user_id, COUNT(*) AS n, COUNT(DISTINCT item_id) AS distinct_items FROM candidates GROUP BY user_id)"
    ).to_pylist()[0]
    assert stats["dupes"] == 0
    assert stats["most"] == SPEC.candidates_per_user


def test_labels_also_hold_every_horizon_interaction_of_a_scored_user(built):
    """Candidates get a row each (label 0 or 1); a scored user's other horizon items are positives too."""
    missing = built.query(
        """
        WITH scored AS (SELECT DISTINCT user_id FROM candidates WHERE as_of_date = @as_of),
        truth AS (
          SELECT DISTINCT e.user_id, e.item_id FROM events AS e JOIN scored USING (user_id)
          WHERE DATE(e.event_ts) > @as_of AND DATE(e.event_ts) <= DATE_ADD(@as_of, INTERVAL @h DAY)
        )
        SELECT
          (SELECT COUNT(*) FROM truth LEFT JOIN labels AS l
             ON l.as_of_date = @as_of AND l.user_id = truth.user_id AND l.item_id = truth.item_id
           WHERE l.label IS DISTINCT FROM 1) AS missing,
          (SELECT COUNT(*) FROM labels AS l LEFT JOIN candidates AS c
             ON c.as_of_date = l.as_of_date AND c.user_id = l.user_id AND c.item_id = l.item_id
           WHERE l.as_of_date = @as_of AND c.item_id IS NULL) AS outside,
          (SELECT COUNT(*) FROM candidates WHERE as_of_date = @as_of) AS candidates,
          (SELECT COUNT(*) FROM labels AS l JOIN candidates AS c
             ON c.as_of_date = l.as_of_date AND c.user_id = l.user_id AND c.item_id = l.item_id
           WHERE l.as_of_date = @as_of) AS labelled_candidates
        """,
        {"as_of": AS_OF, "h": SPEC.windows.label_horizon_days},
    ).to_pylist()[0]
    assert missing["missing"] == 0
    assert missing["outside"] > 0  # the candidates miss some: end-to-end metrics count them
    assert missing["labelled_candidates"] == missing["candidates"]


def test_sources_point_at_other_tables_without_touching_sql(tmp_path, built):
    """`sources: events: retail_events` reaches every SQL file through {{ source('events') }}."""
    wh = DuckDBWarehouse(tmp_path / "byo.duckdb")
    world = generate(DemoConfig(users=400, items=90, days=45))
    wh.replace_table("shop_users", world.users)
    wh.replace_table("catalogue", world.items)
    wh.replace_table("retail_events", world.events)
    spec = SPEC.model_copy(update={"sources": {"events": "retail_events", "items": "catalogue", "users": "shop_users"}})
    build_features(wh, spec, SQL_DIR, [AS_OF], labels=True)
    assert not wh.table_exists("events") and not wh.table_exists("items")
    for step in [*SPEC.steps, SPEC.label.step]:
        sql = f"SELECT * EXCLUDE (as_of_date) FROM {step.table} ORDER BY ALL"
        with wh.connect(read_only=True) as a, built.connect(read_only=True) as b:
            assert a.sql(sql).fetchall() == b.sql(sql).fetchall(), step.table


def test_your_columns_and_event_types_map_onto_the_sql_without_editing_it(tmp_path, built):
    """source_columns and event_types in the contract plug an event log in with other names."""
    world = generate(DemoConfig(users=400, items=90, days=45))
    raw_types = {"view": "pageview", "add_to_cart": "basket", "purchase": "transaction"}
    events = world.events.rename_columns(
        ["CustomerID" if c == "user_id" else "kind" if c == "event_type" else c for c in world.events.column_names]
    )
    kinds = [raw_types[t] for t in events["kind"].to_pylist()]
    events = events.set_column(events.column_names.index("kind"), "kind", pa.array(kinds))
    wh = DuckDBWarehouse(tmp_path / "mapped.duckdb")
    wh.replace_table("users", world.users)
    wh.replace_table("items", world.items)
    wh.replace_table("clicks", events)
    spec = SPEC.model_copy(
        update={
            "sources": {**SPEC.sources, "events": "clicks"},
            "source_columns": {"events": {"user_id": "CustomerID", "event_type": "kind"}},
            "event_types": {ours: [theirs] for ours, theirs in raw_types.items()},
        }
    )
    build_features(wh, spec, SQL_DIR, [AS_OF], labels=True)
    for step in [*SPEC.steps, SPEC.label.step]:
        sql = f"SELECT * FROM {step.table} ORDER BY ALL"
        with wh.connect(read_only=True) as a, built.connect(read_only=True) as b:
            assert a.sql(sql).fetchall() == b.sql(sql).fetchall(), step.table


def test_unknown_event_types_weigh_nothing(tmp_path, built):
    """A type the contract does not map (here every purchase, called 'refund') is never a positive."""
    world = generate(DemoConfig(users=400, items=90, days=45))
    wh = DuckDBWarehouse(tmp_path / "unknown.duckdb")
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    wh.execute("UPDATE events SET event_type = 'refund' WHERE event_type = 'purchase'")
    spec = SPEC.model_copy(update={"event_types": {"view": ["view"], "add_to_cart": ["add_to_cart"]}})
    build_features(wh, spec, SQL_DIR, [AS_OF], labels=True)
    top = wh.query("SELECT MAX(relevance) AS r, COUNTIF(relevance = 0 AND label = 1) AS odd FROM labels").to_pylist()
    assert top == [{"r": 2, "odd": 0}]


def test_labels_built_before_their_horizon_are_refused_and_nothing_is_written(tmp_path):
    """Events end 03-24: labels of 03-20 would see 4 of 7 horizon days and count the rest as zeros."""
    from airflow_ml_provider.exceptions import HorizonNotPassedError

    wh = _seed(tmp_path / "w.duckdb", DemoConfig(users=120, items=40, days=40), events_until=dt.date(2026, 3, 24))
    with pytest.raises(HorizonNotPassedError, match="becomes ready on 2026-03-28") as err:
        build_features(wh, SPEC, SQL_DIR, [AS_OF], labels=True)
    assert "the events source reaches 2026-03-24" in str(err.value)
    assert not wh.table_exists("features") and not wh.table_exists("labels")
