"""Checks on the events source that catch wrong-but-valid data before a date's steps read it.

On by default, each overridable (or ``null``) under ``checks.events`` in pipeline.yaml:

- ``timestamp_type``: the timestamp column is a TIMESTAMP, DATETIME or DATE. Text with
  offsets (``'2026-03-01 10:00:00-05:00'``) compares as text and moves events to other days,
  so it is refused before any query reads it; convert it once, in a view or the loader
  (``PARSE_TIMESTAMP``), to UTC.
- ``null_ids``: events with a NULL user or item id would become one ghost user (or item)
  that shifts everyone's co-visitation; at most ``max_share`` of the lookback's events.
- ``completeness``: every day of the lookback that the history covers has events, at least
  ``min_share`` of the median day; a missing or partial day is an ``error`` (a shop that is
  closed on some days raises ``max_missing_days``).
- ``history``: the history reaches back over the whole lookback, or to the contract's
  ``start_date``. A date whose history starts inside its lookback is built (the first weeks of
  data), with a ``warn``; but rebuilding a
  date that already has a partition from partial history (events pruned since) would replace
  good features with worse, so it is refused unless forced (``--force-replace``).

One aggregation over the lookback and the day before it: the events per UTC day and the
events with a NULL id. Python sees counts, never rows.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.features.checks import CheckQuery, CheckResult, _result

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse

#: How many dates a message names.
NAMED_DAYS = 5
#: Column types a timestamp may have (DuckDB and BigQuery spellings, upper case, prefix match).
TIMESTAMP_TYPES = ("TIMESTAMP", "DATETIME", "DATE")


def _columns(spec: PipelineSpec) -> tuple[str, str, str, str]:
    """(table, timestamp column, user column, item column) of the events source, as the table names them."""
    ev = spec.checks.events
    assert ev is not None
    table = validate_identifier(spec.sources[ev.source])
    yours = spec.source_columns.get(ev.source, {})
    user = validate_identifier(yours.get(spec.entities.user) or spec.entities.user, kind="user id column")
    item = validate_identifier(yours.get(spec.entities.item) or spec.entities.item, kind="item id column")
    return table, ev.timestamp_column, user, item


def timestamp_type_result(warehouse: Warehouse, spec: PipelineSpec) -> CheckResult | None:
    """The timestamp column's type, judged before any query compares it; None when the check is off or n/a."""
    ev = spec.checks.events
    if ev is None or ev.timestamp_type is None or ev.source not in spec.sources:
        return None
    table, ts, _, _ = _columns(spec)
    if not warehouse.table_exists(table):
        return None  # the events checks' own query names the missing table
    columns = {c.lower(): t for c, t in warehouse.table_columns(table).items()}
    found = columns.get(ts.lower())
    if found is None:
        message = (
            f"{table}: has no column {ts} (checks.events.timestamp_column); its columns are "
            f"{', '.join(sorted(columns))}. Name the events' timestamp column in checks.events.timestamp_column "
            "and in source_columns.events.event_ts of pipeline.yaml."
        )
    else:
        message = (
            f"{table}.{ts} is {found}, not a TIMESTAMP: text (e.g. with -05:00 offsets) compares as text and moves "
            "events to other days. Convert it to a UTC TIMESTAMP in the loader or a view (PARSE_TIMESTAMP / "
            "CAST(... AS TIMESTAMP)) and point sources.events at it."
        )
    ok = found is not None and found.upper().startswith(TIMESTAMP_TYPES)
    return _result("timestamp_type", table, None, None, ev.timestamp_type.severity, ok, message)


def source_quality_query(spec: PipelineSpec, as_of: dt.date) -> CheckQuery | None:
    """NULL ids, per-day completeness and history coverage over ``as_of``'s lookback; None when all are off."""
    ev = spec.checks.events
    if ev is None or ev.source not in spec.sources:
        return None
    if ev.null_ids is None and ev.completeness is None and ev.history is None:
        return None
    table, ts, user, item = _columns(spec)
    lookback = spec.windows.feature_lookback_days
    params: dict[str, Any] = {"chk_as_of": as_of, "chk_days": lookback + 1}
    # Day d (0 = the as-of date) for d in 0..lookback: the lookback and the day before it.
    sql = (
        "SELECT\n  SUM(IF(chk_d < @chk_days - 1, n, 0)) AS chk_window,\n"
        "  SUM(IF(chk_d < @chk_days - 1, nulls, 0)) AS chk_null_ids,\n"
        "  ARRAY_AGG(STRUCT(chk_d AS d, n AS n)) AS chk_by_day\n"
        f"FROM (\n  SELECT DATE_DIFF(@chk_as_of, DATE({ts}), DAY) AS chk_d, COUNT(*) AS n,\n"
        f"    COUNTIF({user} IS NULL OR {item} IS NULL) AS nulls\n  FROM {table}\n"
        f"  WHERE DATE({ts}) > DATE_SUB(@chk_as_of, INTERVAL @chk_days DAY) AND DATE({ts}) <= @chk_as_of\n"
        "  GROUP BY 1\n) AS chk_days"
    )

    def judge(row: Mapping[str, Any]) -> list[CheckResult]:
        by_day = {int(r["d"]): int(r["n"]) for r in (row.get("chk_by_day") or []) if r and r.get("d") is not None}
        total, nulls = int(row.get("chk_window") or 0), int(row.get("chk_null_ids") or 0)
        start = as_of - dt.timedelta(days=lookback)
        out = []
        if ev.null_ids is not None:
            share = nulls / total if total else 0.0
            out.append(
                _result(
                    "null_ids",
                    table,
                    round(share, 6),
                    ev.null_ids.max_share,
                    ev.null_ids.severity,
                    share <= ev.null_ids.max_share,
                    f"{table}: {nulls} of {total} events in ({start}, {as_of}] ({share:.1%}) have a NULL {user} or "
                    f"{item}; they would become one ghost user or item and shift everyone's co-visitation. Drop or "
                    "fix them in the loader, or raise checks.events.null_ids.max_share in pipeline.yaml.",
                )
            )
        days = [by_day.get(d, 0) for d in range(lookback)]  # index d: the as-of date minus d days
        seen = [d for d in range(lookback) if days[d] > 0]
        covers = by_day.get(lookback, 0) > 0  # events the day before the lookback: the history covers it
        first = lookback - 1 if covers else (max(seen) if seen else None)
        if ev.completeness is not None and first is not None:
            c = ev.completeness
            covered = days[: first + 1]
            floor = c.min_share * statistics.median(covered)
            short = sorted(as_of - dt.timedelta(days=d) for d in range(first + 1) if days[d] < floor)
            named = ", ".join(f"{d} ({days[(as_of - d).days]})" for d in short[:NAMED_DAYS])
            more = f" and {len(short) - NAMED_DAYS} more" if len(short) > NAMED_DAYS else ""
            out.append(
                _result(
                    "completeness",
                    table,
                    len(short),
                    c.max_missing_days,
                    c.severity,
                    len(short) <= c.max_missing_days,
                    f"{table}: {len(short)} day(s) of the lookback ({start}, {as_of}] have fewer than "
                    f"{c.min_share:.0%} of the median day's {statistics.median(covered):g} events: {named}{more}. "
                    "Load the missing days, or raise checks.events.completeness.max_missing_days if the shop was "
                    "closed.",
                )
            )
        if ev.history is not None:
            have = 0 if first is None else first + 1
            # History that starts on the contract's start_date (or earlier) is whole by definition.
            begins = spec.start_date
            covers = covers or (first is not None and begins is not None and as_of - dt.timedelta(days=first) <= begins)
            since = "no events" if first is None else f"events start on {as_of - dt.timedelta(days=first)}"
            out.append(
                _result(
                    "history",
                    table,
                    have,
                    lookback,
                    "warn",  # a partial history refuses only a rebuild over an existing partition (replace_guard)
                    covers,
                    f"{table}: {since}, so {as_of}'s {lookback}-day lookback holds {have} day(s) of history; its "
                    "features see less than later dates' do.",
                )
            )
        return out

    return CheckQuery(table, sql, params, judge)


def refuse_partial_rebuild(
    warehouse: Warehouse, spec: PipelineSpec, as_of: dt.date, results: list[CheckResult], *, force: bool
) -> list[CheckResult]:
    """Turn a partial ``history`` into a failed check when a step already has ``as_of``'s partition.

    Rebuilding a date after its events were pruned would replace features built on the whole
    lookback with features from a part of it; only ``force`` allows it.
    """
    ev = spec.checks.events
    partial = [r for r in results if r.name == "history" and r.status != "pass"]
    if not partial or force or ev is None or ev.history is None:
        return results
    existing = _existing_partition(warehouse, spec, as_of)
    if existing is None:
        return results
    table, rows = existing
    old = partial[0]
    since = as_of - dt.timedelta(days=int(old.threshold or 0))
    failed = CheckResult(
        "history",
        old.table,
        old.observed,
        old.threshold,
        ev.history.severity,
        "fail" if ev.history.severity == "error" else "warn",
        f"{old.message} {table} already holds {rows} row(s) for {as_of}, built before; replacing them from a "
        f"partial history would make them worse. Load the events back to {since}, "
        "or rebuild anyway with --force-replace (force_replace=True in the DAG's params).",
    )
    return [failed if r is old else r for r in results]


def _existing_partition(warehouse: Warehouse, spec: PipelineSpec, as_of: dt.date) -> tuple[str, int] | None:
    """The first feature step table holding rows for ``as_of``, and how many."""
    from airflow_ml_provider.exceptions import TableNotFoundError

    for step in spec.steps:
        if not warehouse.table_exists(step.table):
            continue
        try:
            rows = warehouse.query(
                f"SELECT COUNT(*) AS n FROM {validate_identifier(step.table)} WHERE as_of_date = @d",
                {"d": as_of},
                source=f"partition {step.table} as_of_date={as_of}",
            ).to_pylist()[0]["n"]
        except TableNotFoundError:
            continue
        if rows:
            return step.table, int(rows)
    return None
