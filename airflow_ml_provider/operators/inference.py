"""BatchRecommendOperator: score the day's candidates and write top-k per user, atomically."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.envelope import ENVELOPE_FILE, HOOKS_FILE, MODEL_FILE, booster_from_text, parse_envelope
from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context

    from airflow_ml_provider.core.envelope import Envelope
    from airflow_ml_provider.core.hooks import ModelHooks
    from airflow_ml_provider.core.warehouse import Warehouse


class BatchRecommendOperator(MLPlatformOperator):
    """Write the ``prediction_date`` partition of ``recommendations`` from the day's candidates.

    The model is a pinned version or the ``champion`` alias, never an implicit latest. The
    serving schema is checked against the model's before any scoring; candidates stream in
    bounded Arrow batches; the partition is replaced in one atomic write, so readers see the
    old lists or the new ones. Every attempt, failed ones included, has a row in
    ``recommendation_runs``: ``running`` before scoring, then ``success`` or ``failed``; a
    rerun of the same try updates it, and a try killed outright shows as ``lost``.

    :param prediction_date: the as-of date of the features to score (default: logical date).
    :param model_version: a version from ``ml_models`` or ``champion``.
    :param top_k: items per user; defaults to ``inference.top_k`` in the contract.
    """

    template_fields: Sequence[str] = ("prediction_date", "model_version", "model_name")
    ui_color = "#f3e8fb"
    operator_extra_links = (BigQueryTableLink("recommendations"), ModelPageLink())

    def __init__(
        self,
        *,
        prediction_date: str = "{{ ds }}",
        model_version: str = "champion",
        model_name: str | None = None,
        top_k: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prediction_date = prediction_date
        self.model_version = model_version
        self.model_name = model_name
        self.top_k = top_k

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.ddl import ensure_tables
        from airflow_ml_provider.core.runs import finish_run, start_run, utcnow

        started_at, started = utcnow(), time.monotonic()
        ti = context["ti"]
        run: dict[str, Any] = {"run_id": ti.run_id, "try_number": getattr(ti, "try_number", 1) or 1}
        with self.fail_fast():
            day = parse_date(self.prediction_date, "prediction_date")
            run["prediction_date"] = day
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            ensure_tables(warehouse, "recommendations", "recommendations_latest", "recommendation_runs")
            start_run(warehouse, {**run, "started_at": started_at})
            try:
                run.update(self.recommend(warehouse, day, ti.run_id, run))
                run["status"] = "success"
            except Exception as err:
                run.update(status="failed", error=f"{type(err).__name__}: {err}"[:4000])
                raise
            finally:
                run.update(started_at=started_at, finished_at=utcnow(), seconds_total=time.monotonic() - started)
                finish_run(warehouse, run)
        # Tell downstream (recsys_drift) which date and model the asset event is about.
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            for asset in self.outlets:
                outlet_events[asset].extra = {"prediction_date": day.isoformat(), "model_version": run["model_version"]}
        self.log.info(
            "Wrote %d recommendations for %d users (%s coverage %.1f%%) with %s %s",
            run["rows_written"],
            run["users"],
            day,
            100 * run["coverage"],
            run["model_name"],
            run["model_version"],
        )
        keys = ("prediction_date", "model_name", "model_version", "users", "rows_written", "candidates", "coverage")
        return {k: (str(run[k]) if k == "prediction_date" else run[k]) for k in keys}

    def recommend(self, warehouse: Warehouse, day: dt.date, run_id: str, run: dict[str, Any]) -> dict[str, Any]:
        """Resolve and load the model, score the day's candidates, replace the partition."""
        from airflow_ml_provider.core.registry import ModelRegistry
        from airflow_ml_provider.core.runs import utcnow
        from airflow_ml_provider.core.scoring import candidate_features_sql, check_feature_table, score_batches

        spec = self.spec
        record = ModelRegistry(warehouse).resolve(self.model_name or spec.name, self.model_version)
        run.update(model_name=record.model_name, model_version=record.version)
        envelope, booster, hooks = self.load_model(record.uri)
        keys = (spec.entities.user, spec.entities.item)
        check_feature_table(warehouse.table_columns(spec.feature_table), envelope, keys, spec.feature_table)
        k = self.top_k or spec.inference.top_k
        self.log.info("Scoring %s candidates with %s %s (top %d)", day, record.model_name, record.version, k)
        with warehouse.query_batches(
            candidate_features_sql(spec), {"as_of": day}, batch_rows=spec.inference.batch_rows, source="candidates"
        ) as batches:
            best, stats = score_batches(
                batches,
                booster,
                envelope,
                hooks,
                k,
                keys=keys,
                source=f"{spec.feature_table} partition {day}",
            )
        write_started = time.monotonic()
        rows = best.num_rows
        table = pa.table(
            {
                "user_id": best["user_id"],
                "item_id": best["item_id"],
                "rank": best["rank"],
                "score": best["score"],
                # Constant columns without a Python list per row (seconds at 20M rows).
                "model_name": pa.repeat(pa.scalar(record.model_name, pa.string()), rows),
                "model_version": pa.repeat(pa.scalar(record.version, pa.string()), rows),
                "run_id": pa.repeat(pa.scalar(run_id, pa.string()), rows),
                "generated_at": pa.repeat(pa.scalar(utcnow(), pa.timestamp("us", tz="UTC")), rows),
            }
        )
        warehouse.replace_partition("recommendations", "prediction_date", day, table, sql_source="batch inference")
        users = len(best["user_id"].unique())
        catalog = self.catalog_size(warehouse, day)
        return {
            "users": users,
            "rows_written": rows,
            "candidates": stats.rows,
            "catalog_items": catalog,
            "coverage": len(best["item_id"].unique()) / catalog if catalog else 0.0,
            "seconds_read": stats.seconds_read,
            "seconds_score": stats.seconds_score,
            "seconds_write": time.monotonic() - write_started,
            "rows_per_second": stats.rows / max(stats.seconds_read + stats.seconds_score, 1e-9),
        }

    def catalog_size(self, warehouse: Warehouse, day: dt.date) -> int:
        """Distinct items among the day's candidates: the denominator of catalog coverage."""
        spec = self.spec
        sql = f"SELECT COUNT(DISTINCT {spec.entities.item}) AS n FROM {spec.feature_table} WHERE as_of_date = @d"
        return int(warehouse.query(sql, {"d": day}, source="catalog size").to_pylist()[0]["n"])

    def load_model(self, model_dir: str) -> tuple[Envelope, Any, ModelHooks]:
        """Envelope, LightGBM booster (from text, never pickle) and model.py hooks, via ObjectStoragePath."""
        from airflow_ml_provider.core.envelope import ModelLoadError
        from airflow_ml_provider.core.hooks import DEFAULT_HOOKS, load_hooks

        def read(name: str) -> str:
            uri = storage.join(model_dir, name)
            try:
                return self.hook.artifact_path(uri).read_text()
            except FileNotFoundError as err:
                raise ModelLoadError(f"{uri} does not exist. Check the model's uri in ml_models.") from err
            except UnicodeDecodeError as err:
                raise ModelLoadError(f"{uri} is not a text file; the model is corrupt. Retrain it.") from err

        envelope = parse_envelope(read(ENVELOPE_FILE), storage.join(model_dir, ENVELOPE_FILE))
        model_text = read(MODEL_FILE)
        booster = booster_from_text(model_text, storage.join(model_dir, MODEL_FILE), envelope.model_sha256)
        hooks = DEFAULT_HOOKS
        if envelope.hooks_sha256:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / HOOKS_FILE
                path.write_text(read(HOOKS_FILE))
                hooks = load_hooks(path)
        return envelope, self.compiled_trees(booster, model_text, model_dir, envelope, hooks), hooks

    # --- compiled trees (the [fast] extra; core/compiled.py) -----------------------------------

    def compiled_trees(self, booster: Any, model_text: str, model_dir: str, envelope: Envelope, hooks: Any) -> Any:
        """The compiled model behind Booster.predict when it matches LightGBM, else ``booster``; cached next to it."""
        from airflow_ml_provider.core.compiled import compiled_or_booster, sample_matrix

        def write(uri: str, data: bytes) -> None:
            path = self.hook.artifact_path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return compiled_or_booster(
            booster,
            model_text,
            model_dir,
            f"{envelope.name} {envelope.version}",
            sample_matrix(envelope.sample, envelope.features, envelope.categories, hooks),
            envelope.best_iteration,
            read_bytes=lambda uri: self.hook.artifact_path(uri).read_bytes(),
            write_bytes=write,
        )
