"""DriftCheckOperator: count a date's features (and recommendation scores) into the model's reference bins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.operators.lineage import Lineage


class DriftCheckOperator(MLPlatformOperator):
    """Compare one date with a model version's reference profile, in the warehouse, and record the results.

    One GoogleSQL aggregation scans the feature table's partition (and one the day's
    recommendation scores of that version) and counts every monitored column into the
    stored bins; PSI, JS distance, L-infinity, null-rate change and new-category share come
    from the counts. The date's partition of ``drift_results`` is replaced, so a rerun
    leaves one set of results. Returns a small summary (verdict, drifted columns, worst PSI).

    Asset events: Airflow emits a task's outlets whenever it succeeds, so "drift found" is a
    separate downstream task with ``outlets=[...]`` that skips unless the verdict is drift
    (see ``dags/recsys_drift.py``). A task failed by ``fail_on`` emits no asset events.

    :param partition_date: the date to check. Default: from the newest triggering asset event,
        its extra's ``prediction_date`` or else its source run's logical date; without one, the
        logical date, else the date the run was due.
    :param model_version: ``champion`` (default) or a pinned version.
    :param model_name: defaults to the contract's ``name``.
    :param fail_on: ``drift``, ``warn`` or ``never``; defaults to the contract's ``drift.fail_on``.
    :param predictions_table: batch inference's table; None checks features only.
    """

    template_fields: Sequence[str] = ("partition_date", "model_version", "model_name", "fail_on")
    ui_color = "#fbeaea"
    operator_extra_links = (BigQueryTableLink("drift_results"), ModelPageLink())

    def __init__(
        self,
        *,
        partition_date: str | None = None,
        model_version: str = "champion",
        model_name: str | None = None,
        fail_on: str | None = None,
        predictions_table: str | None = "recommendations",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.partition_date = partition_date
        self.model_version = model_version
        self.model_name = model_name
        self.fail_on = fail_on
        self.predictions_table = predictions_table

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.drift.run import check_fail_on, run_drift_check

        with self.fail_fast():
            if self.fail_on:
                check_fail_on(self.fail_on, f"task {self.task_id!r}")
            checked = run_drift_check(
                self.hook.get_warehouse(labels=self.job_labels(context)),
                self.spec,
                self.check_date(context),
                run_id=context["ti"].run_id,
                model_version=self.model_version,
                model_name=self.model_name,
                fail_on=self.fail_on,
                predictions_table=self.predictions_table,
                artifacts=self.hook.get_artifacts(),
                logger=self.log,
            )
        self.checked = checked.summary
        if checked.failure:
            raise AirflowFailException(checked.failure)
        return checked.summary

    def lineage(self) -> Lineage:
        """Reads the features, the day's lists, ``ml_models``, the model's profile; writes ``drift_results``."""
        from airflow_ml_provider.core.drift.store import PROFILES_TABLE, RESULTS_TABLE
        from airflow_ml_provider.core.registry.models import TABLE as MODELS_TABLE
        from airflow_ml_provider.operators.lineage import Lineage

        checked = getattr(self, "checked", None) or {}
        uri = self.model_uri(checked.get("model_name"), checked.get("model_version"))
        reads = [self.spec.feature_table, *([self.predictions_table] if self.predictions_table else [])]
        return Lineage(
            input_tables=[*reads, MODELS_TABLE, PROFILES_TABLE],
            output_tables=[RESULTS_TABLE] if checked else [],
            input_artifacts=[uri] if uri else [],
        )

    def check_date(self, context: Context) -> dt.date:
        """The date to check: explicit, else the triggering event's ``prediction_date``, logical date, run date."""
        if self.partition_date:
            return parse_date(self.partition_date)
        events = [e for group in (context.get("triggering_asset_events") or {}).values() for e in group]
        for event in sorted(events, key=lambda e: e.timestamp, reverse=True):
            value = (event.extra or {}).get("prediction_date")
            if value:
                return parse_date(str(value), "prediction_date of the triggering asset event")
            source_run = event.source_dag_run
            if source_run is not None and source_run.logical_date is not None:
                return source_run.logical_date.date()
        logical = context.get("logical_date")
        if logical is not None:
            return logical.date()
        return context["dag_run"].run_after.date()
