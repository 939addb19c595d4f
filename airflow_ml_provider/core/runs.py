"""The ``recommendation_runs`` table: one row per batch inference attempt, failures included."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow_ml_provider.core.warehouse import Warehouse

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


def record_run(warehouse: Warehouse, row: Mapping[str, Any]) -> None:
    """Insert one run row unless (run_id, try_number) is already recorded: a retried write never duplicates.

    Values travel as parameters; a missing value is a typed NULL written by the SQL itself.
    """
    unknown = set(row) - set(RUN_COLUMNS)
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
    sql = (
        f"INSERT INTO recommendation_runs ({', '.join(RUN_COLUMNS)})\n"
        f"SELECT {', '.join(values)}\nFROM (SELECT 1) AS one\n"
        "WHERE NOT EXISTS (SELECT 1 FROM recommendation_runs WHERE run_id = @run_id AND try_number = @try_number)"
    )
    warehouse.execute(sql, params, source="recommendation_runs insert")


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC (TIMESTAMP parameters must not be naive)."""
    return dt.datetime.now(dt.UTC)
