"""A day's batch inference in user shards, and :func:`recommend`, the one entry every caller scores a day with.

The recsys_batch_inference DAG runs the sharded steps as three tasks: ``plan_shards`` pins the
model version, ``score_shard`` (one mapped task per shard) stages a shard's top-k lists, and
``publish_shards`` (the ``DayWork`` of the publish task's recorded attempt,
``run_batch_inference``) checks the staged shards and replaces the partition. ``recommend``
runs the same steps one after the other in this process (``airflow-ml recommend --shards N``),
or ``run_batch_inference`` alone for one shard. The storage side of shards (the hash, staging
tables, the checked publish) is ``core.inference.shards``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.inference.batch import (
    DayWork,
    catalog_coverage,
    recommendation_rows,
    run_batch_inference,
    score_day,
)
from airflow_ml_provider.core.inference.shards import (
    ShardPlan,
    check_shard_count,
    check_staged,
    drop_staged,
    publish_staged,
    shard_sql,
    staging_table,
    staging_tables,
    with_shard,
)
from airflow_ml_provider.core.storage import DEFAULT_ARTIFACTS, Artifacts
from airflow_ml_provider.exceptions import EmptyResultError, ShardError

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse

log = logging.getLogger(__name__)


def plan_shards(
    warehouse: Warehouse,
    spec: PipelineSpec,
    day: dt.date,
    shards: int,
    *,
    model_version: str = "champion",
    model_name: str | None = None,
    where: str = "shard plan",
    logger: Any = None,
) -> ShardPlan:
    """The run's shards: a checked shard count and the one model version every shard scores with.

    Pinning the version here means a champion promoted mid-run cannot mix two models in one
    partition. ``where`` names the setting in the error for a bad count.
    """
    from airflow_ml_provider.core.registry.models import ModelRegistry

    count = check_shard_count(shards, where)
    record = ModelRegistry(warehouse).resolve(model_name or spec.name, model_version)
    (logger or log).info("Scoring %s in %d shard(s) with %s %s", day, count, record.model_name, record.version)
    return ShardPlan(day, count, record.model_name, record.version)


def score_shard(
    warehouse: Warehouse,
    spec: PipelineSpec,
    plan: ShardPlan,
    shard: int,
    run_id: str,
    *,
    top_k: int | None = None,
    artifacts: Artifacts = DEFAULT_ARTIFACTS,
    logger: Any = None,
) -> dict[str, Any]:
    """Score one user shard of the plan's day and stage its top-k lists in the shard's own table.

    The staged table is replaced whole, so a retried shard never duplicates rows; nothing
    reaches ``recommendations`` until ``publish_shards``. A shard without users (few users,
    many shards) stages an empty list; publish refuses a partition that is empty as a whole.
    Returns the shard's numbers: ``shard``, ``rows``, ``candidates``, ``seconds_score``, ``staged``.
    """
    from airflow_ml_provider.core.inference.scoring import TopK
    from airflow_ml_provider.core.registry.models import ModelRegistry

    day, shards = plan.prediction_date, plan.shards
    if not 0 <= shard < shards:
        raise ShardError(f"shard {shard} is not one of 0..{shards - 1}.")
    record = ModelRegistry(warehouse, artifact_root=artifacts.root).locate(
        plan.model_name, plan.model_version, artifacts.exists
    )
    params = {"as_of": day, "shard_index": shard, "shard_count": shards}
    try:
        best, stats = score_day(
            warehouse,
            spec,
            day,
            record.uri,
            params,
            top_k=top_k,
            artifacts=artifacts,
            wrap=functools.partial(shard_sql, user_column=spec.entities.user),
            logger=logger,
            unlocked=True,
        )
        candidates, seconds, filled = stats.rows, stats.seconds_read + stats.seconds_score, stats.filled_users
    except EmptyResultError:
        best, candidates, seconds, filled = TopK(1).result(), 0, 0.0, 0
    rows = with_shard(recommendation_rows(best, record.model_name, record.version, run_id), shard)
    table = staging_table("recommendations", day, run_id, shard, shards)
    warehouse.stage_table(table, rows)
    (logger or log).info(
        "Staged shard %d of %d: %d rows from %d candidates in %s", shard, shards, rows.num_rows, candidates, table
    )
    return {
        "shard": shard,
        "rows": rows.num_rows,
        "candidates": candidates,
        "seconds_score": round(seconds, 3),
        "filled_users": filled,
        "staged": table,
    }


def publish_shards(
    warehouse: Warehouse,
    day: dt.date,
    run_id: str,
    run: dict[str, Any],
    *,
    spec: PipelineSpec,
    plan: ShardPlan,
    shard_results: Sequence[Mapping[str, Any] | None] = (),
    in_parallel: bool = True,
) -> dict[str, Any]:
    """Check that every shard is staged exactly once, publish their union as ``day``'s partition, drop them.

    A ``DayWork`` once ``spec``, ``plan`` and ``shard_results`` are bound (``functools.partial``):
    ``run_batch_inference`` records the attempt. ``shard_results`` are the ``score_shard``
    outputs (for the candidate count and the throughput: over the slowest shard's seconds when
    they scored ``in_parallel``, else over their sum); a failed check raises ``ShardError``
    naming the shard and changes nothing, keeping the staged tables for a rerun.
    """
    run.update(model_name=plan.model_name, model_version=plan.model_version)
    if plan.prediction_date != day:
        raise ShardError(f"the shard plan is for {plan.prediction_date}, this task publishes {day}.")
    started = time.monotonic()
    names = staging_tables("recommendations", plan, run_id)
    totals = check_staged(warehouse, names, "user_id")
    if not totals["rows_written"]:
        raise EmptyResultError(
            f"no shard of {day} staged any recommendation; the partition was left as it was. "
            "Run the features DAG for this date first."
        )
    columns = [c for c in warehouse.table_columns("recommendations") if c != "prediction_date"]
    publish_staged(warehouse, "recommendations", "prediction_date", day, names, columns)
    drop_staged(warehouse, names)
    shards_done = [r for r in shard_results if r]
    candidates = sum(int(r["candidates"]) for r in shards_done)
    seconds = [float(r.get("seconds_score") or 0.0) for r in shards_done]
    scoring = max(seconds, default=0.0) if in_parallel else sum(seconds)
    return {
        "users": totals["users"],
        "rows_written": totals["rows_written"],
        "candidates": candidates,
        **catalog_coverage(warehouse, spec, day, totals["items"]),
        "seconds_write": time.monotonic() - started,
        "rows_per_second": candidates / scoring if scoring else None,
        "filled_users": sum(int(r.get("filled_users") or 0) for r in shards_done),
    }


def publish_work(
    spec: PipelineSpec,
    plan: ShardPlan,
    shard_results: Sequence[Mapping[str, Any] | None] = (),
    *,
    in_parallel: bool = True,
) -> DayWork:
    """``publish_shards`` as the ``day_work`` of ``run_batch_inference``."""
    return functools.partial(publish_shards, spec=spec, plan=plan, shard_results=shard_results, in_parallel=in_parallel)


def recommend(
    warehouse: Warehouse,
    spec: PipelineSpec,
    day: dt.date,
    *,
    run_id: str,
    shards: int = 1,
    model_version: str = "champion",
    model_name: str | None = None,
    top_k: int | None = None,
    artifacts: Artifacts = DEFAULT_ARTIFACTS,
    logger: Any = None,
    try_number: int = 1,
) -> dict[str, Any]:
    """Score ``day``'s candidates and replace its ``recommendations`` partition; return the recorded run.

    One shard is ``run_batch_inference`` (what ``BatchRecommendOperator`` runs). More shards run
    the DAG's steps one after the other in this process: plan (the model version is pinned),
    score and stage every shard, then publish as a recorded attempt in ``recommendation_runs``,
    as the DAG's publish task does (a failed plan or shard, as in the DAG, records none). The
    partition equals an unsharded run's row for row. Should a shard or the publish fail, this
    run's staged tables are dropped: nothing else would ever publish them.
    """
    count = check_shard_count(shards, "recommend")
    options: dict[str, Any] = {"top_k": top_k, "artifacts": artifacts, "logger": logger}
    if count == 1:
        return run_batch_inference(
            warehouse,
            spec,
            day,
            run_id=run_id,
            try_number=try_number,
            model_version=model_version,
            model_name=model_name,
            **options,
        )
    plan = plan_shards(warehouse, spec, day, count, model_version=model_version, model_name=model_name, logger=logger)
    try:
        results = [score_shard(warehouse, spec, plan, shard, run_id, **options) for shard in range(count)]
        work = publish_work(spec, plan, results, in_parallel=False)  # the shards scored one after the other
        return run_batch_inference(warehouse, spec, day, run_id=run_id, try_number=try_number, day_work=work)
    except Exception:
        try:
            drop_staged(warehouse, staging_tables("recommendations", plan, run_id))
        except Exception as err:  # the first error is the one to report
            (logger or log).warning("Could not drop the staged shards of run %s: %s", run_id, err)
        raise
