"""BatchRecommendOperator: score the day's candidates and write top-k per user, atomically."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.exceptions import ContractError
from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context

    from airflow_ml_provider.core.storage import Artifacts
    from airflow_ml_provider.core.warehouse.interface import Warehouse
    from airflow_ml_provider.operators.lineage import Lineage


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
        from airflow_ml_provider.core.inference.batch import run_batch_inference

        ti = context["ti"]
        with self.fail_fast():
            day = parse_date(self.prediction_date, "prediction_date")
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            run = run_batch_inference(
                warehouse,
                lambda: self.spec,
                day,
                run_id=ti.run_id,
                try_number=getattr(ti, "try_number", 1) or 1,
                day_work=self.recommend,
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
        self.served = {k: (str(run[k]) if k == "prediction_date" else run[k]) for k in keys}
        return self.served

    def lineage(self) -> Lineage:
        """Reads the features, ``ml_models`` and the model; writes ``recommendations`` and its run row."""
        from airflow_ml_provider.core.registry.models import TABLE as MODELS_TABLE
        from airflow_ml_provider.operators.lineage import Lineage

        served = getattr(self, "served", None) or {}
        uri = self.model_uri(served.get("model_name"), served.get("model_version"))
        return Lineage(
            input_tables=[self.spec.feature_table, MODELS_TABLE],
            output_tables=["recommendations", "recommendation_runs"] if served else [],
            input_artifacts=[uri] if uri else [],
        )

    def recommend(self, warehouse: Warehouse, day: dt.date, run_id: str, run: dict[str, Any]) -> dict[str, Any]:
        """Resolve and load the model, score the day's candidates, replace the partition (no run row)."""
        from airflow_ml_provider.core.inference.batch import recommend_day

        return recommend_day(
            warehouse,
            day,
            run_id,
            run,
            spec=self.spec,
            model_version=self.model_version,
            model_name=self.model_name,
            top_k=self.top_k,
            artifacts=self.artifacts,
            logger=self.log,
        )

    @property
    def artifacts(self) -> Artifacts:
        """Model artifacts through ObjectStoragePath, with the connection's credentials (compiled trees cached too)."""
        return self.hook.get_artifacts()


class PlanRecommendShardsOperator(MLPlatformOperator):
    """Plan a sharded inference run: the shard count and the one model version all shards score with.

    Returns one keyword set per shard for ``ScoreRecommendShardOperator.partial(...).expand_kwargs``;
    pinning the version here means a champion promoted mid-run cannot mix two models in one partition.

    :param shards: user shards (a number, or a template rendering to one); empty or None takes
        ``inference.shards`` from the contract.
    """

    template_fields: Sequence[str] = ("prediction_date", "model_version", "model_name", "shards")
    ui_color = "#f3e8fb"

    def __init__(
        self,
        *,
        prediction_date: str = "{{ ds }}",
        model_version: str = "champion",
        model_name: str | None = None,
        shards: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prediction_date = prediction_date
        self.model_version = model_version
        self.model_name = model_name
        self.shards = shards

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_ml_provider.core.inference.sharded import plan_shards

        with self.fail_fast():
            day = parse_date(self.prediction_date, "prediction_date")
            shards = self.requested_shards()
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            plan = plan_shards(
                warehouse,
                self.spec,
                day,
                shards,
                model_version=self.model_version,
                model_name=self.model_name,
                where=f"task {self.task_id}",
                logger=self.log,
            )
        return plan.tasks()

    def requested_shards(self) -> int:
        """The operator's shard count if given, else the contract's."""
        text = "" if self.shards is None else str(self.shards).strip()
        if not text:
            return self.spec.inference.shards
        if not text.isdigit():
            raise ContractError(f"task {self.task_id}: shards must be a whole number, got {self.shards!r}.")
        return int(text)


class ScoreRecommendShardOperator(BatchRecommendOperator):
    """Score one user shard of the day's candidates and stage its top-k lists (mapped, one task per shard).

    The shard's lists replace its own staging table whole, so a retried shard never duplicates
    rows; nothing reaches ``recommendations`` until ``PublishRecommendationsOperator``.

    :param shard: this task's shard, from 0.
    :param shards: how many shards the plan has.
    """

    template_fields: Sequence[str] = ("prediction_date", "model_version", "model_name", "shard", "shards")

    def __init__(self, *, shard: int, shards: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard
        self.shards = shards

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.inference.sharded import score_shard
        from airflow_ml_provider.core.inference.shards import ShardPlan

        ti = context["ti"]
        with self.fail_fast():
            day = parse_date(self.prediction_date, "prediction_date")
            spec = self.spec
            plan = ShardPlan(day, int(self.shards), self.model_name or spec.name, self.model_version)
            self.plan_model = (plan.model_name, plan.model_version)
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            return score_shard(
                warehouse,
                spec,
                plan,
                int(self.shard),
                ti.run_id,
                top_k=self.top_k,
                artifacts=self.artifacts,
                logger=self.log,
            )

    def lineage(self) -> Lineage:
        """Reads the feature partition, ``ml_models`` and the model; its staging table is internal, not lineage."""
        from airflow_ml_provider.core.registry.models import TABLE as MODELS_TABLE
        from airflow_ml_provider.operators.lineage import Lineage

        uri = self.model_uri(*getattr(self, "plan_model", (None, None)))
        return Lineage(input_tables=[self.spec.feature_table, MODELS_TABLE], input_artifacts=[uri] if uri else [])


class PublishRecommendationsOperator(BatchRecommendOperator):
    """Publish the staged shards as the day's ``recommendations`` partition, in one atomic write.

    Every shard of the plan must be staged exactly once (else ``ShardError`` names the shard and
    nothing changes). The attempt is recorded in ``recommendation_runs`` like an unsharded run.

    :param plan: the output of ``PlanRecommendShardsOperator``.
    :param shard_results: the outputs of the shard tasks (for the candidate count).
    """

    template_fields: Sequence[str] = ("prediction_date", "plan", "shard_results")

    def __init__(self, *, plan: Any, shard_results: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.shard_results = shard_results

    def recommend(self, warehouse: Warehouse, day: dt.date, run_id: str, run: dict[str, Any]) -> dict[str, Any]:
        """Check the staged shards, publish their union, drop them (``core.inference.sharded.publish_shards``)."""
        from airflow_ml_provider.core.inference.sharded import publish_shards
        from airflow_ml_provider.core.inference.shards import ShardPlan

        plan = ShardPlan.from_tasks(self.plan)
        return publish_shards(
            warehouse, day, run_id, run, spec=self.spec, plan=plan, shard_results=self.shard_results or ()
        )
