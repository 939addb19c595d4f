"""Data checks: compile the contract's ``checks:`` to one GoogleSQL aggregation per table, judge the row.

Pure: SQL text and parameters go out, one result row comes back, and the verdicts are values
(``CheckResult``), not exceptions; ``raise_on_errors`` turns the ``error`` ones into one
``DataCheckError`` for the caller that must stop. Python sees counts, never rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.contract.spec_checks import TableCheck
from airflow_ml_provider.exceptions import MLProviderError

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec

log = logging.getLogger(__name__)

#: Column -> GoogleSQL type of a ``data_checks`` row, as in sql/ddl/data_checks.sql (after check_date).
CHECK_COLUMNS: dict[str, str] = {
    "table_name": "STRING",
    "check_name": "STRING",
    "observed": "FLOAT64",
    "threshold": "FLOAT64",
    "severity": "STRING",
    "status": "STRING",
    "message": "STRING",
    "run_id": "STRING",
    "checked_at": "TIMESTAMP",
}


class DataCheckError(MLProviderError):
    """An ``error`` data check failed; nothing was written."""


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict on one table and date. ``status``: pass | warn | fail | skipped."""

    name: str
    table: str
    observed: float | None
    threshold: float | None
    severity: str
    status: str
    message: str

    @property
    def failed(self) -> bool:
        """Whether the check stops the task (an ``error`` check that did not pass)."""
        return self.status == "fail"

    def log_line(self) -> str:
        """One line for the task log."""
        return (
            f"data check {self.status.upper()}: {self.table} {self.name} observed={_fmt(self.observed)} "
            f"threshold={_fmt(self.threshold)} severity={self.severity}" + (f": {self.message}" if self.message else "")
        )

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict (JSON, XCom)."""
        return asdict(self)


@dataclass(frozen=True)
class CheckQuery:
    """One aggregation over one table (or a staged relation) and how to judge its single row."""

    table: str
    sql: str
    params: dict[str, Any]
    judge: Callable[[Mapping[str, Any]], list[CheckResult]] = field(repr=False)

    def evaluate(self, row: Mapping[str, Any]) -> list[CheckResult]:
        """The verdicts for the aggregation's result row."""
        return self.judge(row)


_SEP = ",\n  "


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _verdict(passed: bool, severity: str) -> str:
    return "pass" if passed else ("fail" if severity == "error" else "warn")


def _result(name: str, table: str, observed: float | None, threshold: float | None, severity: str,
            passed: bool, message: str) -> CheckResult:  # fmt: skip
    return CheckResult(
        name, table, observed, threshold, severity, _verdict(passed, severity), "" if passed else message
    )


# --- step tables ------------------------------------------------------------------------------


def table_checks(spec: PipelineSpec, table: str) -> list[TableCheck]:
    """The checks of one step table: the automatic ones (feature table) then the declared ones."""
    checks: list[TableCheck] = []
    if spec.checks.automatic and table == spec.feature_table:
        keys = [spec.entities.user, spec.entities.item]
        checks += [TableCheck(check="not_null", column=k) for k in keys]
        checks += [TableCheck(check="not_null", column=f.name) for f in spec.model_features if not f.nullable]
        checks.append(TableCheck(check="unique", columns=keys))
    declared = spec.checks.tables.get(table, [])
    return checks + [c for c in declared if c not in checks]


def table_check_query(
    spec: PipelineSpec, table: str, relation: str, as_of: dt.date, *, prefix: str = ""
) -> CheckQuery | None:
    """One aggregation over ``relation`` (the step's new rows) for the checks of ``table``; None without checks.

    ``relation`` is a table name or a parenthesised query. The label step also gets
    ``label_completeness``. ``prefix`` starts every output column and parameter name, so
    several tables' aggregations can share one query (``core.features.preflight``).
    """
    checks = table_checks(spec, table)
    label = spec.checks.label_completeness if table == spec.label.step.table else None
    if not checks and label is None:
        return None
    floats = {f.name for f in spec.features if f.type == "FLOAT64"} if table == spec.feature_table else set()
    params: dict[str, Any] = {f"{prefix}chk_as_of": as_of}
    selects = [f"COUNT(*) AS {prefix}chk_rows"]
    for i, c in enumerate(checks):
        selects.append(f"{_aggregate(c, f'{prefix}chk_{i}', params, c.column in floats)} AS {prefix}chk_{i}")
    events = _events_table(spec)
    if label is not None:
        selects.append(f"COUNTIF({spec.label.column} > 0) AS {prefix}chk_positives")
        if events:
            ts = spec.checks.events.timestamp_column if spec.checks.events else "event_ts"
            selects.append(
                f"(SELECT DATE_DIFF(MAX(DATE({ts})), @{prefix}chk_as_of, DAY) FROM {events} "
                f"WHERE DATE({ts}) > @{prefix}chk_as_of) AS {prefix}chk_horizon_days"
            )
    sql = f"SELECT\n  {_SEP.join(selects)}\nFROM {relation} AS chk_rows_relation"

    def judge(prefixed: Mapping[str, Any]) -> list[CheckResult]:
        row = {k[len(prefix) :]: v for k, v in prefixed.items() if k.startswith(prefix)}
        out = [_judge_table_check(c, table, as_of, row.get(f"chk_{i}")) for i, c in enumerate(checks)]
        if label is not None:
            out += _judge_labels(spec, table, as_of, row, label.min_positives, label.severity, bool(events))
        return out

    return CheckQuery(table, sql, params, judge)


def _aggregate(c: TableCheck, name: str, params: dict[str, Any], is_float: bool) -> str:
    """The GoogleSQL aggregate that counts the rows failing ``c`` (values travel as parameters)."""
    if c.check == "unique":
        key = ", ".join(c.columns)
        return f"COUNT(*) - COUNT(DISTINCT TO_JSON_STRING(STRUCT({key})))"
    col = c.column
    if c.check == "not_null":
        return f"COUNTIF({col} IS NULL{f' OR IS_NAN({col})' if is_float else ''})"
    if c.check == "accepted_values":
        names = []
        for j, value in enumerate(c.values):
            params[f"{name}_{j}"] = value
            names.append(f"@{name}_{j}")
        return f"COUNTIF({col} IS NOT NULL AND {col} NOT IN ({', '.join(names)}))"
    bounds = []
    if c.min is not None:
        params[f"{name}_min"] = float(c.min)
        bounds.append(f"{col} < @{name}_min")
    if c.max is not None:
        params[f"{name}_max"] = float(c.max)
        bounds.append(f"{col} > @{name}_max")
    return f"COUNTIF({' OR '.join(bounds)})"


def _judge_table_check(c: TableCheck, table: str, as_of: dt.date, value: Any) -> CheckResult:
    bad = int(value or 0)
    where = f"{table} partition {as_of}"
    if c.check == "not_null":
        message = (
            f"{table}.{c.column} has {bad} NULL value(s) in partition {as_of} but must have none. Fix the SQL "
            "(e.g. IFNULL, or a join that drops rows), or declare the column nullable in pipeline.yaml."
        )
    elif c.check == "unique":
        message = (
            f"{where}: {bad} row(s) repeat a ({', '.join(c.columns)}) key that must be unique. Fix the SQL: "
            "a join fanned out, or a source has duplicates (GROUP BY or QUALIFY ROW_NUMBER() = 1)."
        )
    elif c.check == "accepted_values":
        message = (
            f"{table}.{c.column} has {bad} value(s) in partition {as_of} outside the accepted values "
            f"{c.values}. Fix the SQL, or add the value to checks.tables.{table} in pipeline.yaml."
        )
    else:
        allowed = f"[{_fmt(c.min) if c.min is not None else '-inf'}, {_fmt(c.max) if c.max is not None else 'inf'}]"
        message = (
            f"{table}.{c.column} has {bad} value(s) in partition {as_of} outside the range {allowed}. "
            f"Fix the SQL, or widen the range in checks.tables.{table} of pipeline.yaml."
        )
    return _result(c.name, table, bad, 0, c.severity, bad == 0, message)


def _judge_labels(spec: PipelineSpec, table: str, as_of: dt.date, row: Mapping[str, Any], min_positives: int,
                  severity: str, has_events: bool) -> list[CheckResult]:  # fmt: skip
    horizon = spec.windows.label_horizon_days
    end = as_of + dt.timedelta(days=horizon)
    out = []
    if has_events:
        covered = row.get("chk_horizon_days")
        days = int(covered) if covered is not None else 0
        out.append(
            _result(
                "label_completeness(horizon_ended)",
                table,
                days,
                horizon,
                severity,
                days >= horizon,
                f"{table} partition {as_of}: events reach only {as_of + dt.timedelta(days=days)}, before the end "
                f"of the label horizon {end}, so the labels are incomplete. Build labels for {as_of} once events "
                f"through {end} are loaded.",
            )
        )
    positives, rows = int(row.get("chk_positives") or 0), int(row.get("chk_rows") or 0)
    out.append(
        _result(
            "label_completeness(positives)",
            table,
            positives,
            min_positives,
            severity,
            positives >= min_positives,
            f"{table} partition {as_of}: {positives} positive label(s) of {rows} row(s) (at least {min_positives} "
            f"expected): the label horizon ({as_of}, {end}] has no interactions with the candidates. Check that "
            "events cover the horizon and labels.sql.",
        )
    )
    return out


# --- the events source ------------------------------------------------------------------------


def _events_table(spec: PipelineSpec) -> str | None:
    ev = spec.checks.events
    return spec.sources.get(ev.source) if ev is not None else None


def event_check_query(spec: PipelineSpec, as_of: dt.date, checked_at: dt.datetime) -> CheckQuery | None:
    """One aggregation over the events source: freshness, future events, duplicates, the day's row count."""
    ev, table = spec.checks.events, _events_table(spec)
    if ev is None or table is None:
        return None
    ts = ev.timestamp_column
    key = list(ev.duplicate_events.key) if ev.duplicate_events and ev.duplicate_events.key else []
    # The check reads your table as it is: the default key is the entities under your column names.
    yours = spec.source_columns.get(ev.source, {})
    key = key or [yours.get(c) or c for c in (spec.entities.user, spec.entities.item)]
    group = [*dict.fromkeys([*key, ts])]
    trailing = ev.row_count.trailing_days if ev.row_count else 0
    lookback = spec.windows.feature_lookback_days
    params: dict[str, Any] = {
        "chk_as_of": as_of,
        "chk_lookback": lookback,
        "chk_scan_days": max(lookback, trailing + 1),
        "chk_now": checked_at,
        "chk_tolerance": ev.future_events.tolerance_hours if ev.future_events else 0,
    }
    in_window = f"DATE({ts}) > DATE_SUB(@chk_as_of, INTERVAL @chk_lookback DAY) AND DATE({ts}) <= @chk_as_of"
    selects = [
        f"DATE_DIFF(@chk_as_of, MAX(IF(DATE({ts}) <= @chk_as_of, DATE({ts}), NULL)), DAY) AS chk_lag",
        f"SUM(IF({ts} > TIMESTAMP_ADD(@chk_now, INTERVAL @chk_tolerance HOUR), n, 0)) AS chk_future",
        f"SUM(IF({in_window}, n - 1, 0)) AS chk_duplicates",
        f"SUM(IF({in_window}, n, 0)) AS chk_window",
    ]
    selects += [
        f"SUM(IF(DATE({ts}) = DATE_SUB(@chk_as_of, INTERVAL {d} DAY), n, 0)) AS chk_day_{d}"
        for d in range(trailing + 1)
    ]
    cols = ", ".join(group)
    sql = (
        f"SELECT\n  {_SEP.join(selects)}\nFROM (\n  SELECT {cols}, COUNT(*) AS n\n  FROM {table}\n"
        f"  WHERE DATE({ts}) > DATE_SUB(@chk_as_of, INTERVAL @chk_scan_days DAY)\n  GROUP BY {cols}\n) AS chk_events"
    )

    def judge(row: Mapping[str, Any]) -> list[CheckResult]:
        out = []
        if ev.freshness:
            f, lag = ev.freshness, row.get("chk_lag")
            newest = (
                "no event in the scanned window"
                if lag is None
                else f"the newest is on {as_of - dt.timedelta(days=int(lag))}"
            )
            out.append(
                _result(
                    "freshness",
                    table,
                    None if lag is None else float(lag),
                    f.max_lag_days,
                    f.severity,
                    lag is not None and lag <= f.max_lag_days,
                    f"{table}: events must reach {as_of - dt.timedelta(days=f.max_lag_days)} for as-of date {as_of}, "
                    f"but {newest}. Load the missing events, or run this date once they have arrived.",
                )
            )
        if ev.future_events:
            fe, future = ev.future_events, int(row.get("chk_future") or 0)
            limit = checked_at + dt.timedelta(hours=fe.tolerance_hours)
            out.append(
                _result(
                    "future_events",
                    table,
                    future,
                    0,
                    fe.severity,
                    future == 0,
                    f"{table}: {future} event(s) have {ts} after {limit:%Y-%m-%d %H:%M} UTC (now plus "
                    f"{fe.tolerance_hours}h). Fix the loader's clock or time zone, or raise "
                    "checks.events.future_events.tolerance_hours in pipeline.yaml.",
                )
            )
        if ev.duplicate_events:
            de = ev.duplicate_events
            dupes, total = int(row.get("chk_duplicates") or 0), int(row.get("chk_window") or 0)
            share = dupes / total if total else 0.0
            out.append(
                _result(
                    "duplicate_events",
                    table,
                    round(share, 6),
                    de.max_share,
                    de.severity,
                    share <= de.max_share,
                    f"{table}: {dupes} of {total} events in ({as_of - dt.timedelta(days=lookback)}, {as_of}] "
                    f"({share:.1%}) repeat another on ({', '.join(group)}); at most {de.max_share:.1%} allowed. "
                    "Deduplicate the source (QUALIFY ROW_NUMBER() OVER (PARTITION BY ...) = 1), or raise "
                    "checks.events.duplicate_events.max_share.",
                )
            )
        if ev.row_count:
            out.append(_judge_row_count(ev.row_count.max_change, ev.row_count.severity, table, as_of, row, trailing))
        return out

    return CheckQuery(table, sql, params, judge)


def _judge_row_count(max_change: float, severity: str, table: str, as_of: dt.date, row: Mapping[str, Any],
                     trailing: int) -> CheckResult:  # fmt: skip
    day = int(row.get("chk_day_0") or 0)
    median = statistics.median(int(row.get(f"chk_day_{d}") or 0) for d in range(1, trailing + 1))
    if median == 0:
        return CheckResult(
            "row_count", table, day, max_change, severity, "skipped", f"no events in the {trailing} days before {as_of}"
        )
    change = abs(day - median) / median
    return _result(
        "row_count",
        table,
        round(change, 6),
        max_change,
        severity,
        change <= max_change,
        f"{table}: {day} events on {as_of} against a median of {median:g} a day over the {trailing} days before "
        f"(change {change:.0%}, at most {max_change:.0%} allowed). Check the loader for a missing, partial or "
        "doubled day; raise checks.events.row_count.max_change if the change is real.",
    )


# --- verdicts ---------------------------------------------------------------------------------


def log_results(results: Sequence[CheckResult], logger: Any = None) -> None:
    """One log line per check on ``logger`` (stdlib or Airflow's): failures as errors, warnings as warnings."""
    out = logger or log
    for r in results:
        getattr(out, {"fail": "error", "warn": "warning"}.get(r.status, "info"))("%s", r.log_line())


def raise_on_errors(results: Sequence[CheckResult], where: str) -> None:
    """Raise one ``DataCheckError`` naming every failed ``error`` check; warnings pass."""
    failed = [r for r in results if r.failed]
    if failed:
        details = " ".join(f"[{r.name}] {r.message}" for r in failed)
        raise DataCheckError(f"{where}: {len(failed)} data check(s) failed, nothing was written. {details}")


def check_rows(results: Sequence[CheckResult], run_id: str, checked_at: dt.datetime) -> dict[str, list[Any]]:
    """The results as ``data_checks`` columns (without ``check_date``), ready for an Arrow table."""
    cols: dict[str, list[Any]] = {c: [] for c in CHECK_COLUMNS}
    for r in results:
        cols["table_name"].append(r.table)
        cols["check_name"].append(r.name)
        cols["observed"].append(None if r.observed is None else float(r.observed))
        cols["threshold"].append(None if r.threshold is None else float(r.threshold))
        cols["severity"].append(r.severity)
        cols["status"].append(r.status)
        cols["message"].append(r.message)
        cols["run_id"].append(run_id)
        cols["checked_at"].append(checked_at)
    return cols
