"""The drift scan: one GoogleSQL aggregation per table counts every column's rows into its bins.

A ``CASE`` per column maps each row to its bin code (``core/drift/bins.py``) and ``COUNTIF``
counts the codes, with ``segment_by`` as grouping sets of the same scan. Python only ever sees
those counts. Numbers enter the SQL as ``repr`` of finite floats; category strings only as
query parameters.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.drift.bins import INF_CODE, NULL_CODE, ColumnBins, DriftProfileError
from airflow_ml_provider.core.training.profile import NULL_LABEL

if TYPE_CHECKING:
    from airflow_ml_provider.core.warehouse.interface import Warehouse

#: The segment of every row: what the dataset verdict is computed on.
ALL_SEGMENTS = "__all__"


def sql_float(value: float) -> str:
    """A finite float as a GoogleSQL literal that parses back to the same double (``repr`` round-trips)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DriftProfileError(f"{value!r} cannot be a SQL number: only finite floats become literals.")
    return repr(float(value) + 0.0)


def bin_case(bins: ColumnBins, index: int) -> tuple[str, dict[str, str]]:
    """The ``CASE`` that maps column ``bins.name`` to its bin code, and the parameters it uses."""
    col = f"`{validate_identifier(bins.name, kind='drift column')}`"
    if bins.kind == "categorical":
        params = {f"c{index}_{j}": cat for j, cat in enumerate(bins.categories)}
        whens = [f"WHEN {col} = @{p} THEN {j}" for j, p in enumerate(params)]
        return f"CASE WHEN {col} IS NULL THEN {NULL_CODE} {' '.join(whens)} ELSE {len(params)} END", params
    x = f"CAST({col} AS INT64)" if bins.sql_type == "BOOL" else col
    whens = [f"WHEN {x} IS NULL THEN {NULL_CODE}"]
    if bins.sql_type not in ("INT64", "BOOL"):
        whens += [f"WHEN IS_NAN({x}) THEN {NULL_CODE}", f"WHEN IS_INF({x}) THEN {INF_CODE}"]
    whens += [f"WHEN {x} <= {sql_float(e)} THEN {i}" for i, e in enumerate(bins.edges)]
    return f"CASE {' '.join(whens)} ELSE {len(bins.edges)} END", {}


@dataclass(frozen=True)
class Scan:
    """One table scan of a check: which rows (partition range, equality filters, non-NULL columns) and which columns."""

    table: str
    partition_column: str
    columns: tuple[ColumnBins, ...]
    filters: Mapping[str, Any] = field(default_factory=dict)
    segment_by: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()  # rows where these are NULL are not counted (e.g. a filled list row has no score)


def scan_sql(scan: Scan, start: dt.date, end: dt.date, max_segments: int = 50) -> tuple[str, dict[str, Any]]:
    """One GoogleSQL aggregation counting every column of ``scan`` into its bins, per segment and in total.

    A column with a ``per`` key counts distinct (partition date, key) pairs per bin instead of rows.
    """
    table = validate_identifier(scan.table)
    part = validate_identifier(scan.partition_column, kind="partition column")
    params: dict[str, Any] = {"start": start, "end": end}
    where = [f"`{part}` BETWEEN @start AND @end"]
    for i, (column, value) in enumerate(scan.filters.items()):
        where.append(f"`{validate_identifier(column, kind='filter column')}` = @f{i}")
        params[f"f{i}"] = value
    where += [f"`{validate_identifier(column, kind='filter column')}` IS NOT NULL" for column in scan.not_null]
    segs = [f"s{i}" for i in range(len(scan.segment_by))]
    selects = [
        f"CAST(`{validate_identifier(c, kind='segment column')}` AS STRING) AS {s}"
        for c, s in zip(scan.segment_by, segs, strict=True)
    ]
    counts = ["COUNT(*) AS n"]
    keys: dict[str, str] = {}  # per key column -> its alias in `binned`
    for i, bins in enumerate(scan.columns):
        case, used = bin_case(bins, i)
        selects.append(f"{case} AS b{i}")
        params.update(used)
        if bins.per is None:
            counts += [f"COUNTIF(b{i} = {code}) AS {_count_alias(i, code)}" for code in bins.codes]
            continue
        if bins.per not in keys:
            # One value per (date, key): the key counted once per partition date, even over a window.
            keys[bins.per] = key = f"k{len(keys)}"
            per = validate_identifier(bins.per, kind="drift per key")
            selects.append(f"CONCAT(CAST(`{part}` AS STRING), '|', CAST(`{per}` AS STRING)) AS {key}")
        counts += [
            f"COUNT(DISTINCT CASE WHEN b{i} = {code} THEN {keys[bins.per]} END) AS {_count_alias(i, code)}"
            for code in bins.codes
        ]
    body = ",\n    ".join(selects) or "1 AS one"
    sql = f"WITH binned AS (\n  SELECT\n    {body}\n  FROM `{table}`\n  WHERE {' AND '.join(where)}\n)\n"
    if not segs:
        return sql + f"SELECT {', '.join(counts)}\nFROM binned", params
    by = ", ".join(segs)
    return (
        sql
        + f"SELECT {by}, GROUPING({segs[0]}) AS is_total, {', '.join(counts)}\nFROM binned\n"
        + f"GROUP BY GROUPING SETS (({by}), ())\nORDER BY is_total DESC, n DESC, {by}\n"
        + f"LIMIT {int(max_segments) + 1}"
    ), params


def _count_alias(index: int, code: int) -> str:
    """Output column of one bin's count: ``b3_0``, ``b3_null``, ``b3_inf``."""
    return f"b{index}_" + {NULL_CODE: "null", INF_CODE: "inf"}.get(code, str(code))


def segment_key(segment_by: Sequence[str], values: Sequence[str | None]) -> str:
    """``col=value`` pairs joined by commas; a null value is ``__NULL__``."""
    return ",".join(f"{c}={NULL_LABEL if v is None else v}" for c, v in zip(segment_by, values, strict=True))


def parse_counts(rows: list[dict[str, Any]], scan: Scan) -> dict[str, dict[str, np.ndarray]]:
    """Scan output rows -> segment -> column -> count vector; the total is ``ALL_SEGMENTS``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for row in rows:
        is_total = not scan.segment_by or row["is_total"]
        key = (
            ALL_SEGMENTS
            if is_total
            else segment_key(scan.segment_by, [row[f"s{i}"] for i in range(len(scan.segment_by))])
        )
        out[key] = {
            bins.name: np.array([row[_count_alias(i, c)] or 0 for c in bins.codes], dtype=np.int64)
            for i, bins in enumerate(scan.columns)
        }
    # An empty partition: no grand-total row on some engines; every count is zero.
    out.setdefault(ALL_SEGMENTS, {b.name: np.zeros(len(b.codes), dtype=np.int64) for b in scan.columns})
    return out


def run_scan(
    warehouse: Warehouse, scan: Scan, start: dt.date, end: dt.date | None = None, max_segments: int = 50
) -> dict[str, dict[str, np.ndarray]]:
    """Run the scan's one query on the warehouse; return segment -> column -> bin counts."""
    sql, params = scan_sql(scan, start, end or start, max_segments)
    rows = warehouse.query(sql, params, source=f"drift scan of {scan.table}").to_pylist()
    return parse_counts(rows, scan)
