"""The ``recommendation_runs`` table: one row per batch inference attempt, failures included.

An attempt writes a ``running`` row before scoring (``start_run``) and updates it at the end
(``finish_run``); a rerun of the same (run_id, try_number) updates the same row. An attempt
killed outright (SIGKILL, a lost worker) leaves its row ``running``; the next attempt of the
run marks it ``lost``, since Airflow runs one try of a task at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.core.warehouse.rows import to_rows

#: Column -> GoogleSQL type, as in sql/ddl/recommendation_runs.sql.
RUN_COLUMNS: dict[str, str] = {
    "run_id": "STRING",
    "try_number": "INT64",
    "prediction_date": "DATE",
    "model_name": "STRING",
    "model_version": "STRING",
    "status": "STRING",
    "users": "INT64",
    "rows_written": "INT64",
    "candidates": "INT64",
    "catalog_items": "INT64",
    "coverage": "FLOAT64",
    "seconds_total": "FLOAT64",
    "seconds_read": "FLOAT64",
    "seconds_score": "FLOAT64",
    "seconds_write": "FLOAT64",
    "rows_per_second": "FLOAT64",
    "error": "STRING",
    "started_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
}


#: A run's numbers that the command line and the task log report but the table does not keep.
REPORTED_ONLY = frozenset({"candidate_items", "candidate_item_share", "filled_users", "filled_rows"})


def _values(row: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """SQL value expressions per column (a typed NULL for a missing value) and their parameters."""
    unknown = set(row) - set(RUN_COLUMNS) - REPORTED_ONLY
    if unknown:
        raise ValueError(f"recommendation_runs has no column(s) {sorted(unknown)}")
    params: dict[str, Any] = {}
    values = []
    for col, typ in RUN_COLUMNS.items():
        value = row.get(col)
        if value is None:
            values.append(f"CAST(NULL AS {typ})")
            continue
        if typ == "FLOAT64":
            value = float(value)
        elif typ == "INT64":
            value = int(value)
        params[col] = value
        values.append(f"@{col}")
    return values, params


def record_run(warehouse: Warehouse, row: Mapping[str, Any]) -> None:
    """Insert one run row unless (run_id, try_number) is already recorded: a retried write never duplicates.

    Values travel as parameters; a missing value is a typed NULL written by the SQL itself.
    """
    values, params = _values(row)
    sql = (
        f"INSERT INTO recommendation_runs ({', '.join(RUN_COLUMNS)})\n"
        f"SELECT {', '.join(values)}\nFROM (SELECT 1) AS one\n"
        "WHERE NOT EXISTS (SELECT 1 FROM recommendation_runs WHERE run_id = @run_id AND try_number = @try_number)"
    )
    warehouse.execute(sql, params, source="recommendation_runs insert")


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC (TIMESTAMP parameters must not be naive)."""
    return dt.datetime.now(dt.UTC)


def start_run(warehouse: Warehouse, row: Mapping[str, Any]) -> None:
    """Record an attempt as ``running`` before it scores; earlier tries of the run still ``running`` become ``lost``.

    ``row`` needs run_id, try_number, prediction_date and started_at. A rerun of the same
    (run_id, try_number) resets its row to ``running``.
    """
    running = {**row, "status": "running", "finished_at": row["started_at"]}
    params = {"run_id": row["run_id"], "try_number": int(row["try_number"])}
    warehouse.execute(
        "UPDATE recommendation_runs SET status = 'lost', error = CONCAT('try ', CAST(try_number AS STRING), "
        "' stopped without finishing (killed, or its worker was lost); try ', CAST(@try_number AS STRING), "
        "' took over') WHERE run_id = @run_id AND try_number < @try_number AND status = 'running'",
        params,
        source="recommendation_runs lost",
    )
    finish_run(warehouse, running)


def finish_run(warehouse: Warehouse, row: Mapping[str, Any]) -> None:
    """Write the attempt's row as it is now: insert it if missing, else update every column in place."""
    record_run(warehouse, row)
    values, params = _values(row)
    assignments = ", ".join(f"{c} = {v}" for c, v in zip(RUN_COLUMNS, values, strict=True) if c not in _KEY)
    warehouse.execute(
        f"UPDATE recommendation_runs SET {assignments} WHERE run_id = @run_id AND try_number = @try_number",
        params,
        source="recommendation_runs update",
    )


_KEY = ("run_id", "try_number")


#: A ``running`` attempt older than this is shown as ``lost`` even with no newer attempt:
#: no batch inference of this provider runs that long, and a killed one never updates its row.
LOST_AFTER = dt.timedelta(hours=12)

#: The status to show for a recommendation_runs row (needs ``@stale_before`` = now - LOST_AFTER):
#: ``running`` becomes ``lost`` when a newer attempt of the date started or it is that old.
DISPLAYED_STATUS = (
    "CASE WHEN status = 'running' AND (started_at < MAX(started_at) OVER (PARTITION BY prediction_date) "
    "OR started_at < @stale_before) THEN 'lost' ELSE status END"
)


def runs_of_date(warehouse: Warehouse, day: dt.date, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The attempts of ``day``, newest first, with ``running`` shown as ``lost`` where its task cannot still run.

    A ``running`` row is lost when a newer attempt of the date started after it (Airflow runs one
    try of a task at a time; a later run replaced the partition) or it started over
    ``LOST_AFTER`` ago. The CLI and the UI show this status; the table keeps what was written.
    """
    stale_before = (now or utcnow()) - LOST_AFTER
    sql = (
        f"SELECT {', '.join(c for c in RUN_COLUMNS if c != 'status')},\n  {DISPLAYED_STATUS} AS status\n"
        "FROM recommendation_runs WHERE prediction_date = @d\nORDER BY started_at DESC, try_number DESC"
    )
    if not warehouse.table_exists("recommendation_runs"):
        return []
    params = {"d": day, "stale_before": stale_before}
    return to_rows(warehouse.query(sql, params, source="recommendation_runs of a date"))
