"""TrainModelOperator: export training data, run the trainer, register a candidate model."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.training.job import TrainingJob, model_version
from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.backends.vertex import VertexTrainingRunner
    from airflow_ml_provider.operators.lineage import Lineage


class TrainModelOperator(MLPlatformOperator):
    """Train the contract's model for ``run_date`` on the connection's runner and register a candidate.

    ``local``: the trainer runs in a subprocess with Vertex AI's arguments and environment.
    ``gcp``: the same entrypoint runs as a Vertex AI CustomJob. The model version is derived
    from the run, so a retried task finds the job (and model) it started instead of
    training twice.

    :param run_date: the date whose windows are trained on (defaults to the logical date).
    :param model_name: defaults to the contract's ``name``.
    :param git_sha: recorded with the model (e.g. from CI).
    :param deferrable: ``gcp``: wait for the Vertex AI job in the triggerer, not in a worker slot.
    :param poll_interval: ``gcp``: seconds between job state checks.
    """

    template_fields: Sequence[str] = ("run_date", "model_name", "git_sha")
    ui_color = "#fdf1e0"
    operator_extra_links = (VertexTrainingJobLink(), ModelPageLink())

    def __init__(
        self,
        *,
        run_date: str = "{{ ds }}",
        model_name: str | None = None,
        git_sha: str | None = None,
        deferrable: bool = True,
        poll_interval: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_date = run_date
        self.model_name = model_name
        self.git_sha = git_sha
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self._runner: LocalTrainingRunner | VertexTrainingRunner | None = None

    def runner(self, context: Context) -> LocalTrainingRunner | VertexTrainingRunner:
        """The connection's training runner (kept for ``on_kill``); on gcp it remembers its job per task."""
        self._runner = self.hook.get_training_runner(
            poll_interval=self.poll_interval, state_store=context.get("task_state_store")
        )
        return self._runner

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.training.run import train_model

        with self.fail_fast():
            runner = self.runner(context)
            if self.deferrable and runner.supports_deferral:
                return self.execute_deferrable(context)
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            mirror = self.hook.get_model_mirror()
            try:
                self.trained = train_model(
                    warehouse, self.spec, str(self.pipeline), runner, mirror=mirror, **self.options(context)
                )
                return self.trained
            finally:
                self.persist_link(context)

    def execute_deferrable(self, context: Context) -> dict[str, Any]:
        """Reattach to this run's Vertex AI job or export the data and submit one, then wait in the triggerer."""
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner
        from airflow_ml_provider.core.training.run import start_training_job
        from airflow_ml_provider.triggers.vertex_ai import VertexTrainingJobTrigger

        vertex = self._runner
        assert isinstance(vertex, VertexTrainingRunner)  # the only runner that supports deferral
        warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
        job = start_training_job(warehouse, self.spec, str(self.pipeline), vertex, **self.options(context))
        if vertex.job_name is None:  # not reattached: the data was just exported
            vertex.job_name = vertex.submit(job, vertex.state_store)
        self.persist_link(context)
        config = self.hook.config
        self.defer(
            trigger=VertexTrainingJobTrigger(
                job_name=str(vertex.job_name),
                project=vertex.project,
                location=vertex.region,
                gcp_conn_id=config.gcp_conn_id,
                impersonation_chain=config.impersonation_chain,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            kwargs=job_kwargs(job),
        )

    def execute_complete(self, context: Context, event: dict[str, Any], **job: Any) -> dict[str, Any]:
        """Resume after the trigger: fail with the job's console URL, or register the trained model."""
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner
        from airflow_ml_provider.core.registry.models import ModelRegistry
        from airflow_ml_provider.core.training.run import (
            prepare_training_job,
            read_trained_envelope,
            register_trained_model,
        )

        with self.fail_fast():
            vertex = self.runner(context)
            assert isinstance(vertex, VertexTrainingRunner)
            vertex.raise_for_event(event)
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            # `airflow dags test` resumes a deferred task with the trigger's event only (it drops the
            # deferral's kwargs; the triggerer keeps them). The job is deterministic per run: rebuild it.
            trained = (
                job_from_kwargs(job)
                if job
                else prepare_training_job(
                    warehouse, self.spec, str(self.pipeline), export=False, **self.options(context)
                )
            )
            envelope = read_trained_envelope(trained, self.hook.get_artifacts())
            registry = ModelRegistry(warehouse, artifact_root=self.hook.config.artifacts_uri)
            self.trained = register_trained_model(
                registry, trained, envelope, mirror=self.hook.get_model_mirror(), logger=self.log
            )
            return self.trained

    def lineage(self) -> Lineage:
        """Reads the feature and label tables; writes ``ml_models`` and the model's artifact folder."""
        from airflow_ml_provider.core.registry.models import TABLE as MODELS_TABLE
        from airflow_ml_provider.operators.lineage import Lineage

        spec = self.spec
        uri = (getattr(self, "trained", None) or {}).get("uri")
        return Lineage(
            input_tables=[spec.feature_table, spec.label.step.table],
            output_tables=[MODELS_TABLE],
            output_artifacts=[uri] if uri else [],
        )

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.cancel()

    def options(self, context: Context) -> dict[str, Any]:
        """The training stage's options for this run: a version per (run date, run), so a retry reattaches."""
        run_date = parse_date(self.run_date, "run_date")
        return {
            "run_date": run_date,
            "version": model_version(run_date, context["ti"].run_id),
            "artifacts_root": self.hook.config.artifacts_uri,
            "model_name": self.model_name,
            "git_sha": self.git_sha,
            "labels": self.job_labels(context),
            "artifacts": self.hook.get_artifacts(),
            "logger": self.log,
        }

    def persist_link(self, context: Context) -> None:
        """The Vertex AI job's console page, when the runner has a job."""
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner

        if isinstance(self._runner, VertexTrainingRunner) and self._runner.job_name:
            VertexTrainingJobLink.persist(context, self._runner.console_url(self._runner.job_name))


def job_kwargs(job: TrainingJob) -> dict[str, Any]:
    """The job as JSON-able keyword arguments, to carry it across a deferral."""
    return {**dataclasses.asdict(job), "validation_from": job.validation_from.isoformat()}


def job_from_kwargs(kwargs: dict[str, Any]) -> TrainingJob:
    """The inverse of ``job_kwargs``."""
    return TrainingJob(**{**kwargs, "validation_from": dt.date.fromisoformat(kwargs["validation_from"])})
