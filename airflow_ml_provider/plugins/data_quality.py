"""What the Data page shows: the verdicts of the contract's data checks (``data_checks``), per checked date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.plugins.data import _clean, _filters, _jsonable, _newest, _rows, equal_filter

_NEWEST = "SELECT MAX(check_date) AS d FROM data_checks WHERE check_date <= @d"

_DATES = """
SELECT check_date, COUNT(*) AS checks, COUNTIF(status = 'fail') AS failed, COUNTIF(status = 'warn') AS warned,
  COUNTIF(status = 'skipped') AS skipped
FROM data_checks
GROUP BY check_date
ORDER BY check_date DESC
LIMIT @limit
"""

# Failures first, then warnings, skips and passes; within each, by table and check.
_CHECKS = """
SELECT check_date, table_name, check_name, observed, threshold, severity, status, message, run_id, checked_at
FROM data_checks
WHERE check_date = @d {where}
ORDER BY CASE status WHEN 'fail' THEN 0 WHEN 'warn' THEN 1 WHEN 'skipped' THEN 2 ELSE 3 END, table_name, check_name
"""


def data_checks(
    warehouse: Warehouse, day: dt.date | None = None, *, table: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """The check results of ``day`` (default: the newest checked date), and a per-date summary of recent dates."""
    checked = _newest(warehouse, _NEWEST, {"d": day or dt.date.max}, "ml pages: newest data checks")
    dates = _clean(_rows(warehouse, _DATES, {"limit": 30}, "ml pages: data check dates"))
    params: dict[str, Any] = {"d": checked}
    where = equal_filter(params, table_name=table, status=status)
    rows = [] if checked is None else _clean(_rows(warehouse, _CHECKS.format(where=where), params, "ml pages: checks"))
    return {
        "check_date": _jsonable(checked),
        # A date asked for that has no checks shows the newest checked date before it, and says so.
        "requested_date": _jsonable(day),
        "checks": rows,
        "dates": dates,
        "filters": _filters(date=day, table=table, status=status),
    }
