"""What the ML pages show, read through the Warehouse interface (no Airflow imports).

Each function returns plain JSON-able dicts: the HTML pages and the ``/ml/api/*`` endpoints
serve the same data. A table that does not exist yet (a fresh install) reads as no rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow_ml_provider.core.registry import ModelRegistry
from airflow_ml_provider.core.warehouse import Warehouse
from airflow_ml_provider.exceptions import TableNotFoundError

#: The ranking metric the pages chart against the popularity baseline.
METRIC = "ndcg"
#: How many drift dates the heatmap shows (the newest ones).
DRIFT_DAYS = 30

_DRIFT_PSI = """
SELECT logical_date, table_name, feature, value, warn_threshold, threshold, severity, status, skip_reason
FROM drift_results
WHERE metric = 'psi' AND segment = '__all__'
  AND logical_date > DATE_SUB((SELECT MAX(logical_date) FROM drift_results), INTERVAL @days DAY)
ORDER BY table_name, feature, logical_date
"""

_DRIFT_VERDICTS = """
SELECT logical_date, segment, model_name, model_version, value AS drifted_share, severity, status, run_id, checked_at
FROM drift_results
WHERE feature = '__dataset__'
ORDER BY logical_date DESC, segment
LIMIT @limit
"""

_DRIFT_FLAGGED = """
SELECT table_name, segment, feature, kind, value, warn_threshold, threshold, severity, n_cur
FROM drift_results
WHERE metric = 'psi' AND severity IN ('warn', 'drift')
  AND logical_date = (SELECT MAX(logical_date) FROM drift_results)
ORDER BY CASE severity WHEN 'drift' THEN 0 ELSE 1 END, value DESC, table_name, segment, feature
LIMIT @limit
"""

_RUNS = """
SELECT run_id, try_number, prediction_date, model_name, model_version, status, users, rows_written,
  candidates, catalog_items, coverage, seconds_total, rows_per_second, error, started_at, finished_at
FROM recommendation_runs
ORDER BY started_at DESC, run_id, try_number DESC
LIMIT @limit
"""

_LATEST_DATE = "SELECT MAX(prediction_date) AS d FROM recommendations"

_TOP_ITEMS = """
SELECT item_id, COUNT(*) AS users, SUM(CASE WHEN rank = 1 THEN 1 ELSE 0 END) AS first_place,
  AVG(rank) AS mean_rank, AVG(score) AS mean_score
FROM recommendations
WHERE prediction_date = @d
GROUP BY item_id
ORDER BY users DESC, first_place DESC, item_id
LIMIT @limit
"""

_DAY_TOTALS = """
SELECT COUNT(DISTINCT user_id) AS users, COUNT(*) AS rows_written, COUNT(DISTINCT item_id) AS items,
  MIN(model_version) AS model_version, MAX(model_version) AS last_model_version
FROM recommendations
WHERE prediction_date = @d
"""


def _rows(warehouse: Warehouse, sql: str, params: Mapping[str, Any] | None, source: str) -> list[dict[str, Any]]:
    """The query's rows as dicts; a missing table is no rows (nothing was written yet)."""
    try:
        return warehouse.query(sql, params, source=source).to_pylist()
    except TableNotFoundError:
        return []


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    return value


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in row.items()} for row in rows]


def models(warehouse: Warehouse) -> dict[str, Any]:
    """Every registered version, newest first, with the model's and the baseline's metric at k."""
    out = []
    for record in ModelRegistry(warehouse).list():
        m = record.metrics or {}
        row = record.as_dict()
        row["k"] = m.get("k")
        row["metric"] = METRIC
        row["model_score"] = (m.get("model") or {}).get(METRIC)
        row["baseline_score"] = (m.get("baseline") or {}).get(METRIC)
        row["lift"] = (m.get("lift") or {}).get(METRIC)
        row["champion_score"] = (m.get("champion") or {}).get(METRIC)
        # Older envelopes scored candidates only, against the candidate-popularity baseline.
        row["scope"] = m.get("scope", "candidates")
        row["baseline_name"] = (m.get("baseline_name") or "candidate_popularity").replace("_", " ")
        row["candidate_recall"] = m.get("candidate_recall")
        row["lists"] = (m.get("model") or {}).get("lists")
        out.append(row)
    return {"metric": METRIC, "models": out}


def drift(warehouse: Warehouse, days: int = DRIFT_DAYS, limit: int = 50) -> dict[str, Any]:
    """PSI per feature and date (the newest ``days`` dates), the verdicts and the latest flagged features."""
    psi = _clean(_rows(warehouse, _DRIFT_PSI, {"days": days}, "ml pages: drift psi"))
    verdicts = _clean(_rows(warehouse, _DRIFT_VERDICTS, {"limit": limit}, "ml pages: drift verdicts"))
    flagged = _clean(_rows(warehouse, _DRIFT_FLAGGED, {"limit": limit}, "ml pages: drifted features"))
    return {"psi": psi, "verdicts": verdicts, "flagged": flagged}


def recommendations(warehouse: Warehouse, limit_runs: int = 100, top_n: int = 10) -> dict[str, Any]:
    """The batch-inference runs, coverage per date and the most recommended items of the newest date."""
    runs = _clean(_rows(warehouse, _RUNS, {"limit": limit_runs}, "ml pages: recommendation runs"))
    latest = _rows(warehouse, _LATEST_DATE, None, "ml pages: newest recommendations date")
    day = latest[0]["d"] if latest else None
    top: list[dict[str, Any]] = []
    totals: dict[str, Any] = {}
    if day is not None:
        params = {"d": day, "limit": top_n}
        top = _clean(_rows(warehouse, _TOP_ITEMS, params, "ml pages: top items"))
        totals = _clean(_rows(warehouse, _DAY_TOTALS, {"d": day}, "ml pages: day totals"))[0]
    return {
        "runs": runs,
        "coverage": coverage_by_date(runs),
        "latest_date": _jsonable(day),
        "latest_totals": totals,
        "top_items": top,
    }


def coverage_by_date(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per prediction date, the newest successful run's coverage and users (what the partition holds), oldest first."""
    best: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.get("status") != "success":
            continue
        day = str(run["prediction_date"])
        if day not in best or str(run.get("finished_at")) > str(best[day].get("finished_at")):
            best[day] = run
    return [
        {
            "prediction_date": day,
            "coverage": best[day].get("coverage"),
            "users": best[day].get("users"),
            "model_version": best[day].get("model_version"),
        }
        for day in sorted(best)
    ]
