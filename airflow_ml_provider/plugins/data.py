"""What the ML pages show, read through the Warehouse interface (no Airflow imports).

Each function returns plain JSON-able dicts: the HTML pages and the ``/ml/api/*`` endpoints
serve the same data. A table that does not exist yet (a fresh install) reads as no rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_ml_provider.core.inference.runs import DISPLAYED_STATUS, LOST_AFTER, utcnow
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.exceptions import TableNotFoundError

#: The ranking metric the pages chart against the popularity baseline.
METRIC = "ndcg"
#: How many drift dates the heatmap shows (the newest ones).
DRIFT_DAYS = 30

_DRIFT_PSI = """
SELECT logical_date, table_name, feature, value, warn_threshold, threshold, severity, status, skip_reason
FROM drift_results
WHERE metric = 'psi' AND segment = '__all__' {model}
  AND logical_date <= @day AND logical_date > DATE_SUB(@day, INTERVAL @days DAY)
ORDER BY table_name, feature, logical_date
"""

_DRIFT_VERDICTS = """
SELECT logical_date, segment, model_name, model_version, value AS drifted_share, severity, status, run_id, checked_at
FROM drift_results
WHERE feature = '__dataset__' AND logical_date <= @day {model}
ORDER BY logical_date DESC, segment
LIMIT @limit
"""

# All-rows columns first: they are what the verdict and the heatmap judge; segments follow.
_DRIFT_FLAGGED = """
SELECT table_name, segment, feature, kind, value, warn_threshold, threshold, severity, n_cur
FROM drift_results
WHERE metric = 'psi' AND severity IN ('warn', 'drift') AND logical_date = @day {model}
ORDER BY CASE segment WHEN '__all__' THEN 0 ELSE 1 END, CASE severity WHEN 'drift' THEN 0 ELSE 1 END,
  value DESC, table_name, segment, feature
LIMIT @limit
"""

_DRIFT_NEWEST = "SELECT MAX(logical_date) AS d FROM drift_results WHERE feature = '__dataset__' {model}"

# The status is the one the CLI shows (core.inference.runs.DISPLAYED_STATUS: a killed ``running`` try reads
# ``lost``), judged over every attempt of the date before the model filters narrow the rows.
_RUNS = f"""
SELECT * FROM (
  SELECT run_id, try_number, prediction_date, model_name, model_version, {DISPLAYED_STATUS} AS status, users,
    rows_written, candidates, catalog_items, coverage, seconds_total, rows_per_second, error, started_at, finished_at
  FROM recommendation_runs
) AS runs
WHERE TRUE {{where}}
ORDER BY prediction_date DESC, started_at DESC, run_id, try_number DESC
LIMIT @limit
"""

_LATEST_DATE = "SELECT MAX(prediction_date) AS d FROM recommendations WHERE TRUE {where}"

_DAY_TOTALS = """
SELECT COUNT(DISTINCT user_id) AS users, COUNT(*) AS rows_written, COUNT(DISTINCT item_id) AS items,
  MIN(model_version) AS model_version, MAX(model_version) AS last_model_version
FROM recommendations
WHERE prediction_date = @d {where}
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


def equal_filter(params: dict[str, Any], prefix: str = "", **columns: Any) -> str:
    """``AND column = @column ...`` for the columns whose value is set (query parameters cannot be NULL)."""
    sql = ""
    for column, value in columns.items():
        if value:
            params[column] = value
            sql += f" AND {prefix}{column} = @{column}"
    return sql


def model_filter(params: dict[str, Any], model: str | None = None, version: str | None = None, prefix: str = "") -> str:
    """``AND model_name = @model_name ...`` for the model filters that are set."""
    return equal_filter(params, prefix, model_name=model, model_version=version)


def calendar_days(days: Iterable[str]) -> list[str]:
    """Every date from the first to the last of ``days`` (ISO strings): a chart leaves a gap for a date with no row."""
    shown = sorted(d[:10] for d in days)
    if not shown:
        return []
    first, last = dt.date.fromisoformat(shown[0]), dt.date.fromisoformat(shown[-1])
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _newest(warehouse: Warehouse, sql: str, params: Mapping[str, Any], source: str) -> dt.date | None:
    found = _rows(warehouse, sql, params, source)
    return found[0]["d"] if found else None


def data_date(version: str, metrics: Mapping[str, Any] | None) -> dt.date | None:
    """The as-of date of the data a version was trained for, or None when nothing records it.

    The DAG (and the CLI) name a version after its run date (``20260331-1a2b3c4d``): the as-of
    date its training windows end on. A version named otherwise falls back to the last date
    of its held-out test window (``metrics.test_dates``). The wall-clock creation time is not
    a data date: a model retrained today for March 31 is still a March 31 model.
    """
    head = version[:8]
    if len(head) == 8 and head.isdigit():
        try:
            return dt.date(int(head[:4]), int(head[4:6]), int(head[6:]))
        except ValueError:
            pass
    test = (metrics or {}).get("test_dates")
    if isinstance(test, list | tuple) and test:
        try:
            return dt.date.fromisoformat(str(test[-1])[:10])
        except ValueError:
            return None
    return None


def models(
    warehouse: Warehouse,
    model: str | None = None,
    version: str | None = None,
    day: dt.date | None = None,
    *,
    artifact_root: str | None = None,
) -> dict[str, Any]:
    """Every registered version (of ``model``; ``version``; data as of ``day`` or before), newest first.

    Under a date filter a version with no recorded data date (see ``data_date``) is left out.
    ``artifact_root`` is the connection's, which relative ``uri`` values are under (ADR 10).
    """
    out = []
    for record in ModelRegistry(warehouse, artifact_root=artifact_root).list(model or None):
        if version and record.version != version:
            continue
        m = record.metrics or {}
        as_of = data_date(record.version, m)
        if day and (as_of is None or as_of > day):
            continue
        row = record.as_dict()
        row["data_date"] = _jsonable(as_of)
        row["test_dates"] = m.get("test_dates")
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
    return {"metric": METRIC, "models": out, "filters": _filters(model=model, version=version, date=day)}


def _filters(**given: Any) -> dict[str, Any]:
    """The filters a page applied, JSON-able (None when not set)."""
    return {k: _jsonable(v) or None for k, v in given.items()}


def drift(
    warehouse: Warehouse,
    day: dt.date | None = None,
    model: str | None = None,
    days: int = DRIFT_DAYS,
    limit: int = 50,
) -> dict[str, Any]:
    """PSI per feature for the ``days`` dates up to ``day`` (default: the newest), the verdicts and that day's flags."""
    params: dict[str, Any] = {}
    where = model_filter(params, model)
    filters = _filters(date=day, model=model)  # what was asked; "day" is what is shown
    if day is None:
        day = _newest(warehouse, _DRIFT_NEWEST.format(model=where), params, "ml pages: newest drift date")
    if day is None:
        return {"psi": [], "verdicts": [], "flagged": [], "day": None, "filters": filters}
    psi = _rows(warehouse, _DRIFT_PSI.format(model=where), {**params, "day": day, "days": days}, "ml pages: drift psi")
    verdicts = _rows(
        warehouse, _DRIFT_VERDICTS.format(model=where), {**params, "day": day, "limit": limit}, "ml pages: verdicts"
    )
    flagged = _rows(
        warehouse, _DRIFT_FLAGGED.format(model=where), {**params, "day": day, "limit": limit}, "ml pages: flagged"
    )
    for row in flagged:
        row["scope"] = "all rows" if row["segment"] == "__all__" else f"segment {row['segment']}"
    return {
        "psi": _clean(psi),
        "verdicts": _clean(verdicts),
        "flagged": _clean(flagged),
        "day": _jsonable(day),
        "filters": filters,
    }


def recommendations(
    warehouse: Warehouse,
    day: dt.date | None = None,
    model: str | None = None,
    version: str | None = None,
    limit_runs: int = 100,
) -> dict[str, Any]:
    """The batch-inference runs and coverage per date (served on or before ``day``) and the totals of ``day``.

    ``day`` defaults to the newest served date; runs are newest prediction date first.
    """
    params: dict[str, Any] = {}
    where = model_filter(params, model, version)
    runs_params = {**params, "limit": limit_runs, "stale_before": utcnow() - LOST_AFTER}
    runs_where = where
    if day is not None:
        runs_where += " AND prediction_date <= @day"
        runs_params["day"] = day
    runs = _clean(_rows(warehouse, _RUNS.format(where=runs_where), runs_params, "ml pages: recommendation runs"))
    filters = _filters(date=day, model=model, version=version)  # what was asked; latest_date is what is shown
    if day is None:
        day = _newest(warehouse, _LATEST_DATE.format(where=where), params, "ml pages: newest recommendations date")
    totals: dict[str, Any] = {}
    if day is not None:
        found = _clean(_rows(warehouse, _DAY_TOTALS.format(where=where), {**params, "d": day}, "ml pages: totals"))
        totals = found[0] if found and found[0]["users"] else {}
    return {
        "runs": runs,
        "coverage": coverage_by_date(runs),
        "latest_date": _jsonable(day) if totals else None,
        "latest_totals": totals,
        "filters": filters,
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
