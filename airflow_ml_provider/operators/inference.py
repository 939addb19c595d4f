"""BatchRecommendOperator: score the day's candidates and write top-k per user, atomically."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context

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
        from airflow_ml_provider.core.inference import run_batch_inference

        ti = context["ti"]
        with self.fail_fast():
            day = parse_date(self.prediction_date, "prediction_date")
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            run = run_batch_inference(
                warehouse,
                self.spec,
                day,
                run_id=ti.run_id,
                try_number=getattr(ti, "try_number", 1) or 1,
                model_version=self.model_version,
                model_name=self.model_name,
                top_k=self.top_k,
                read_text=self.read_artifact,
                logger=self.log,
            )
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
        """Resolve and load the model, score the day's candidates, replace the partition (no run row)."""
        from airflow_ml_provider.core.inference import recommend_day

        return recommend_day(
            warehouse,
            self.spec,
            day,
            run_id,
            run,
            model_version=self.model_version,
            model_name=self.model_name,
            top_k=self.top_k,
            read_text=self.read_artifact,
            logger=self.log,
        )

    def read_artifact(self, uri: str) -> str:
        """A model artifact's text through ObjectStoragePath, with the connection's credentials."""
        return self.hook.artifact_path(uri).read_text()
