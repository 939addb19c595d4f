"""What the Recommendations page shows about the lists themselves and what users did with them.

Realized outcomes come from ``recommendation_outcomes`` (one row per served date, list source,
model version and segment; written by ``recsys_outcomes`` once a date's horizon has passed).
The top items and the user lookup read ``recommendations`` and the contract's ``items`` and
``events`` sources (``sources:`` and ``source_columns:`` of the pipeline.yaml in the DAGs folder
whose name is the model's; the tables ``items`` and ``events`` when there is none). A table or
column that does not exist reads as absent, never as an error.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.exceptions import TableNotFoundError
from airflow_ml_provider.plugins.data import _clean, _jsonable, _rows, calendar_days, model_filter

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec

log = logging.getLogger(__name__)

OUTCOMES_TABLE = "recommendation_outcomes"
#: Shown when no served date has been evaluated yet.
NO_OUTCOMES = (
    "No outcomes yet: dates are evaluated once their horizon has passed; DAG recsys_outcomes "
    f"writes them to {OUTCOMES_TABLE}."
)


def no_outcomes_message(day: dt.date | None = None, model: str | None = None, version: str | None = None) -> str:
    """What an empty outcomes panel says: the filters that emptied it, else why nothing is evaluated yet."""
    asked = [f"served on or before {day}"] if day else []
    asked += [f"{name}={value}" for name, value in (("model", model), ("version", version)) if value]
    if not asked:
        return NO_OUTCOMES
    return f"No outcomes match {', '.join(asked)}: change or clear the filters above to see every evaluated date."


#: What revenue is labelled in when the contract names no currency (``evaluation.currency``).
PRICE_UNITS = "item price units"


def revenue_unit(spec: PipelineSpec | None) -> str:
    """What the outcomes' revenue is counted in: the contract's ``evaluation.currency``, else the items' price unit."""
    return (spec.evaluation.currency if spec is not None else None) or PRICE_UNITS


#: Days of events shown after a served date whose horizon no outcome row names yet.
DEFAULT_HORIZON_DAYS = 7
#: Item attributes the top-items table shows when the items table has them.
ITEM_COLUMNS = ("category", "price")

_OUTCOMES = """
SELECT prediction_date, horizon_start, horizon_end, list_source, model_name, model_version, segment, k, lists,
  active_users, hits, hit_rate, precision_at_k, recall_at_k, ndcg_at_k, purchases, revenue, coverage, evaluated_at
FROM recommendation_outcomes
WHERE segment = @segment {where}
ORDER BY prediction_date, list_source, model_version
"""

_TOP_ITEMS = """
SELECT r.item_id, COUNT(*) AS users, SUM(CASE WHEN r.rank = 1 THEN 1 ELSE 0 END) AS first_place,
  AVG(r.rank) AS mean_rank, AVG(r.score) AS mean_score{item_cols}
FROM recommendations AS r{join}
WHERE r.prediction_date = @d {where}
GROUP BY r.item_id
ORDER BY users DESC, first_place DESC, r.item_id
LIMIT @limit
"""

_SERVED = """
SELECT r.prediction_date, r.user_id, r.item_id, r.rank, r.score, r.model_name, r.model_version, r.run_id{item_cols}
FROM recommendations AS r{join}
WHERE r.user_id = @user AND r.prediction_date = @d
ORDER BY r.rank
"""

_USER_DATES = "SELECT MAX(prediction_date) AS d FROM recommendations WHERE user_id = @user AND prediction_date <= @d"

_HORIZON = """
SELECT MIN(horizon_start) AS horizon_start, MAX(horizon_end) AS horizon_end
FROM recommendation_outcomes WHERE prediction_date = @d
"""

_EVENTS_THROUGH = "SELECT MAX(DATE(event_ts)) AS d FROM {events} AS e WHERE DATE(event_ts) >= @start"

_DID = """
SELECT {item} AS item_id, event_type, COUNT(*) AS events, MIN(event_ts) AS first_at
FROM {events} AS e
WHERE {user} = @user AND DATE(event_ts) BETWEEN @start AND @end
GROUP BY {item}, event_type
ORDER BY first_at, item_id, event_type
"""


def page_contract(model: str | None = None, dags_folder: str | Path | None = None) -> PipelineSpec | None:
    """The contract whose sources the pages read: ``model``'s (by name), else the only one, in the DAGs folder.

    Looks at ``*/pipeline.yaml`` under Airflow's ``[core] dags_folder``. None when there is none,
    several and no model picks one, or it does not parse (logged): the pages then read the
    tables ``items`` and ``events``.
    """
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.exceptions import MLProviderError

    if dags_folder is None:
        from airflow.configuration import conf

        dags_folder = conf.get("core", "dags_folder", fallback="") or ""
    folder = Path(dags_folder) if dags_folder else None
    specs = []
    for path in sorted(folder.glob("*/pipeline.yaml")) if folder and folder.is_dir() else []:
        try:
            specs.append(load_spec(path))
        except MLProviderError as err:
            log.warning("ML pages: skipping %s: %s", path, err)
    named = [s for s in specs if model and s.name == model]
    return named[0] if named else specs[0] if len(specs) == 1 else None


def outcomes(
    warehouse: Warehouse,
    *,
    model: str | None = None,
    version: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    segment: str = "all",
) -> list[dict[str, Any]]:
    """The realized outcome rows (served lists and the global popularity list), oldest date first."""
    params: dict[str, Any] = {"segment": segment}
    where = model_filter(params, model, version)
    if start:
        where += " AND prediction_date >= @start"
        params["start"] = start
    if end:
        where += " AND prediction_date <= @end"
        params["end"] = end
    return _clean(_rows(warehouse, _OUTCOMES.format(where=where), params, "ml pages: outcomes"))


def outcome_dates(rows: list[dict[str, Any]]) -> list[str]:
    """Every calendar date from the first to the last outcome row: a missing date is a gap in the chart."""
    return calendar_days(r["prediction_date"] for r in rows)


def outcome_series(rows: list[dict[str, Any]], metric: str) -> dict[str, dict[str, float | None]]:
    """Series name -> date -> ``metric``: one per served model version and one for the global popularity list.

    When several versions served one date, the popularity value is the one judged on the most
    active users (each row judges the users of one version's lists).
    """
    out: dict[str, dict[str, float | None]] = {}
    weight: dict[str, int] = {}
    for r in rows:
        day = r["prediction_date"]
        if r["list_source"] == "global_popularity":
            if (r["active_users"] or 0) >= weight.get(day, -1):
                weight[day] = r["active_users"] or 0
                out.setdefault("global popularity", {})[day] = r[metric]
        else:
            out.setdefault(f"{r['model_name']} {r['model_version']}", {})[day] = r[metric]
    return out


def item_attributes(warehouse: Warehouse, spec: PipelineSpec | None = None) -> tuple[str, ...]:
    """The ``ITEM_COLUMNS`` the items source has (none when there is no items table)."""
    if spec is not None:
        from airflow_ml_provider.core.features.render import source_with_columns

        found = source_with_columns(warehouse, spec, "items", (spec.entities.item, *ITEM_COLUMNS))
        return tuple(c for c in ITEM_COLUMNS if found and c in found[1] and spec.entities.item in found[1])
    try:
        columns = warehouse.table_columns("items")
    except TableNotFoundError:
        return ()
    return tuple(c for c in ITEM_COLUMNS if c in columns and "item_id" in columns)


def top_items(
    warehouse: Warehouse,
    day: dt.date,
    *,
    model: str | None = None,
    version: str | None = None,
    limit: int = 10,
    spec: PipelineSpec | None = None,
) -> dict[str, Any]:
    """The items recommended to most users on ``day``, with category and price where the items source has them."""
    attrs = item_attributes(warehouse, spec)
    params: dict[str, Any] = {"d": day, "limit": limit}
    where = model_filter(params, model, version, prefix="r.")
    if spec is not None:
        from airflow_ml_provider.core.contract.references import render_source

        items, key = render_source(spec, "items"), spec.entities.item
    else:
        items, key = "items", "item_id"
    sql = _TOP_ITEMS.format(
        item_cols="".join(f", ANY_VALUE(i.{c}) AS {c}" for c in attrs),
        join=f" LEFT JOIN {items} AS i ON i.{key} = r.item_id" if attrs else "",
        where=where,
    )
    rows = _clean(_rows(warehouse, sql, params, "ml pages: top items"))
    for row in rows:
        for c in ITEM_COLUMNS:
            row.setdefault(c, None)
    return {"items": rows, "attributes": list(attrs)}


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def user_lookup(
    warehouse: Warehouse, user: str, day: dt.date | None = None, spec: PipelineSpec | None = None
) -> dict[str, Any]:
    """The list served to ``user`` on ``day`` (default: their newest on or before today) and what they did next.

    The horizon is the one ``recommendation_outcomes`` judged that date on; before the date is
    evaluated it is the ``DEFAULT_HORIZON_DAYS`` days after it, marked provisional.
    """
    asked = day or dt.date.max
    served_on = _rows(warehouse, _USER_DATES, {"user": user, "d": asked}, "ml pages: user dates")
    served_day = served_on[0]["d"] if served_on and served_on[0]["d"] is not None else None
    result: dict[str, Any] = {
        "user_id": user,
        "prediction_date": _jsonable(served_day),
        "served": [],
        "did": [],
        "horizon_start": None,
        "horizon_end": None,
        "horizon_evaluated": False,
        "attributes": [],
    }
    if served_day is None:
        return result
    # The served items with their category and price where the items source has them (as the CLI shows).
    attrs = item_attributes(warehouse, spec)
    if spec is not None and attrs:
        from airflow_ml_provider.core.contract.references import render_source

        items, key = render_source(spec, "items"), spec.entities.item
    else:
        items, key = "items", "item_id"
    served_sql = _SERVED.format(
        item_cols="".join(f", i.{c}" for c in attrs),
        join=f" LEFT JOIN {items} AS i ON i.{key} = r.item_id" if attrs else "",
    )
    served = _clean(_rows(warehouse, served_sql, {"user": user, "d": served_day}, "ml pages: user list"))
    found = _rows(warehouse, _HORIZON, {"d": served_day}, "ml pages: user horizon")
    if found and found[0]["horizon_start"] is not None:
        start, end = _date(found[0]["horizon_start"]), _date(found[0]["horizon_end"])
        result["horizon_evaluated"] = True
    else:
        start = served_day + dt.timedelta(days=1)
        end = served_day + dt.timedelta(days=DEFAULT_HORIZON_DAYS)
    if spec is not None and "events" in spec.sources:
        from airflow_ml_provider.core.contract.references import render_source

        events = render_source(spec, "events")
        sql = _DID.format(events=events, user=spec.entities.user, item=spec.entities.item)
    else:
        events = "events"
        sql = _DID.format(events="events", user="user_id", item="item_id")
    did = _clean(_rows(warehouse, sql, {"user": user, "start": start, "end": end}, "ml pages: user events"))
    # "No events" is only true once events through the horizon's end are loaded; before, say how far they reach.
    result["events_through"] = None
    if not result["horizon_evaluated"]:
        through = _rows(warehouse, _EVENTS_THROUGH.format(events=events), {"start": start}, "ml pages: events through")
        result["events_through"] = _jsonable(through[0]["d"]) if through and through[0]["d"] is not None else None
        result["events_complete"] = result["events_through"] is not None and result["events_through"] >= end.isoformat()
    else:
        result["events_complete"] = True
    result["attributes"] = list(attrs)
    listed = {r["item_id"] for r in served}
    by_item: dict[str, list[str]] = {}
    for event in did:
        event["on_list"] = event["item_id"] in listed
        by_item.setdefault(event["item_id"], []).append(event["event_type"])
    for row in served:
        row["then"] = sorted(set(by_item.get(row["item_id"], [])))
    result.update(served=served, did=did, horizon_start=start.isoformat(), horizon_end=end.isoformat())
    return result


# --- the headline: did the newest judged lists work? -----------------------------------------------

#: z of the two-sided 95% normal interval of the hit-rate difference.
_Z95 = 1.96


def _pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of one date and list source (one per served version) as one judgement over all their users."""
    users = sum(r["active_users"] or 0 for r in rows)
    hits = sum(r["hits"] or 0 for r in rows)
    ndcg = [(r["ndcg_at_k"], r["active_users"] or 0) for r in rows if r["ndcg_at_k"] is not None]
    weight = sum(w for _, w in ndcg)
    return {
        "active_users": users,
        "hits": hits,
        "hit_rate": hits / users if users else None,
        "ndcg_at_k": sum(v * w for v, w in ndcg) / weight if weight else None,
    }


def headline(
    rows: list[dict[str, Any]], newest_served: str | None, horizon_days: int, horizon_source: str
) -> dict[str, Any]:
    """Did the newest judged lists beat the global popularity list, and when is the newest served date judgeable.

    ``rows`` are the outcome rows (segment ``all``) the page shows. The served lists of the newest
    judged date (all versions pooled) are compared with the popularity list judged on the same
    users: hit rate and ndcg@k, their difference, and an approximate 95% interval of the hit-rate
    difference (normal, treating the two rates as independent: conservative, since both are
    judged on the same users; per-user ndcg is not stored, so ndcg has no interval). ``verdict``
    is ``better`` or ``worse`` when that interval excludes 0, else ``unclear``.
    """
    judged = sorted({r["prediction_date"] for r in rows if r["list_source"] == "model"})
    out: dict[str, Any] = {
        "judged_date": judged[-1] if judged else None,
        "newest_served": newest_served,
        "horizon_days": horizon_days,
        "horizon_source": horizon_source,
        "pending_date": None,
        "judgeable_on": None,
    }
    if newest_served and (not judged or newest_served[:10] > judged[-1][:10]):
        served = dt.date.fromisoformat(newest_served[:10])
        out["pending_date"] = served.isoformat()
        out["judgeable_on"] = (served + dt.timedelta(days=horizon_days + 1)).isoformat()
    if not judged:
        return out
    day = judged[-1]
    model = _pooled([r for r in rows if r["prediction_date"] == day and r["list_source"] == "model"])
    popular = _pooled([r for r in rows if r["prediction_date"] == day and r["list_source"] == "global_popularity"])
    out.update(model=model, popularity=popular, k=next((r["k"] for r in rows if r["prediction_date"] == day), None))
    out["versions"] = sorted(
        {r["model_version"] for r in rows if r["prediction_date"] == day and r["list_source"] == "model"}
    )
    m, p, n = model["hit_rate"], popular["hit_rate"], model["active_users"]
    if m is None or p is None:
        out.update(hit_rate_delta=None, ndcg_delta=None, ci=None, verdict="unclear")
        return out
    out["hit_rate_delta"] = m - p
    out["ndcg_delta"] = (
        model["ndcg_at_k"] - popular["ndcg_at_k"]
        if model["ndcg_at_k"] is not None and popular["ndcg_at_k"] is not None
        else None
    )
    n_pop = popular["active_users"] or n
    se = math.sqrt(m * (1 - m) / n + p * (1 - p) / n_pop) if n and n_pop else None
    out["ci"] = (
        {"low": m - p - _Z95 * se, "high": m - p + _Z95 * se, "confidence": 0.95, "method": "normal, unpaired"}
        if se
        else None
    )
    low, high = (out["ci"]["low"], out["ci"]["high"]) if out["ci"] else (m - p, m - p)
    out["verdict"] = "better" if low > 0 else "worse" if high < 0 else "unclear"
    return out


def label_horizon(spec: PipelineSpec | None, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """The label horizon (days) a served date is judged on, and where it came from."""
    if spec is not None:
        return spec.windows.label_horizon_days, f"label_horizon_days of {spec.name}'s pipeline.yaml"
    for r in reversed(rows):
        if r.get("horizon_end"):
            days = (_date(r["horizon_end"]) - _date(r["prediction_date"])).days
            return days, f"the horizon of the outcomes of {str(r['prediction_date'])[:10]}"
    return DEFAULT_HORIZON_DAYS, f"assumed {DEFAULT_HORIZON_DAYS} days (no contract or outcome names it)"


# --- popularity concentration of one date's lists ---------------------------------------------------

#: The lists of a date are flagged as concentrated when one item is in at least this share of them.
CONCENTRATION_FLAG = 0.5

_EXPOSURE = """
SELECT item_id, COUNT(DISTINCT user_id) AS users
FROM recommendations
WHERE prediction_date = @d {where}
GROUP BY item_id
"""


def gini(counts: list[int]) -> float | None:
    """Gini coefficient of exposure counts: 0 when every item is shown equally often, near 1 when one item is."""
    values = sorted(c for c in counts if c >= 0)
    total, n = sum(values), len(values)
    if not n or not total:
        return None
    weighted = sum((i + 1) * v for i, v in enumerate(values))
    return (2 * weighted) / (n * total) - (n + 1) / n


def concentration(
    warehouse: Warehouse,
    day: dt.date,
    lists: int,
    *,
    model: str | None = None,
    version: str | None = None,
    catalog_items: int | None = None,
) -> dict[str, Any]:
    """How concentrated the lists of ``day`` are on a few items.

    ``top_share``: the share of lists holding the most recommended item. ``gini``: the Gini
    coefficient of the number of lists each item is in, over the catalog the run scored
    (items never recommended count as 0) when ``catalog_items`` is known, else over the
    recommended items. ``flagged`` when ``top_share`` reaches ``CONCENTRATION_FLAG``.
    """
    params: dict[str, Any] = {"d": day}
    where = model_filter(params, model, version)
    counts = [r["users"] for r in _rows(warehouse, _EXPOSURE.format(where=where), params, "ml pages: exposure")]
    if not counts or not lists:
        return {"top_share": None, "gini": None, "flagged": False, "items": len(counts), "catalog_items": None}
    missing = max((catalog_items or 0) - len(counts), 0)
    top = max(counts)
    return {
        "top_share": top / lists,
        "gini": gini([*counts, *([0] * missing)]),
        "gini_over": "catalog" if catalog_items and catalog_items >= len(counts) else "recommended items",
        "flagged": top / lists >= CONCENTRATION_FLAG,
        "threshold": CONCENTRATION_FLAG,
        "items": len(counts),
        "catalog_items": catalog_items,
    }
