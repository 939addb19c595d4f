"""What the Drift page shows about one column: its PSI over dates and its reference-vs-current bins.

The trend reads ``drift_results`` (all rows, the segment the verdict judges). The bins are
the stored reference of the checked model version (``drift_profiles``) next to the same bins
counted on the chosen date: one aggregation over one column of one partition, the same scan
the drift check runs (``core.drift.scan.run_scan``), so Python sees bins, never rows.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from airflow_ml_provider.core.drift.bins import ColumnBins
from airflow_ml_provider.core.drift.check import FEATURES_PARTITION, PREDICTIONS_PARTITION
from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS, Scan, run_scan
from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.exceptions import MLProviderError, TableNotFoundError
from airflow_ml_provider.plugins.data import _clean, _jsonable, _rows, model_filter

_TREND = """
SELECT logical_date, table_name, model_name, model_version, value, warn_threshold, threshold, severity, status,
  skip_reason, n_ref, n_cur
FROM drift_results
WHERE metric = 'psi' AND segment = '__all__' AND feature = @feature AND logical_date <= @day {model}
ORDER BY logical_date
"""

_CHECKED = """
SELECT table_name, model_name, model_version, value, severity, status
FROM drift_results
WHERE metric = 'psi' AND segment = '__all__' AND feature = @feature AND logical_date = @day {model}
ORDER BY table_name
LIMIT 1
"""

_PROFILE = """
SELECT TO_JSON_STRING(profile) AS profile
FROM drift_profiles
WHERE model_name = @model AND model_version = @version AND column_name = @feature AND segment = '__all__'
LIMIT 1
"""


def psi_trend(
    warehouse: Warehouse, feature: str, day: dt.date, *, model: str | None = None, days: int = 90
) -> list[dict[str, Any]]:
    """PSI of ``feature`` (all rows) per checked date, the ``days`` dates up to ``day``, oldest first."""
    params: dict[str, Any] = {"feature": feature, "day": day}
    rows = _clean(_rows(warehouse, _TREND.format(model=model_filter(params, model)), params, "ml pages: psi trend"))
    return rows[-days:]


def bins(warehouse: Warehouse, feature: str, day: dt.date, *, model: str | None = None) -> dict[str, Any]:
    """Reference vs current bin shares of ``feature`` on ``day``, or ``{"reason": ...}`` when they cannot be shown."""
    params: dict[str, Any] = {"feature": feature, "day": day}
    checked = _rows(warehouse, _CHECKED.format(model=model_filter(params, model)), params, "ml pages: checked column")
    if not checked:
        return {"reason": f"column {feature} was not checked on {day}."}
    row = checked[0]
    stored = _rows(
        warehouse,
        _PROFILE,
        {"model": row["model_name"], "version": row["model_version"], "feature": feature},
        "ml pages: reference bins",
    )
    if not stored:
        return {"reason": f"model {row['model_name']} {row['model_version']} has no stored reference for {feature}."}
    try:
        ref = ColumnBins.from_profile(feature, json.loads(stored[0]["profile"]))
        table = row["table_name"]
        if table == "recommendations":
            filters = {"model_name": row["model_name"], "model_version": row["model_version"]}
            scan = Scan(table, PREDICTIONS_PARTITION, (ref,), filters=filters)
        else:
            scan = Scan(table, FEATURES_PARTITION, (ref,))
        current = run_scan(warehouse, scan, day)[ALL_SEGMENTS][feature].tolist()
    except (MLProviderError, TableNotFoundError) as err:
        return {"reason": f"the bins of {feature} on {day} could not be counted: {err}"}
    n_ref, n_cur = sum(ref.reference), sum(current)
    return {
        "feature": feature,
        "table_name": table,
        "logical_date": _jsonable(day),
        "model_name": row["model_name"],
        "model_version": row["model_version"],
        "psi": row["value"],
        "severity": row["severity"] if row["status"] == "evaluated" else "skipped",
        "labels": ref.labels,
        "reference": [c / n_ref if n_ref else 0.0 for c in ref.reference],
        "current": [c / n_cur if n_cur else 0.0 for c in current],
        "n_ref": n_ref,
        "n_cur": n_cur,
    }
