"""Batch inference for one date: resolve the model, score the day's candidates, replace the partition, record the run.

``run_batch_inference`` is one recorded attempt: ``BatchRecommendOperator`` runs it, and so does
``core.inference.sharded.recommend`` (``airflow-ml recommend``) for one shard, or around the
publish of its shards, so the command line scores exactly as the DAG does. Artifacts are read
through ``read_text`` (the operator passes ObjectStoragePath with the connection's credentials;
the CLI ``core.storage``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.storage import Artifacts
from airflow_ml_provider.core.training.envelope import (
    ENVELOPE_FILE,
    HOOKS_FILE,
    MODEL_FILE,
    booster_from_text,
    hooks_from_text,
    parse_envelope,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_ml_provider.core.contract.model_hooks import ModelHooks
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.inference.scoring import ScoringStats
    from airflow_ml_provider.core.training.envelope import Envelope
    from airflow_ml_provider.core.warehouse.interface import Warehouse

log = logging.getLogger(__name__)


#: The work of one attempt: (warehouse, day, run_id, run) -> the run's numbers.
DayWork = Callable[["Warehouse", dt.date, str, dict[str, Any]], dict[str, Any]]


def load_model(model_dir: str, artifacts: Artifacts) -> tuple[Envelope, Any, ModelHooks]:
    """Envelope, model (from text, never pickle) and model.py hooks of a model directory.

    The model is the LightGBM booster, or its compiled trees when the ``[fast]`` extra is installed
    and they score the envelope's sample exactly as LightGBM does (``core.inference.compiled``).
    """
    from airflow_ml_provider.core.contract.model_hooks import DEFAULT_HOOKS
    from airflow_ml_provider.core.inference.compiled import compiled_or_booster, sample_matrix
    from airflow_ml_provider.core.training.envelope import ModelLoadError

    def read(name: str) -> str:
        uri = storage.join(model_dir, name)
        try:
            return artifacts.read_text(uri)
        except FileNotFoundError as err:
            raise ModelLoadError(f"{uri} does not exist. Check the model's uri in ml_models.") from err
        except UnicodeDecodeError as err:
            raise ModelLoadError(f"{uri} is not a text file; the model is corrupt. Retrain it.") from err

    envelope = parse_envelope(read(ENVELOPE_FILE), storage.join(model_dir, ENVELOPE_FILE))
    model_text = read(MODEL_FILE)
    booster = booster_from_text(model_text, storage.join(model_dir, MODEL_FILE), envelope.model_sha256)
    hooks = DEFAULT_HOOKS
    if envelope.hooks_sha256:
        hooks = hooks_from_text(read(HOOKS_FILE), storage.join(model_dir, HOOKS_FILE), envelope.hooks_sha256)
    model = compiled_or_booster(
        booster,
        model_text,
        model_dir,
        f"{envelope.name} {envelope.version}",
        sample_matrix(envelope.sample, envelope.features, envelope.categories, hooks),
        envelope.best_iteration,
        read_bytes=artifacts.read_bytes,
        write_bytes=artifacts.write_bytes,
    )
    return envelope, model, hooks


def list_length(spec: PipelineSpec, top_k: int | None, where: str = "top_k") -> int:
    """Items per list of a run: ``top_k`` (``where`` names the option) or inference.top_k, within validate's bounds.

    ``validate`` refuses an ``inference.top_k`` above ``candidates_per_user`` (per-user lists): the
    tail of every list would be the popularity fill, not the model's. A run enforces the same
    bound, and refuses a non-positive ``top_k`` instead of falling back to the contract's.
    """
    from airflow_ml_provider.exceptions import ContractError

    cap, default = spec.candidates_per_user, spec.inference.top_k
    per_user = spec.evaluation.lists == "user"
    if top_k is None:
        if per_user and default > cap:
            raise ContractError(
                f"pipeline.yaml: inference.top_k ({default}) exceeds candidates_per_user ({cap}): at least "
                f"{default - cap} items of every list would be the global popularity fill, not the model's. "
                "Raise candidates_per_user or lower inference.top_k (`airflow-ml validate` reports the same)."
            )
        return default
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise ContractError(f"{where}={top_k!r} is not a whole number of items per list. Pass a number such as 10.")
    upper = cap if per_user else 1000  # 1000: inference.top_k's own bound in the contract
    if not 1 <= top_k <= upper:
        bound = f"candidates_per_user ({cap}) in pipeline.yaml" if per_user else "1000"
        raise ContractError(
            f"{where}={top_k}: a list holds 1 to {upper} items ({bound}). Pass a {where} in 1..{upper}, "
            f"or leave it out for inference.top_k ({default})"
            + (", or raise candidates_per_user." if per_user and top_k > upper else ".")
        )
    return top_k


def catalog_coverage(
    warehouse: Warehouse, spec: PipelineSpec, day: dt.date, items: int, candidate_items: int | None = None
) -> dict[str, Any]:
    """How much of the catalogue ``items`` distinct recommended items are, and how much of the day's candidates.

    ``catalog_items``: the items of the ``items`` source (without one: the items with events up
    to ``day``); ``coverage`` = items / catalog_items. ``candidate_items``: the distinct items
    among the day's scoreable candidates (after ``inference.exclude_seen``), as counted while
    they were scored (``ScoringStats.candidate_items``), else counted here;
    ``candidate_item_share`` = items / candidate_items (it once was printed as "catalog coverage":
    80 of 249 candidate items read as 32% of a 9,724-item catalogue).
    """
    from airflow_ml_provider.core.contract.references import render_source
    from airflow_ml_provider.core.inference.scoring import candidate_features_sql

    item = spec.entities.item
    if "items" in spec.sources:
        catalog_sql = f"SELECT COUNT(DISTINCT c.{item}) AS n FROM {render_source(spec, 'items')} AS c"
    else:
        catalog_sql = (
            f"SELECT COUNT(DISTINCT e.{item}) AS n FROM {render_source(spec, 'events')} AS e "
            "WHERE DATE(e.event_ts) <= @as_of"
        )
    catalog = _streamed_count(warehouse, catalog_sql, day, "catalogue size")
    if candidate_items is None:
        sql = f"SELECT COUNT(DISTINCT c.{item}) AS n FROM ({candidate_features_sql(spec, [])}) AS c"
        candidate_items = _streamed_count(warehouse, sql, day, "candidate items")
    return {
        "catalog_items": catalog,
        "coverage": items / catalog if catalog else 0.0,
        "candidate_items": candidate_items,
        "candidate_item_share": items / candidate_items if candidate_items else 0.0,
    }


def _streamed_count(warehouse: Warehouse, sql: str, day: dt.date, source: str) -> int:
    """The ``n`` of a one-row COUNT query for @as_of, read as a stream.

    On DuckDB a stream's read is bounded by the stream's memory limit (ADR 6); a plain query
    cached about 0.7 GB of a 50M-row partition's item column, above the scoring itself.
    """
    with warehouse.query_batches(sql, {"as_of": day}, source=source) as batches:
        return sum(int(n or 0) for batch in batches for n in batch.column("n").to_pylist())


def score_day(
    warehouse: Warehouse,
    spec: PipelineSpec,
    day: dt.date,
    model_uri: str,
    params: dict[str, Any],
    *,
    top_k: int | None,
    artifacts: Artifacts,
    wrap: Callable[[str], str] = str,
    logger: Any = None,
    unlocked: bool = False,
) -> tuple[pa.Table, ScoringStats]:
    """Load the model, check the serving schema, score the day's candidates into top-k lists, fill short lists.

    The query reads the keys and exactly the model's features (``candidate_features_sql``): a
    feature the model left out (its source column declared absent) is never read. Served users
    with fewer than k candidates get their list filled from the global popularity list
    (``core/inference/fallback.py``); the rows carry ``source``. ``wrap`` narrows both queries
    (a user shard). ``unlocked``: read so that no warehouse lock is held while scoring (shards
    score in parallel).
    """
    from airflow_ml_provider.core.inference.fallback import fallback_sql, fill_lists
    from airflow_ml_provider.core.inference.scoring import (
        candidate_features_sql,
        check_feature_table,
        score_batches,
    )
    from airflow_ml_provider.core.inference.shards import unlocked_batches

    k = list_length(spec, top_k)  # before the model loads: a bad bound is the user's, not the model's
    envelope, booster, hooks = load_model(model_uri, artifacts)
    keys = (spec.entities.user, spec.entities.item)
    check_feature_table(warehouse.table_columns(spec.feature_table), envelope, keys, spec.feature_table)
    (logger or log).info("Scoring %s candidates with %s %s (top %d)", day, envelope.name, envelope.version, k)
    rows = spec.inference.batch_rows
    sql = wrap(candidate_features_sql(spec, envelope.feature_names()))
    read = (
        unlocked_batches(warehouse, sql, params, batch_rows=rows, source="candidates")
        if unlocked
        else warehouse.query_batches(sql, params, batch_rows=rows, source="candidates")
    )
    with read as batches:
        best, stats = score_batches(
            batches, booster, envelope, hooks, k, keys=keys, source=f"{spec.feature_table} partition {day}"
        )
    fill_params = {**params, "lookback_days": spec.windows.feature_lookback_days, "top_k": k}
    fallback = warehouse.query(
        wrap(fallback_sql(spec, candidate_features_sql(spec, []))), fill_params, source="popularity fallback"
    )
    filled = fill_lists(best, fallback, k, keys)
    stats.filled_users = len(set(fallback.column(keys[0]).to_pylist())) if fallback.num_rows else 0
    stats.filled_rows = filled.num_rows - best.num_rows
    if stats.filled_users:
        (logger or log).info(
            "%d users had fewer than %d candidates: %d items filled from the global popularity list",
            stats.filled_users,
            k,
            stats.filled_rows,
        )
    return filled, stats


def recommendation_rows(best: pa.Table, model_name: str, model_version: str, run_id: str) -> pa.Table:
    """The ``recommendations`` rows (without prediction_date) of the scored top-k lists."""
    import pyarrow as pa

    from airflow_ml_provider.core.evaluation.popularity import MODEL_SOURCE
    from airflow_ml_provider.core.inference.runs import utcnow

    rows = best.num_rows
    return pa.table(
        {
            "user_id": best["user_id"],
            "item_id": best["item_id"],
            "rank": best["rank"],
            "score": best["score"],
            # Constant columns without a Python list per row (seconds at 20M rows).
            "model_name": pa.repeat(pa.scalar(model_name, pa.string()), rows),
            "model_version": pa.repeat(pa.scalar(model_version, pa.string()), rows),
            "run_id": pa.repeat(pa.scalar(run_id, pa.string()), rows),
            "generated_at": pa.repeat(pa.scalar(utcnow(), pa.timestamp("us", tz="UTC")), rows),
            # Where the row came from: the model, or the popularity fill (an empty shard has no column).
            "source": best["source"]
            if "source" in best.column_names
            else pa.repeat(pa.scalar(MODEL_SOURCE, pa.string()), rows),
        }
    )


def recommend_day(
    warehouse: Warehouse,
    day: dt.date,
    run_id: str,
    run: dict[str, Any],
    *,
    spec: PipelineSpec,
    model_version: str,
    model_name: str | None,
    top_k: int | None,
    artifacts: Artifacts,
    logger: Any = None,
) -> dict[str, Any]:
    """Resolve and load the model, score the day's candidates, replace the partition; return the run's numbers."""
    from airflow_ml_provider.core.registry.models import ModelRegistry

    record = ModelRegistry(warehouse, artifact_root=artifacts.root).locate(
        model_name or spec.name, model_version, artifacts.exists
    )
    run.update(model_name=record.model_name, model_version=record.version)
    best, stats = score_day(
        warehouse,
        spec,
        day,
        record.uri,
        {"as_of": day},
        top_k=top_k,
        artifacts=artifacts,
        logger=logger,
    )
    write_started = time.monotonic()
    table = recommendation_rows(best, record.model_name, record.version, run_id)
    warehouse.replace_partition("recommendations", "prediction_date", day, table, sql_source="batch inference")
    return {
        "users": len(best["user_id"].unique()),
        "rows_written": table.num_rows,
        "candidates": stats.rows,
        **catalog_coverage(warehouse, spec, day, len(best["item_id"].unique()), stats.candidate_items),
        "seconds_read": stats.seconds_read,
        "seconds_score": stats.seconds_score,
        "seconds_write": time.monotonic() - write_started,
        "rows_per_second": stats.rows / max(stats.seconds_read + stats.seconds_score, 1e-9),
        "filled_users": stats.filled_users,
        "filled_rows": stats.filled_rows,
    }


def run_batch_inference(
    warehouse: Warehouse,
    spec: PipelineSpec | Callable[[], PipelineSpec],
    day: dt.date,
    *,
    run_id: str,
    try_number: int = 1,
    model_version: str = "champion",
    model_name: str | None = None,
    top_k: int | None = None,
    artifacts: Artifacts = storage.DEFAULT_ARTIFACTS,
    logger: Any = None,
    day_work: DayWork | None = None,
) -> dict[str, Any]:
    """One recorded attempt: a ``running`` row in recommendation_runs, the day's work, then success or failed.

    The work is ``recommend_day`` with the model and artifact options, unless ``day_work`` replaces
    it (an operator's ``recommend``, or ``core.inference.sharded.publish_shards`` for a sharded run),
    which then needs none of them.
    ``spec`` may be a callable that loads the contract: a contract that fails to load is then a
    recorded ``failed`` attempt too.
    """
    from airflow_ml_provider.core.inference.runs import finish_run, start_run, utcnow
    from airflow_ml_provider.core.warehouse.ddl import ensure_tables

    started_at, started = utcnow(), time.monotonic()
    run: dict[str, Any] = {"run_id": run_id, "try_number": try_number, "prediction_date": day}
    ensure_tables(warehouse, "recommendations", "recommendations_latest", "recommendation_runs")
    start_run(warehouse, {**run, "started_at": started_at})
    try:
        if callable(spec):
            spec = spec()
        work = day_work or functools.partial(
            recommend_day,
            spec=spec,
            model_version=model_version,
            model_name=model_name,
            top_k=top_k,
            artifacts=artifacts,
            logger=logger,
        )
        run.update(work(warehouse, day, run_id, run))
        run["status"] = "success"
    except Exception as err:
        run.update(status="failed", error=f"{type(err).__name__}: {err}"[:4000])
        raise
    finally:
        run.update(started_at=started_at, finished_at=utcnow(), seconds_total=time.monotonic() - started)
        try:
            finish_run(warehouse, run)
        except Exception as err:
            if run.get("status") != "failed":
                raise
            # The attempt's own error (a full disk, say) is the one to raise; this one can only be logged.
            (logger or log).warning("Could not record failed attempt %s in recommendation_runs: %s", run_id, err)
    return run
