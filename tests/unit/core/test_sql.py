"""GoogleSQL helpers: parameters, parsing and the DuckDB transpiler (run on real DuckDB)."""

from __future__ import annotations

import datetime as dt
import decimal

import duckdb
import pytest

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.features.render import render_sql
from airflow_ml_provider.core.warehouse.sql import (
    REWRITES,
    bigquery_type,
    bind_params,
    check_create_if_not_exists,
    check_params,
    output_columns,
    parse,
    partition_select,
    read_sql_file,
    referenced_params,
    to_duckdb,
)
from airflow_ml_provider.exceptions import IdentifierError, SQLTemplateError
from tests.paths import PIPELINE, SQL_DIR


def duck(sql: str, params: dict | None = None, setup: str | None = None) -> list[tuple]:
    """Run GoogleSQL on a fresh in-memory DuckDB through the transpiler."""
    con = duckdb.connect()
    try:
        if setup:
            con.execute(setup)
        return con.execute(to_duckdb(sql), bind_params(sql, params) or None).fetchall()
    finally:
        con.close()


# --- parameter types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "BOOL"),
        (False, "BOOL"),
        (0, "INT64"),
        (-7, "INT64"),
        (1.5, "FLOAT64"),
        ("x", "STRING"),
        ("", "STRING"),
        (dt.date(2026, 3, 31), "DATE"),
        (dt.datetime(2026, 3, 31, 12, 0), "TIMESTAMP"),
        (dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC), "TIMESTAMP"),
    ],
)
def test_bigquery_type_of_python_values(value, expected):
    assert bigquery_type(value) == expected


@pytest.mark.parametrize("value", [None, b"bytes", decimal.Decimal("1.5"), [1, 2], {"a": 1}, dt.time(1, 2)])
def test_unsupported_parameter_type_is_named(value):
    with pytest.raises(SQLTemplateError) as info:
        bigquery_type(value)
    assert type(value).__name__ in str(info.value)


def test_check_params_rejects_bad_names_and_values():
    assert check_params({"as_of": dt.date(2026, 1, 1), "k": 3}) == {"as_of": dt.date(2026, 1, 1), "k": 3}
    assert check_params(None) == {}
    with pytest.raises(IdentifierError, match="query parameter"):
        check_params({"as-of": 1})
    with pytest.raises(SQLTemplateError, match="unsupported type"):
        check_params({"as_of": None})


# --- binding ------------------------------------------------------------------------


def test_referenced_params_ignores_at_signs_inside_strings():
    sql = "SELECT @a AS a, '@not_a_param' AS s FROM t WHERE x > @b AND y = @a"
    assert referenced_params(sql) == {"a", "b"}


def test_bind_params_keeps_only_the_params_the_sql_uses():
    sql = "SELECT * FROM events WHERE DATE(event_ts) <= @as_of"
    bound = bind_params(sql, {"as_of": dt.date(2026, 3, 1), "lookback_days": 28, "unused": "x"})
    assert bound == {"as_of": dt.date(2026, 3, 1)}


def test_bind_params_names_every_missing_param_and_the_source():
    sql = "SELECT * FROM events WHERE d <= @as_of AND d > DATE_SUB(@as_of, INTERVAL @lookback_days DAY) AND k = @k"
    with pytest.raises(SQLTemplateError) as info:
        bind_params(sql, {"lookback_days": 28}, source="sql/recsys/user_features.sql")
    msg = str(info.value)
    assert msg.startswith("sql/recsys/user_features.sql:")
    assert "@as_of" in msg and "@k" in msg
    assert "@lookback_days" not in msg.split("but no value")[0]
    assert "given: lookback_days" in msg


def test_bind_params_with_no_params_and_no_usage():
    assert bind_params("SELECT 1 AS x", None) == {}


# --- parsing ------------------------------------------------------------------------


def test_parse_error_names_the_source_and_line():
    sql = "SELECT a\nFROM t\nWHERE x = = 1"
    with pytest.raises(SQLTemplateError) as info:
        parse(sql, source="sql/recsys/broken.sql")
    msg = str(info.value)
    assert msg.startswith("sql/recsys/broken.sql:")
    assert "line 3" in msg


@pytest.mark.parametrize("sql", ["SELECT 'abc FROM t", "SELECT `abc FROM t"])
def test_tokenizer_errors_are_sql_template_errors_naming_the_source(sql):
    with pytest.raises(SQLTemplateError, match=r"^sql/recsys/broken\.sql:"):
        parse(sql, source="sql/recsys/broken.sql")


@pytest.mark.parametrize(("sql", "found"), [("SELECT 1;\nSELECT 2", 2), ("", 0), ("-- only a comment", 0)])
def test_parse_rejects_anything_but_one_statement(sql, found):
    with pytest.raises(SQLTemplateError) as info:
        parse(sql, source="q.sql")
    assert str(info.value).startswith("q.sql:")
    assert f"found {found}" in str(info.value)


def test_parse_accepts_one_statement_with_trailing_semicolon():
    assert parse("SELECT 1 AS x;").sql(dialect="bigquery") == "SELECT 1 AS x"


def test_output_columns():
    assert output_columns("SELECT a, b AS c, COUNT(*) AS n FROM t GROUP BY a, b") == ["a", "c", "n"]
    assert output_columns("WITH s AS (SELECT 1 AS x) SELECT * FROM s") == ["*"]
    with pytest.raises(SQLTemplateError, match="expected a SELECT"):
        output_columns("DELETE FROM t WHERE TRUE", source="d.sql")


# --- DDL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE IF NOT EXISTS t (a INT64)",
        "CREATE TABLE IF NOT EXISTS t (d DATE, u STRING) PARTITION BY d CLUSTER BY u",
        "CREATE VIEW IF NOT EXISTS v AS SELECT 1 AS a",
        "CREATE OR REPLACE VIEW v AS SELECT 1 AS a",
    ],
)
def test_idempotent_ddl_is_accepted(ddl):
    tree = check_create_if_not_exists(ddl)
    assert tree.key == "create"


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE t (a INT64)",
        "CREATE OR REPLACE TABLE t (a INT64)",  # drops data on rerun
        "CREATE VIEW v AS SELECT 1 AS a",
        "DROP TABLE IF EXISTS t",
        "SELECT 1",
    ],
)
def test_non_idempotent_ddl_is_rejected_naming_the_source(ddl):
    with pytest.raises(SQLTemplateError) as info:
        check_create_if_not_exists(ddl, source="sql/ddl/t.sql")
    assert str(info.value).startswith("sql/ddl/t.sql:")
    assert "IF NOT EXISTS" in str(info.value)


# --- the named rewrites, each checked against GoogleSQL semantics on real DuckDB --------

# rewrite name -> the test below that proves it gives GoogleSQL's answer.
REWRITE_TESTS = {
    "array_agg_limit": "test_array_agg_limit_returns_the_first_n_in_order",
    "dayofweek_one_based": "test_extract_dayofweek_is_one_for_sunday_and_seven_for_saturday",
    "storage_options": "test_storage_options_ddl_creates_a_duckdb_table_with_the_same_columns",
    "date_arithmetic_is_date": "test_date_add_and_date_sub_on_a_date_return_a_date",
    "float_literals_are_float64": "test_decimal_literals_are_float64",
}


def test_every_named_rewrite_has_a_semantic_test():
    assert set(REWRITE_TESTS) == set(REWRITES)
    for test_name in REWRITE_TESTS.values():
        assert callable(globals().get(test_name)), test_name


_AGG_ROWS = (
    "CREATE TABLE t AS SELECT * FROM (VALUES ('g','c',3), ('g','a',1), ('g','n',NULL), ('g','d',4), "
    "('g','b',2), ('g','e',5), ('h','z',1)) AS v(g, x, y)"
)


def test_array_agg_limit_returns_the_first_n_in_order():
    # GoogleSQL: ORDER BY ASC puts NULLs first, DESC puts them last; LIMIT keeps the first n.
    rows = duck("SELECT g, ARRAY_AGG(x ORDER BY y LIMIT 3) AS top FROM t GROUP BY g ORDER BY g", setup=_AGG_ROWS)
    assert rows == [("g", ["n", "a", "b"]), ("h", ["z"])]
    rows = duck("SELECT g, ARRAY_AGG(x ORDER BY y DESC LIMIT 2) AS top FROM t GROUP BY g ORDER BY g", setup=_AGG_ROWS)
    assert rows == [("g", ["e", "d"]), ("h", ["z"])]


def test_array_agg_limit_takes_the_limit_as_a_query_parameter():
    rows = duck("SELECT ARRAY_AGG(x ORDER BY y DESC LIMIT @k) AS top FROM t WHERE g = 'g'", {"k": 4}, _AGG_ROWS)
    assert rows == [(["e", "d", "c", "b"],)]


def test_array_agg_limit_inside_a_subquery_is_rewritten():
    sql = "SELECT top[OFFSET(0)] AS first FROM (SELECT ARRAY_AGG(x ORDER BY y DESC LIMIT 1) AS top FROM t)"
    assert duck(sql, setup=_AGG_ROWS) == [("e",)]


def test_extract_dayofweek_is_one_for_sunday_and_seven_for_saturday():
    # 2026-03-22 is a Sunday, 2026-03-28 a Saturday.
    days = [dt.date(2026, 3, 22) + dt.timedelta(days=i) for i in range(7)]
    setup = "CREATE TABLE d AS SELECT * FROM (VALUES " + ", ".join(f"(DATE '{d}')" for d in days) + ") AS v(day)"
    rows = duck("SELECT day, EXTRACT(DAYOFWEEK FROM day) AS dow FROM d ORDER BY day", setup=setup)
    assert rows == [(d, d.isoweekday() % 7 + 1) for d in days]
    assert rows[0][1] == 1 and rows[-1][1] == 7


def test_extract_dayofweek_from_a_timestamp_column_and_in_an_expression():
    setup = (
        "SET TimeZone = 'UTC'; CREATE TABLE e AS SELECT TIMESTAMPTZ '2026-03-28 23:30:00+00' AS ts, "
        "DATE '2026-03-22' AS d"
    )
    sql = "SELECT EXTRACT(DAYOFWEEK FROM ts) AS sat, EXTRACT(DAYOFWEEK FROM d) * 10 AS sun_times_ten FROM e"
    assert duck(sql, setup=setup) == [(7, 10)]


def test_storage_options_ddl_creates_a_duckdb_table_with_the_same_columns():
    ddl = (
        "CREATE TABLE IF NOT EXISTS daily_events (event_date DATE, user_id STRING, n INT64, score FLOAT64, "
        "ts TIMESTAMP, flag BOOL) PARTITION BY event_date CLUSTER BY user_id, event_date "
        "OPTIONS (description = 'daily events', partition_expiration_days = 30)"
    )
    con = duckdb.connect()
    con.execute(to_duckdb(ddl))
    con.execute(to_duckdb(ddl))  # IF NOT EXISTS survives the rewrite: a rerun is safe
    cols = con.execute("SELECT column_name, column_type FROM (DESCRIBE daily_events)").fetchall()
    assert cols == [
        ("event_date", "DATE"),
        ("user_id", "VARCHAR"),
        ("n", "BIGINT"),
        ("score", "DOUBLE"),
        ("ts", "TIMESTAMP WITH TIME ZONE"),
        ("flag", "BOOLEAN"),
    ]


def test_storage_options_on_create_table_as_select_keep_the_query():
    ddl = (
        "CREATE TABLE IF NOT EXISTS t PARTITION BY DATE(ts) CLUSTER BY u OPTIONS (description = 'x') AS "
        "SELECT 'u1' AS u, TIMESTAMP '2026-03-01 10:00:00+00' AS ts, 3 AS n"
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(to_duckdb(ddl))
    assert con.execute("SELECT u, CAST(ts AS DATE), n FROM t").fetchall() == [("u1", dt.date(2026, 3, 1), 3)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT APPROX_TOP_COUNT(item_id, 3) AS top FROM events",
        "SELECT ARRAY_AGG(x IGNORE NULLS ORDER BY y LIMIT 2) AS a FROM t",
    ],
)
def test_googlesql_duckdb_cannot_run_raises_naming_the_source(sql):
    with pytest.raises(SQLTemplateError) as info:
        to_duckdb(sql, source="sql/recsys/top.sql")
    msg = str(info.value)
    assert msg.startswith("sql/recsys/top.sql:")
    assert "cannot run" in msg


# The pipeline's steps; outcomes.sql is not a step (OutcomeEvaluationOperator
# renders them) and run on DuckDB and the local BigQuery in tests/integration/sql and core/test_outcomes.
STEP_SQL = sorted(p for p in (SQL_DIR / "recsys").glob("*.sql") if p.name != "outcomes.sql")


@pytest.mark.parametrize("path", STEP_SQL, ids=lambda p: p.name)
def test_every_recsys_sql_file_transpiles_to_sql_duckdb_parses(path):
    spec = load_spec(PIPELINE)
    step = next(s for s in [*spec.steps, spec.label.step] if s.sql == f"recsys/{path.name}")
    text = render_sql(step, SQL_DIR, dt.date(2026, 3, 31), spec)  # source() and ref() rendered
    out = to_duckdb(text, source=str(path))
    # DuckDB's own parser accepts the result (binding needs the tables, which are absent here).
    assert len(duckdb.connect().extract_statements(out)) == 1
    assert "$as_of" in out and "@as_of" not in out.split("*/")[-1]


def test_read_sql_file_names_a_missing_file(tmp_path):
    missing = tmp_path / "nope.sql"
    with pytest.raises(SQLTemplateError, match=str(missing)):
        read_sql_file(missing)


# --- partition wrapper ----------------------------------------------------------------


def test_partition_select_adds_the_partition_value_to_every_row():
    sql = partition_select("SELECT x FROM UNNEST([1, 2, 3]) AS x;\n", "as_of_date")
    rows = duck(sql + " ORDER BY x", {"__partition": dt.date(2026, 3, 31)})
    assert rows == [(dt.date(2026, 3, 31), 1), (dt.date(2026, 3, 31), 2), (dt.date(2026, 3, 31), 3)]


def test_partition_select_survives_a_trailing_line_comment():
    sql = partition_select("SELECT 1 AS x -- the end", "as_of_date")
    assert duck(sql, {"__partition": dt.date(2026, 3, 31)}) == [(dt.date(2026, 3, 31), 1)]


def test_partition_select_survives_a_semicolon_followed_by_a_comment():
    sql = partition_select("SELECT 1 AS x;\n-- end of file\n", "as_of_date")
    assert duck(sql, {"__partition": dt.date(2026, 3, 31)}) == [(dt.date(2026, 3, 31), 1)]


@pytest.mark.parametrize("column", ["as_of_date; DROP TABLE x", "a.b", "", "1d"])
def test_partition_select_validates_the_column(column):
    with pytest.raises(IdentifierError, match="partition column"):
        partition_select("SELECT 1 AS x", column)


# --- values travel as parameters ------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "O'Brien'; DROP TABLE events; --",
        'a"b`c\\d',
        "line1\nline2 /* not a comment */",
        "@as_of $1 ? %s {{ x }}",
        "ünïcødé ✓",
    ],
)
def test_quote_laden_values_travel_as_parameters_and_come_back_unchanged(value):
    sql = "SELECT @who AS who, LENGTH(@who) AS n"
    text = to_duckdb(sql)
    assert value not in text
    assert duck(sql, {"who": value}) == [(value, len(value))]


def test_parameter_types_round_trip_through_duckdb():
    params = {
        "b": True,
        "i": 2**40,
        "f": 0.25,
        "s": "x",
        "d": dt.date(2026, 3, 31),
    }
    sql = "SELECT @b AS b, @i + 1 AS i, @f * 2 AS f, @s AS s, @d AS d, DATE_DIFF(@d, DATE '2026-03-01', DAY) AS n"
    assert duck(sql, params) == [(True, 2**40 + 1, 0.5, "x", dt.date(2026, 3, 31), 30)]


def test_date_add_and_date_sub_on_a_date_return_a_date():
    sql = "SELECT DATE_ADD(@d, INTERVAL 1 DAY) AS a, DATE_SUB(@d, INTERVAL @n DAY) AS b"
    assert duck(sql, {"d": dt.date(2026, 3, 31), "n": 31}) == [(dt.date(2026, 4, 1), dt.date(2026, 2, 28))]


def test_decimal_literals_are_float64():
    assert duck("SELECT 0.5 * 3 AS x, 1.0 AS y") == [(1.5, 1.0)]
    ((x, y),) = duck("SELECT 0.5 * 3 AS x, 1.0 AS y")
    assert type(x) is float and type(y) is float
