"""BigQuery's on-demand billing, as documented, for the local endpoint's dry runs and for ``bench/cost.py``.

What a query job processes (``totalBytesProcessed``) and bills, from the GoogleSQL it runs and the
sizes of the tables it reads. The rules, each from its page:

- **Only referenced columns are billed**, each sized by its data type
  (https://cloud.google.com/bigquery/pricing#data_size_calculation, "Data size calculation"):
  INT64, FLOAT64, DATE, DATETIME, TIME and TIMESTAMP 8 logical bytes; NUMERIC 16; BIGNUMERIC 32;
  BOOL 1; INTERVAL 16; STRING 2 + the UTF-8 encoded size; BYTES 2 + the bytes; JSON the UTF-8 size
  of the canonical text; a NULL of any type 0; a STRUCT the sum of its fields; a repeated field the
  sum of its elements. ``COUNT(*)`` references no column, so it reads 0 bytes of the table.
- **A filter on the partitioning column prunes partitions**; pruned partitions are not counted
  (https://cloud.google.com/bigquery/docs/querying-partitioned-tables, "partition pruning").
  Modelled: comparisons (``=``, ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN``, ``IN``) of the column,
  or of ``DATE(col)`` / ``TIMESTAMP_TRUNC(col, DAY)`` / ``CAST(col AS DATE)``, with a constant
  (literals, ``@parameters``, ``DATE_SUB``/``DATE_ADD`` by days, ``DATE()``/``TIMESTAMP()``/``CAST``
  of those), ANDed in the ``WHERE`` or ``ON`` of the scope that reads the table. Anything else
  (an ``OR``, a subquery, a column on the other side) does not prune: the estimate is an upper bound.
- **Clustering prunes only at run time**: "Because the number of blocks to scan isn't known until a
  query runs, you don't receive an accurate cost estimate before execution"
  (https://cloud.google.com/bigquery/docs/clustered-tables). A dry run therefore does not show it,
  and neither does this model; a real run of a clustered table may bill less.
- **At least 10 MB per table referenced, and 10 MB per query**; charges are rounded to the MB
  (https://cloud.google.com/bigquery/pricing#on_demand_pricing). DDL that runs no query
  (``CREATE TABLE`` without ``AS SELECT``, ``CREATE VIEW``, ``DROP``, ``ALTER``) is free
  (https://cloud.google.com/bigquery/pricing#ddl_pricing).
- **Price**: on-demand compute, US (multi-region), USD 6.25 per TiB, the first 1 TiB per month per
  billing account free (https://cloud.google.com/bigquery/pricing#on_demand_pricing; the list price
  since 2023-07-05, as read for this model on 2026-12-07). Other regions differ: see the page.

A table read in several places of one query (two CTEs, a self-join) is billed once here, for the
union of its columns and partitions. DML: an ``INSERT`` does not read its target; ``UPDATE``,
``DELETE`` and ``MERGE`` read theirs (https://cloud.google.com/bigquery/pricing#dml_pricing).
Column lineage comes from sqlglot's qualifier; a statement it cannot qualify is billed by column
name (every column of the table whose name appears in the query), which can only over-count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from tests.fakes.bigquery_rules import Field, TableMeta

PRICE_PER_TIB_USD = 6.25
PRICE_SOURCE = "https://cloud.google.com/bigquery/pricing#on_demand_pricing (US multi-region, read 2026-12-07)"
TIB = 2**40
MB = 2**20
MIN_BYTES_PER_TABLE = 10 * MB
MIN_BYTES_PER_QUERY = 10 * MB

#: Logical bytes of one non-NULL value of each fixed-size type (REST spellings and GoogleSQL names).
FIXED_BYTES = {
    "INTEGER": 8,
    "INT64": 8,
    "FLOAT": 8,
    "FLOAT64": 8,
    "DATE": 8,
    "DATETIME": 8,
    "TIME": 8,
    "TIMESTAMP": 8,
    "NUMERIC": 16,
    "BIGNUMERIC": 32,
    "BOOLEAN": 1,
    "BOOL": 1,
    "INTERVAL": 16,
}
#: Variable-size types: this overhead plus the value's UTF-8 (or raw) length.
VARIABLE_OVERHEAD = {"STRING": 2, "BYTES": 2, "JSON": 0}

Key = tuple[str, str, str]


def value_bytes(kind: str, value: Any) -> int:
    """Logical bytes of one value of type ``kind`` (``Field.type``), per "Data size calculation"."""
    if value is None:
        return 0
    kind = kind.upper()
    if kind in FIXED_BYTES:
        return FIXED_BYTES[kind]
    if kind in VARIABLE_OVERHEAD:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        return VARIABLE_OVERHEAD[kind] + len(raw)
    raise ValueError(f"no documented size for BigQuery type {kind}")


def field_bytes(f: Field, value: Any) -> int:
    """Logical bytes of ``value`` in field ``f``: repeated fields sum their elements, records their fields."""
    if value is None:
        return 0
    if f.mode == "REPEATED":
        return sum(field_bytes(Field(f.name, f.type, "NULLABLE", f.fields), v) for v in value)
    if f.type == "RECORD":
        return sum(field_bytes(sub, value.get(sub.name)) for sub in f.fields)
    return value_bytes(f.type, value)


@dataclass(frozen=True)
class TableStats:
    """How big a table is: rows per partition (None: unpartitioned) and mean logical bytes per row of each column."""

    rows: Mapping[dt.date | None, int]
    bytes_per_row: Mapping[str, float]

    def scan_bytes(self, columns: set[str] | None, partitions: Callable[[dt.date | None], bool] | None) -> int:
        """Bytes of ``columns`` (None: all) over the partitions ``partitions`` keeps (None: all)."""
        cols = self.bytes_per_row if columns is None else {c: self.bytes_per_row.get(c, 0.0) for c in columns}
        width = sum(cols.values())
        rows = sum(n for p, n in self.rows.items() if partitions is None or partitions(p))
        return round(rows * width)

    def scaled(self, factor: float, partitions: list[dt.date] | None = None) -> TableStats:
        """The table with ``factor`` times the rows; with ``partitions``, its mean partition on each of those dates."""
        if partitions is None or None in self.rows or not self.rows:
            return TableStats({p: round(n * factor) for p, n in self.rows.items()}, dict(self.bytes_per_row))
        mean = sum(self.rows.values()) / len(self.rows)
        return TableStats({d: round(mean * factor) for d in partitions}, dict(self.bytes_per_row))


def stats_from_rows(meta: TableMeta, rows: list[dict[str, Any]]) -> TableStats:
    """Measure ``rows`` of ``meta`` (a small world) the documented way."""
    counts: dict[dt.date | None, int] = {}
    totals = {f.name: 0 for f in meta.schema}
    for row in rows:
        key = partition_of(row.get(meta.partition_field)) if meta.partition_field else None
        counts[key] = counts.get(key, 0) + 1
        for f in meta.schema:
            totals[f.name] += field_bytes(f, row.get(f.name))
    n = max(len(rows), 1)
    return TableStats(counts, {name: total / n for name, total in totals.items()})


def partition_of(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


# --- which columns and partitions a statement reads -----------------------------------


@dataclass
class Usage:
    """What one statement reads of one table: columns (None: all) and date bounds (None: unbounded)."""

    columns: set[str] = field(default_factory=set)
    all_columns: bool = False
    ranges: list[tuple[dt.date | None, dt.date | None, set[dt.date] | None]] = field(default_factory=list)

    def keeps(self, partition: dt.date | None) -> bool:
        """Whether some read of the table keeps ``partition`` (a read with no filter keeps them all)."""
        for low, high, values in self.ranges:
            if partition is None:
                return True
            if low is not None and partition < low:
                continue
            if high is not None and partition > high:
                continue
            if values is not None and partition not in values:
                continue
            return True
        return False


@dataclass
class Estimate:
    """A statement's bill: bytes per table read, processed and billed in all, and the price."""

    tables: dict[Key, int]
    usage: dict[Key, Usage]
    free: bool = False

    @property
    def processed(self) -> int:
        return sum(self.tables.values())

    @property
    def billed(self) -> int:
        return 0 if self.free else bytes_billed(self.processed, len(self.tables))

    @property
    def cost_usd(self) -> float:
        return cost_usd(self.billed)


def is_free(sql: str) -> bool:
    """DDL that runs no query: ``CREATE TABLE`` (without ``AS SELECT``), ``CREATE VIEW``, ``DROP``, ``ALTER``.

    https://cloud.google.com/bigquery/pricing#ddl_pricing: these statements are not charged.
    """
    tree = sqlglot.parse_one(sql, read="bigquery")
    if isinstance(tree, exp.Drop | exp.Alter):
        return True
    if isinstance(tree, exp.Create):
        return str(tree.args.get("kind", "")).upper() == "VIEW" or not isinstance(tree.expression, exp.Query)
    return False


def bytes_billed(processed: int, tables_referenced: int) -> int:
    """Processed bytes rounded up to the MB, at least 10 MB per table referenced and 10 MB per query."""
    rounded = -(-processed // MB) * MB
    return max(rounded, MIN_BYTES_PER_TABLE * tables_referenced, MIN_BYTES_PER_QUERY)


def cost_usd(billed: int) -> float:
    """On-demand price of ``billed`` bytes (before the monthly free TiB)."""
    return billed / TIB * PRICE_PER_TIB_USD


def estimate(
    sql: str,
    params: Mapping[str, Any],
    tables: Mapping[Key, TableMeta],
    stats: Callable[[TableMeta], TableStats],
    *,
    project: str,
    dataset: str | None,
) -> Estimate:
    """The bytes ``sql`` (GoogleSQL, with ``params``) processes, reading ``tables`` of the sizes ``stats`` gives."""
    if is_free(sql):
        return Estimate({}, {}, free=True)
    usage = read_usage(sql, params, tables, project=project, dataset=dataset)
    out: dict[Key, int] = {}
    for key, use in usage.items():
        meta = tables[key]
        if meta.kind != "TABLE":
            out[key] = 0
            continue
        columns = None if use.all_columns else use.columns
        keep = use.keeps if meta.partition_field else None
        out[key] = stats(meta).scan_bytes(columns, keep)
    return Estimate(out, usage)


def read_usage(
    sql: str,
    params: Mapping[str, Any],
    tables: Mapping[Key, TableMeta],
    *,
    project: str,
    dataset: str | None,
) -> dict[Key, Usage]:
    """Per physical table the statement reads: the columns it references and the partitions its filters keep."""
    tree = sqlglot.parse_one(sql, read="bigquery")
    skip: set[int] = set()
    if isinstance(tree, exp.Insert | exp.Create):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        skip.add(id(target))
    for table in tree.find_all(exp.Table):
        if id(table) in skip or not table.name:
            continue
        key = (table.catalog or project, table.db or dataset or "", table.name)
        if key in tables:
            table.set("catalog", exp.to_identifier(key[0]))
            table.set("db", exp.to_identifier(key[1]))
    body = tree.expression if isinstance(tree, exp.Create | exp.Insert) else tree
    if isinstance(tree, exp.Export):
        body = tree.expression if isinstance(tree.expression, exp.Query) else tree.this
    if not isinstance(body, exp.Expression):
        return {}
    schema = _schema(tables)
    usage: dict[Key, Usage] = {}
    try:
        qualified = qualify(
            body.copy(),
            schema=schema,
            dialect="bigquery",
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
        )
        scopes = traverse_scope(qualified)
    except (sqlglot.errors.SqlglotError, ValueError, KeyError):
        scopes = []
    if not scopes:
        return _by_name(tree, tables, params, project=project, dataset=dataset)
    for scope in scopes:
        for alias, source in scope.sources.items():
            if not isinstance(source, exp.Table):
                continue
            key = (source.catalog or project, source.db or dataset or "", source.name)
            if key not in tables:
                continue
            meta = tables[key]
            use = usage.setdefault(key, Usage())
            for column in scope.columns:
                if column.table == alias:
                    use.columns.add(column.name)
            if _selects_star(scope.expression):
                use.all_columns = True  # a star the qualifier could not expand (no schema) reads every column
            use.ranges.append(_bounds(scope.expression, alias, meta, params))
    return usage


def _selects_star(select: exp.Expression) -> bool:
    return isinstance(select, exp.Select) and any(isinstance(e, exp.Star) for e in select.expressions)


def _schema(tables: Mapping[Key, TableMeta]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (project, dataset, name), meta in tables.items():
        out.setdefault(project, {}).setdefault(dataset, {})[name] = {
            f.name: "STRUCT<>" if f.type == "RECORD" else _sql_type(f) for f in meta.schema
        }
    return out


def _sql_type(f: Field) -> str:
    base = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(f.type, f.type)
    return f"ARRAY<{base}>" if f.mode == "REPEATED" else base


def _by_name(
    tree: exp.Expression,
    tables: Mapping[Key, TableMeta],
    params: Mapping[str, Any],
    *,
    project: str,
    dataset: str | None,
) -> dict[Key, Usage]:
    """Fallback when the statement cannot be qualified: every column whose name appears, no pruning."""
    names = {c.name for c in tree.find_all(exp.Column)}
    star = any(not isinstance(s.parent, exp.Count) for s in tree.find_all(exp.Star))
    usage: dict[Key, Usage] = {}
    for table in tree.find_all(exp.Table):
        key = (table.catalog or project, table.db or dataset or "", table.name)
        if key in tables:
            use = usage.setdefault(key, Usage())
            use.all_columns |= star
            use.columns |= {f.name for f in tables[key].schema if f.name in names}
            use.ranges.append((None, None, None))
    return usage


# --- partition filters ---------------------------------------------------------------


class _NotConstant(Exception):
    pass


def _bounds(
    select: exp.Expression, alias: str, meta: TableMeta, params: Mapping[str, Any]
) -> tuple[dt.date | None, dt.date | None, set[dt.date] | None]:
    """The date range (and value set) the ANDed filters of ``select`` keep of ``alias``'s partitioning column."""
    low: dt.date | None = None
    high: dt.date | None = None
    values: set[dt.date] | None = None
    if not meta.partition_field or not isinstance(select, exp.Select):
        return low, high, values
    conjuncts: list[exp.Expression] = []
    where = select.args.get("where")
    if where is not None:
        conjuncts += list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        if on is not None:
            conjuncts += list(on.flatten()) if isinstance(on, exp.And) else [on]
    for c in conjuncts:
        try:
            lo, hi, vals = _condition(c, alias, meta.partition_field, params)
        except _NotConstant:
            continue
        if lo is not None:
            low = lo if low is None else max(low, lo)
        if hi is not None:
            high = hi if high is None else min(high, hi)
        if vals is not None:
            values = vals if values is None else values & vals
    return low, high, values


_FLIP = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}


def _condition(
    c: exp.Expression, alias: str, column: str, params: Mapping[str, Any]
) -> tuple[dt.date | None, dt.date | None, set[dt.date] | None]:
    if isinstance(c, exp.Paren):
        return _condition(c.this, alias, column, params)
    if isinstance(c, exp.Between) and _is_partition(c.this, alias, column):
        return _lower(exp.GTE, _const(c.args["low"], params)), _upper(exp.LTE, _const(c.args["high"], params)), None
    if isinstance(c, exp.In) and _is_partition(c.this, alias, column) and c.expressions:
        return None, None, {_as_date(_const(e, params)) for e in c.expressions}
    for op in _FLIP:
        if isinstance(c, op):
            left, right = c.this, c.expression
            if _is_partition(right, alias, column):
                left, right, op = right, left, _FLIP[op]
            if not _is_partition(left, alias, column):
                raise _NotConstant
            value = _const(right, params)
            if op is exp.EQ:
                return None, None, {_as_date(value)}
            return _lower(op, value), _upper(op, value), None
    raise _NotConstant


def _lower(op: type, value: dt.date | dt.datetime) -> dt.date | None:
    if op is exp.GTE or op is exp.GT:
        if isinstance(value, dt.datetime):
            return value.date()
        return value if op is exp.GTE else value + dt.timedelta(days=1)
    return None


def _upper(op: type, value: dt.date | dt.datetime) -> dt.date | None:
    if op is exp.LTE or op is exp.LT:
        if isinstance(value, dt.datetime):
            at_midnight = value.time() == dt.time(0) and op is exp.LT
            return value.date() - dt.timedelta(days=1) if at_midnight else value.date()
        return value if op is exp.LTE else value - dt.timedelta(days=1)
    return None


def _is_partition(e: exp.Expression, alias: str, column: str) -> bool:
    """``col``, ``DATE(col)``, ``CAST(col AS DATE)`` or ``TIMESTAMP_TRUNC(col, DAY)`` of ``alias``."""
    if isinstance(e, exp.Date | exp.TsOrDsToDate | exp.Cast | exp.TimestampTrunc | exp.DateTrunc):
        if isinstance(e, exp.TimestampTrunc | exp.DateTrunc) and str(e.args.get("unit", "")).upper() != "DAY":
            return False
        if isinstance(e, exp.Cast) and not e.to.is_type(exp.DataType.Type.DATE):
            return False
        e = e.this
    return isinstance(e, exp.Column) and e.name == column and e.table in (alias, "")


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _const(e: exp.Expression, params: Mapping[str, Any]) -> Any:
    """Fold ``e`` to a date, datetime or int, or raise ``_NotConstant``."""
    if isinstance(e, exp.Paren):
        return _const(e.this, params)
    if isinstance(e, exp.Parameter | exp.Placeholder):
        name = e.name
        if name not in params:
            raise _NotConstant
        return params[name]
    if isinstance(e, exp.Literal):
        if not e.is_string:
            return int(e.this)
        try:
            return dt.date.fromisoformat(e.this)
        except ValueError:
            try:
                return dt.datetime.fromisoformat(e.this)
            except ValueError as err:
                raise _NotConstant from err
    if isinstance(e, exp.Cast | exp.Date | exp.TsOrDsToDate) and e.this is not None:
        value = _const(e.this, params)
        to = e.args.get("to")
        if isinstance(e, exp.Cast) and to is not None and to.this == exp.DataType.Type.DATE:
            return _as_date(value)
        if isinstance(e, exp.Date | exp.TsOrDsToDate):
            return _as_date(value)
        return value
    if isinstance(e, exp.Timestamp) and e.this is not None:
        value = _const(e.this, params)
        return value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time(0))
    if isinstance(e, exp.DateSub | exp.DateAdd):
        if str(e.args.get("unit") or "DAY").upper() != "DAY":
            raise _NotConstant
        days = e.expression
        if isinstance(days, exp.Interval):
            days = days.this
        n = _const(days, params)
        base = _const(e.this, params)
        if not isinstance(n, int) or not isinstance(base, dt.date):
            raise _NotConstant
        return base + dt.timedelta(days=n if isinstance(e, exp.DateAdd) else -n)
    raise _NotConstant
