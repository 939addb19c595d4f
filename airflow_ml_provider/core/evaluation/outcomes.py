"""Realized outcomes: what the lists served on a date did once its horizon passed, beside the global popularity list.

The warehouse gathers the rows: ``sql/recsys/outcomes.sql`` puts each served list beside
everything its user did in the horizon (recommended or not), and ``core/evaluation/popularity.py``
gives every served user the global popularity list as of the served date (the one definition
the gate uses too: distinct users over the feature lookback, the user's seen items skipped per
``inference.exclude_seen``). The metrics come from the functions offline evaluation uses
(``per_list_metrics``, ``summarise`` in ``core/evaluation/offline.py``), so a realized ndcg@k
means what the gate's ndcg@k means. Revenue is NULL when the items have no price. One
partition of ``recommendation_outcomes`` per served date, replaced on a rerun.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from airflow_ml_provider.core.evaluation.horizon import horizon_end, require_horizon_passed
from airflow_ml_provider.core.evaluation.offline import ITEM, LIST, RANK, per_list_metrics
from airflow_ml_provider.core.evaluation.offline import summarise as summarise_lists
from airflow_ml_provider.exceptions import EmptyResultError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult

OUTCOMES_TABLE = "recommendation_outcomes"
#: The SQL file (relative to sql/) the evaluation renders with source()/ref().
OUTCOMES_SQL = "recsys/outcomes.sql"
#: Columns of recommendation_outcomes besides prediction_date (sql/ddl/recommendation_outcomes.sql), in order.
OUTCOME_COLUMNS: dict[str, str] = {
    "horizon_start": "DATE",
    "horizon_end": "DATE",
    "list_source": "STRING",
    "model_name": "STRING",
    "model_version": "STRING",
    "segment": "STRING",
    "k": "INT64",
    "lists": "INT64",
    "active_users": "INT64",
    "hits": "INT64",
    "hit_rate": "FLOAT64",
    "precision_at_k": "FLOAT64",
    "recall_at_k": "FLOAT64",
    "ndcg_at_k": "FLOAT64",
    "purchases": "INT64",
    "revenue": "FLOAT64",
    "coverage": "FLOAT64",
    "run_id": "STRING",
    "evaluated_at": "TIMESTAMP",
}
LIST_SOURCES = ("model", "global_popularity")


@dataclass(frozen=True)
class OutcomeContext:
    """What every row of one evaluated date shares."""

    prediction_date: dt.date
    horizon_days: int
    k: int
    run_id: str
    evaluated_at: dt.datetime


def outcomes_schema() -> pa.Schema:
    """Arrow schema of the rows written to ``recommendation_outcomes`` (the partition column is added)."""
    import pyarrow as pa

    types = {
        "DATE": pa.date32(),
        "STRING": pa.string(),
        "INT64": pa.int64(),
        "FLOAT64": pa.float64(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([(name, types[t]) for name, t in OUTCOME_COLUMNS.items()])


def judge_lists(recommended: pd.DataFrame, judged: pd.DataFrame, k: int, catalog_size: int) -> dict[str, Any]:
    """The outcome metrics of ``recommended`` lists against what their users did (``judged`` rows).

    ``recommended``: list_id (the user), item, rank. ``judged``: user_id, item_id, relevance,
    purchases, revenue, one row per (user, item) the user interacted with or was served.
    Only active users (a positive in the horizon) are judged, as offline; rates are NULL when
    nobody was active. ``hits`` counts active users with a recommended item they interacted with.
    """
    recommended = recommended.loc[recommended[RANK] <= k]
    truth = judged.rename(columns={"user_id": LIST, "item_id": ITEM})
    per_list = per_list_metrics(recommended, truth, k)  # its positives: relevance > 0
    summary = summarise_lists(per_list, recommended, catalog_size)
    active = int(summary["lists"])
    hits = int((per_list["precision"] > 0).sum())
    bought = recommended.merge(truth[[LIST, ITEM, "purchases", "revenue"]], on=[LIST, ITEM], how="inner")
    # NULL when no bought item has a price (a catalogue without prices): revenue is not invented.
    revenue = bought["revenue"].sum(min_count=1)

    def rate(value: float) -> float | None:
        return float(value) if active else None  # nobody to judge is not a rate of 0

    return {
        "k": k,
        "lists": int(recommended[LIST].nunique()),
        "active_users": active,
        "hits": hits,
        "hit_rate": hits / active if active else None,
        "precision_at_k": rate(summary["precision"]),
        "recall_at_k": rate(summary["recall"]),
        "ndcg_at_k": rate(summary["ndcg"]),
        "purchases": int(bought["purchases"].sum()),
        # Rounded: a float sum depends on the order rows arrive in, and a rerun must write the same row.
        "revenue": None if pd.isna(revenue) else round(float(revenue), 6),
        "coverage": float(summary["coverage"]) if catalog_size else None,
    }


def outcome_rows(
    judged: pd.DataFrame, popular: pd.DataFrame, catalog: int, ctx: OutcomeContext
) -> list[dict[str, Any]]:
    """One row per (list source, model version, segment): the served lists and the global popularity list.

    ``judged``: the rows of outcomes.sql (model_name, model_version, user_id, item_id, rank or
    NULL, relevance, purchases, revenue; optionally ``segment``). ``popular``: user_id, item_id,
    popularity_rank: every served user's popularity list. ``catalog``: items in the catalogue.
    Every user is judged in segment ``all``, and also in their own segment when ``judged`` has a
    ``segment`` column.
    """
    baseline_all = pd.DataFrame(
        {LIST: popular["user_id"].to_numpy(), ITEM: popular["item_id"].to_numpy(), RANK: popular["popularity_rank"]}
    )
    start, end = ctx.prediction_date + dt.timedelta(days=1), horizon_end(ctx.prediction_date, ctx.horizon_days)
    shared = {"horizon_start": start, "horizon_end": end, "run_id": ctx.run_id, "evaluated_at": ctx.evaluated_at}
    out: list[dict[str, Any]] = []
    for (name, version), group in judged.groupby(["model_name", "model_version"], sort=True):
        for segment, rows in _segments(group):
            served = rows.loc[rows[RANK].notna()]
            lists = pd.DataFrame(
                {LIST: served["user_id"].to_numpy(), ITEM: served["item_id"].to_numpy(), RANK: served[RANK].astype(int)}
            )
            baseline = baseline_all[baseline_all[LIST].isin(lists[LIST].unique())]
            for source, recommended in zip(LIST_SOURCES, (lists, baseline), strict=True):
                metrics = judge_lists(recommended, rows, ctx.k, catalog)
                keys = {"list_source": source, "model_name": name, "model_version": version, "segment": segment}
                out.append({**shared, **keys, **metrics})
    return out


def _segments(group: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """('all', every row), then (value, rows) per value of the optional ``segment`` column."""
    parts = [("all", group)]
    if "segment" in group.columns:
        parts += [(str(v), g) for v, g in group.groupby("segment", sort=True) if str(v) != "all"]
    return parts


def evaluate_outcomes(
    warehouse: Warehouse,
    spec: PipelineSpec,
    prediction_date: dt.date,
    outcomes_sql: str,
    *,
    run_id: str,
    today: dt.date | None = None,
    force_replace: bool = False,
) -> tuple[WriteResult, list[dict[str, Any]]]:
    """Judge the lists served on ``prediction_date`` and replace its partition of ``recommendation_outcomes``.

    Refused (``HorizonNotPassedError``, nothing written) before the date's horizon has passed
    by ``today`` (default: today in UTC) and in the events source; ``EmptyResultError`` when no
    list was served that day. ``outcomes_sql`` is the rendered SQL file. A degenerate result (an
    empty catalogue, a list source with no lists) never replaces the date's partition:
    ``DegenerateResultError`` names it, unless ``force_replace``.
    """
    import pyarrow as pa

    from airflow_ml_provider.core.warehouse.ddl import ensure_tables

    require_horizon_passed(warehouse, spec, prediction_date, "outcome evaluation", today)
    params = spec.query_params(prediction_date)
    judged = (
        warehouse.query_df(outcomes_sql, params, source=OUTCOMES_SQL)
        if warehouse.table_exists("recommendations")
        else pd.DataFrame()
    )
    if judged.empty or judged[RANK].isna().all():
        raise EmptyResultError(
            f"outcome evaluation for {prediction_date}: no lists were served that day (no recommendations "
            f"partition {prediction_date}). Run recsys_batch_inference for {prediction_date} first, or pick a "
            "served date (`airflow-ml tables` lists the partitions). Nothing was written."
        )
    k = spec.inference.top_k
    popular, catalog = popularity_for_served(warehouse, spec, prediction_date, k)
    ctx = OutcomeContext(prediction_date, spec.windows.label_horizon_days, k, run_id, dt.datetime.now(dt.UTC))
    rows = outcome_rows(judged, popular, catalog, ctx)
    if not force_replace:
        refuse_degenerate(warehouse, spec, prediction_date, rows, catalog)
    ensure_tables(warehouse, OUTCOMES_TABLE)
    written = warehouse.replace_partition(
        OUTCOMES_TABLE,
        "prediction_date",
        prediction_date,
        pa.Table.from_pylist(rows, schema=outcomes_schema()),
        sql_source="outcome evaluation",
        cluster_by=("model_version",),
    )
    return written, rows


def refuse_degenerate(
    warehouse: Warehouse, spec: PipelineSpec, day: dt.date, rows: list[dict[str, Any]], catalog: int
) -> None:
    """Refuse outcomes judged against an empty catalogue, or with a list source that has no list."""
    from airflow_ml_provider.exceptions import DegenerateResultError

    role = "items" if "items" in spec.sources else "events"
    existing = _judged_lists(warehouse, day)
    keep = f"; the date's judgement of {existing} served lists from an earlier run is kept as it is" if existing else ""
    if catalog == 0:
        raise DegenerateResultError(
            f"outcome evaluation for {day}: the {role} source ({spec.sources[role]}) has no items, so catalogue "
            f"coverage and the popularity list would be meaningless{keep}. Load the {role} table, or judge anyway "
            "with --force-replace (force_replace=True on the task). Nothing was written."
        )
    empty = sorted(
        {f"{r['list_source']} ({r['model_version']})" for r in rows if r["segment"] == "all" and not r["lists"]}
    )
    if empty:
        raise DegenerateResultError(
            f"outcome evaluation for {day}: {', '.join(empty)} judged 0 lists, while the served lists were "
            f"{max(int(r['lists'] or 0) for r in rows)}{keep}. Check the events of the lookback before {day} (the "
            "popularity list is built from them), or judge anyway with --force-replace. Nothing was written."
        )


def _judged_lists(warehouse: Warehouse, day: dt.date) -> int:
    if not warehouse.table_exists(OUTCOMES_TABLE):
        return 0
    rows = warehouse.query(
        f"SELECT COALESCE(SUM(lists), 0) AS n FROM {OUTCOMES_TABLE} "
        "WHERE prediction_date = @d AND list_source = 'model' AND segment = 'all'",
        {"d": day},
        source=f"{OUTCOMES_TABLE} partition {day}",
    ).to_pylist()
    return int(rows[0]["n"] or 0)


def popularity_for_served(warehouse: Warehouse, spec: PipelineSpec, day: dt.date, k: int) -> tuple[pd.DataFrame, int]:
    """Every user served on ``day``: their global popularity list as of ``day`` (user_id, item_id,
    popularity_rank), and the number of items in the catalogue (``items`` source, else the events')."""
    from airflow_ml_provider.core.contract.references import render_source
    from airflow_ml_provider.core.evaluation.popularity import popularity_lists_sql

    user, item = spec.entities.user, spec.entities.item
    served = (
        f"SELECT DISTINCT CAST(@as_of AS DATE) AS as_of_date, r.user_id AS {user}\n"
        "FROM recommendations AS r WHERE r.prediction_date = @as_of"
    )
    params = {"as_of": day, "lookback_days": spec.windows.feature_lookback_days, "top_k": k}
    popular = warehouse.query_df(popularity_lists_sql(spec, served), params, source="global popularity lists")
    popular = popular.rename(columns={user: "user_id", item: "item_id"})
    role = "items" if "items" in spec.sources else "events"
    catalog = warehouse.query_df(
        f"SELECT COUNT(DISTINCT c.{item}) AS n FROM {render_source(spec, role)} AS c", source="catalogue size"
    )
    return popular, int(catalog["n"].iloc[0])


def headline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model version (segment ``all``): realized hit rate and ndcg@k of the model and the popularity list."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["segment"] != "all":
            continue
        entry = out.setdefault(
            (r["model_name"], r["model_version"]),
            {"model_name": r["model_name"], "model_version": r["model_version"], "lists": r["lists"]},
        )
        entry["active_users"] = r["active_users"]
        prefix = "model" if r["list_source"] == "model" else "popularity"
        entry[f"{prefix}_hit_rate"] = r["hit_rate"]
        entry[f"{prefix}_ndcg"] = r["ndcg_at_k"]
        entry[f"{prefix}_revenue"] = r["revenue"]  # None: the items have no price
    return list(out.values())
