"""GoogleSQL helpers: identifier validation, query parameters and the DuckDB transpiler.

Every SQL file in the repo is GoogleSQL (BigQuery standard SQL). On the embedded
backend it is transpiled to DuckDB by sqlglot. Where sqlglot's output would be wrong
or unsupported, a small *named* rewrite below fixes the tree first; each one has a test.
Values never enter SQL text: they travel as ``@name`` query parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError, UnsupportedError

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.exceptions import SQLTemplateError


def bigquery_type(value: Any) -> str:
    """The GoogleSQL type a Python value travels as when it is a query parameter."""
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, str):
        return "STRING"
    raise SQLTemplateError(
        f"query parameter value {value!r} has unsupported type {type(value).__name__}: "
        "pass a bool, int, float, str, date or datetime."
    )


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate parameter names and value types; return a plain dict."""
    out: dict[str, Any] = {}
    for name, value in (params or {}).items():
        validate_identifier(name, kind="query parameter")
        bigquery_type(value)
        out[name] = value
    return out


def parse(sql: str, source: str = "<sql>") -> exp.Expression:
    """Parse one GoogleSQL statement; errors name ``source`` and the position."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except TokenError as err:
        raise SQLTemplateError(f"{source}: does not parse as GoogleSQL: {err}. Fix the SQL and rerun.") from err
    except ParseError as err:
        detail = err.errors[0] if err.errors else {}
        where = f" at line {detail.get('line')}, column {detail.get('col')}" if detail else ""
        desc = detail.get("description", str(err)) if detail else str(err)
        raise SQLTemplateError(f"{source}: does not parse as GoogleSQL{where}: {desc}. Fix the SQL and rerun.") from err
    if len(statements) != 1:
        raise SQLTemplateError(
            f"{source}: expected exactly one SQL statement, found {len(statements)}. Keep one query per file."
        )
    return cast(exp.Expression, statements[0])


def check_create_if_not_exists(ddl: str, source: str = "<ddl>") -> exp.Create:
    """Parse DDL and insist on ``CREATE TABLE/VIEW IF NOT EXISTS`` or ``CREATE OR REPLACE VIEW``."""
    tree = parse(ddl, source)
    ok = isinstance(tree, exp.Create) and (
        tree.args.get("exists") or (tree.kind == "VIEW" and tree.args.get("replace"))
    )
    if not ok:
        raise SQLTemplateError(
            f"{source}: DDL must be `CREATE TABLE IF NOT EXISTS ...` (or `CREATE OR REPLACE "
            "VIEW ...`) so that running it twice is safe."
        )
    assert isinstance(tree, exp.Create)
    return tree


def output_columns(sql: str, source: str = "<sql>") -> list[str]:
    """Names of the columns a SELECT statement produces (``*`` is kept as ``*``)."""
    tree = parse(sql, source)
    if not isinstance(tree, exp.Query):
        raise SQLTemplateError(f"{source}: expected a SELECT query, got {tree.key.upper()}.")
    return [e.alias_or_name for e in tree.selects]


# --- named rewrites for sqlglot's GoogleSQL -> DuckDB gaps --------------------------


def rewrite_array_agg_limit(tree: exp.Expression) -> exp.Expression:
    """``ARRAY_AGG(x ORDER BY y LIMIT n)`` -> ``LIST_SLICE(ARRAY_AGG(x ORDER BY y), 1, n)``.

    DuckDB has no LIMIT inside an aggregate; slicing the ordered list is equivalent.
    """

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Limit):
            limit = node.this
            agg = node.copy()
            agg.set("this", limit.this.copy())
            return cast(exp.Expression, exp.func("LIST_SLICE", agg, exp.Literal.number(1), limit.expression.copy()))
        return node

    return tree.transform(fix)


def rewrite_dayofweek(tree: exp.Expression) -> exp.Expression:
    """``EXTRACT(DAYOFWEEK FROM d)`` is 1 (Sunday) to 7 in GoogleSQL but 0 to 6 in DuckDB."""

    def fix(node: exp.Expression) -> exp.Expression:
        # The marker stops transform() from rewriting the copy it just produced.
        if isinstance(node, exp.Extract) and node.this.name.upper() == "DAYOFWEEK" and not node.meta.get("dow_fixed"):
            node.meta["dow_fixed"] = True
            return exp.Paren(this=exp.Add(this=node.copy(), expression=exp.Literal.number(1)))
        return node

    return tree.transform(fix)


def rewrite_storage_options(tree: exp.Expression) -> exp.Expression:
    """Drop ``PARTITION BY``, ``CLUSTER BY`` and ``OPTIONS(...)`` from DDL.

    They are BigQuery storage layout; DuckDB has no equivalent and needs none.
    """
    dropped = (exp.PartitionedByProperty, exp.ClusteredByProperty, exp.Cluster, exp.Property)
    props = tree.args.get("properties") if isinstance(tree, exp.Create) else None
    if props is not None:
        keep = [p for p in props.expressions if not isinstance(p, dropped)]
        if keep:
            props.set("expressions", keep)
        else:
            tree.set("properties", None)
    return tree


def rewrite_date_arithmetic(tree: exp.Expression) -> exp.Expression:
    """``DATE_ADD``/``DATE_SUB`` return DATE in GoogleSQL; DuckDB's ``d + INTERVAL`` is a TIMESTAMP."""

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.DateAdd, exp.DateSub)) and not node.meta.get("date_cast"):
            node.meta["date_cast"] = True
            return exp.Cast(this=node.copy(), to=exp.DataType.build("DATE"))
        return node

    return tree.transform(fix)


def rewrite_float_literals(tree: exp.Expression) -> exp.Expression:
    """``0.5`` is FLOAT64 in GoogleSQL but DECIMAL in DuckDB; keep it a double."""

    def fix(node: exp.Expression) -> exp.Expression:
        if (
            isinstance(node, exp.Literal)
            and not node.is_string
            and any(c in node.this.lower() for c in ".e")
            and not isinstance(node.parent, exp.Cast)
        ):
            return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
        return node

    return tree.transform(fix)


REWRITES: dict[str, Callable[[exp.Expression], exp.Expression]] = {
    "date_arithmetic_is_date": rewrite_date_arithmetic,
    "float_literals_are_float64": rewrite_float_literals,
    "array_agg_limit": rewrite_array_agg_limit,
    "dayofweek_one_based": rewrite_dayofweek,
    "storage_options": rewrite_storage_options,
}


def referenced_params(sql: str, source: str = "<sql>") -> set[str]:
    """Names of the ``@name`` query parameters a statement uses."""
    return {p.name for p in parse(sql, source).find_all(exp.Parameter)}


def bind_params(sql: str, params: Mapping[str, Any] | None, source: str = "<sql>") -> dict[str, Any]:
    """The subset of ``params`` the SQL uses; a used but missing parameter is an error."""
    given = check_params(params)
    used = referenced_params(sql, source)
    missing = sorted(used - given.keys())
    if missing:
        raise SQLTemplateError(
            f"{source}: uses query parameter(s) {', '.join('@' + m for m in missing)} but no "
            f"value was given (given: {', '.join(sorted(given)) or 'none'}). Pass them in "
            "`query_params`."
        )
    return {k: v for k, v in given.items() if k in used}


def to_duckdb(sql: str, source: str = "<sql>") -> str:
    """Transpile one GoogleSQL statement to DuckDB, applying the named rewrites."""
    tree = parse(sql, source)
    for rewrite in REWRITES.values():
        tree = rewrite(tree)
    try:
        return tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except (UnsupportedError, SqlglotError) as err:
        raise SQLTemplateError(
            f"{source}: GoogleSQL that the DuckDB backend cannot run: {err}. Use an "
            "equivalent construct, or add a named rewrite in airflow_ml_provider/core/warehouse/sql.py."
        ) from err


def partition_select(sql: str, partition_column: str, source: str = "<sql>") -> str:
    """Wrap a query so every row carries the partition value from ``@__partition``.

    One wrapper for both backends keeps the partition column out of the DS-owned SQL. The
    query is parsed on its own first, so an error (a second statement, a syntax error) names
    ``source`` with positions in the file, not in the wrapper.
    """
    validate_identifier(partition_column, kind="partition column")
    body = _strip_trailing_semicolons(sql)
    parse(body, source)
    return f"SELECT @__partition AS {partition_column}, src.* FROM (\n{body}\n) AS src"


def _strip_trailing_semicolons(sql: str) -> str:
    """Cut the text at a final ``;`` even when comments follow it (they would swallow the wrapper)."""
    try:
        tokens = sqlglot.tokenize(sql, read="bigquery")
    except TokenError:
        return sql.strip()  # parse() reports it with the file name
    end = len(tokens)
    while end and tokens[end - 1].token_type == sqlglot.TokenType.SEMICOLON:
        end -= 1
    if end == len(tokens):
        return sql.strip()
    return sql[: tokens[end].start].strip() if end else ""


def read_sql_file(path: str | Path) -> str:
    """Read a .sql file, naming it in the error when it is missing."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise SQLTemplateError(f"SQL file {p} does not exist. Check the path.") from err
