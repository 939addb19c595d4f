"""TrainModelOperator: export training data, run the trainer, register a candidate model."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE, Envelope, parse_envelope
from airflow_ml_provider.core.training.job import (
    TrainingJob,
    check_model_hooks,
    model_version,
    training_data_sql,
    training_params,
    truth_data_sql,
)
from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.backends.vertex import VertexTrainingRunner
    from airflow_ml_provider.core.registry.models import ModelRegistry


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
        self._runner: LocalTrainingRunner | None = None
        self._vertex_job: str | None = None

    @cached_property
    def registry(self) -> ModelRegistry:
        """The ml_models table on the connection's warehouse."""
        from airflow_ml_provider.core.registry.models import ModelRegistry

        registry = ModelRegistry(self.hook.get_warehouse())
        registry.ensure()
        return registry

    @cached_property
    def vertex(self) -> VertexTrainingRunner:
        """The Vertex AI runner of the ``gcp`` backend."""
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner

        return VertexTrainingRunner(self.hook.config)

    def execute(self, context: Context) -> dict[str, Any]:
        with self.fail_fast():
            if self.hook.config.backend == "gcp":
                return self.execute_on_vertex(context)
            job = self.prepare_job(context, export=False)
            if self.hook.artifact_path(storage.join(job.model_dir, ENVELOPE_FILE)).exists():
                # A previous try of this run finished training; register it instead of training twice.
                self.log.info("Found the finished model of this run at %s; registering it", job.model_dir)
                return self.register(job)
            job = self.prepare_job(context)
            from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner

            self._runner = LocalTrainingRunner()
            self._runner.run(job)
            return self.register(job)

    def execute_on_vertex(self, context: Context) -> dict[str, Any]:
        """Reattach to this run's Vertex AI job or export the data and submit one; then wait or defer."""
        store = context.get("task_state_store")
        job = self.prepare_job(context, export=False)
        self.vertex.validate(job)
        # A job a previous try started still reads the exported data: never export over it.
        self._vertex_job = self.vertex.find_reattachable(job, store)
        if self._vertex_job is None:
            job = self.prepare_job(context)
            self._vertex_job = self.vertex.submit(job, store)
        VertexTrainingJobLink.persist(context, self.vertex.console_url(self._vertex_job))
        if self.deferrable:
            from airflow_ml_provider.triggers.vertex_ai import VertexTrainingJobTrigger

            config = self.hook.config
            self.defer(
                trigger=VertexTrainingJobTrigger(
                    job_name=self._vertex_job,
                    project=self.vertex.project,
                    location=self.vertex.region,
                    gcp_conn_id=config.gcp_conn_id,
                    impersonation_chain=config.impersonation_chain,
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
                kwargs=job_kwargs(job),
            )
        self.vertex.wait(self._vertex_job, self.poll_interval)
        return self.register_vertex(job)

    def execute_complete(self, context: Context, event: dict[str, Any], **job: Any) -> dict[str, Any]:
        """Resume after the trigger: fail with the job's console URL, or register the trained model."""
        with self.fail_fast():
            self.vertex.raise_for_event(event)
            # `airflow dags test` resumes a deferred task with the trigger's event only (it drops the
            # deferral's kwargs; the triggerer keeps them). The job is deterministic per run: rebuild it.
            return self.register_vertex(job_from_kwargs(job) if job else self.prepare_job(context, export=False))

    def register_vertex(self, job: TrainingJob) -> dict[str, Any]:
        """Register the candidate in ml_models and upload it as a Vertex AI Model Registry version."""
        envelope = self.read_envelope(job)
        result = self.register(job, envelope)
        result["vertex_model"] = self.vertex.upload_model_version(envelope, job.model_dir, labels=job.labels)
        return result

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        if self._vertex_job is not None:
            self.vertex.cancel(self._vertex_job)

    def prepare_job(self, context: Context, *, export: bool = True) -> TrainingJob:
        """Export the training data and stage the contract (and model.py) next to the run.

        ``export=False`` only works out the (deterministic) job, e.g. to look for one already started.
        """
        spec = self.spec
        run_date = parse_date(self.run_date, "run_date")
        name = self.model_name or spec.name
        version = model_version(run_date, context["ti"].run_id)
        run_dir = storage.join(self.hook.config.artifacts_uri, name, version)
        params = training_params(spec, run_date)
        data_uri = storage.join(run_dir, "data")
        truth_sql = truth_data_sql(spec)
        truth_uri = storage.join(run_dir, "truth") if truth_sql else None
        pipeline_uri = storage.join(run_dir, "inputs", "pipeline.yaml")
        hooks_uri = storage.join(run_dir, "inputs", "model.py") if spec.model.hooks else None
        # The trainer scores the current champion on this run's validation rows for the gate.
        champion = self.registry.champion(name)
        if export:
            check_model_hooks(spec, str(self.pipeline))  # a broken model.py fails before any data moves
            self.log.info(
                "Training %s %s: train %s..%s, validate %s..%s",
                name,
                version,
                params["train_start"],
                params["train_end"],
                params["validation_start"],
                params["validation_end"],
            )
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            data_uri = warehouse.export_parquet(
                training_data_sql(spec), params, data_uri, source="training data export"
            )
            if truth_sql and truth_uri:
                truth_uri = warehouse.export_parquet(truth_sql, params, truth_uri, source="evaluation truth export")
            self._stage(self.pipeline, pipeline_uri)
            if hooks_uri is not None:
                from pathlib import Path

                self._stage(Path(str(self.pipeline)).parent / str(spec.model.hooks), hooks_uri)
        return TrainingJob(
            model_name=name,
            version=version,
            run_dir=run_dir,
            pipeline_uri=pipeline_uri,
            data_uri=data_uri,
            validation_from=params["validation_start"],
            hooks_uri=hooks_uri,
            git_sha=self.git_sha,
            champion_dir=champion.uri if champion and champion.version != version else None,
            labels=self.job_labels(context),
            truth_uri=truth_uri,
        )

    def _stage(self, local: Any, uri: str) -> str:
        from pathlib import Path

        target = self.hook.artifact_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Path(str(local)).read_text(encoding="utf-8"))
        return uri

    def read_envelope(self, job: TrainingJob) -> Envelope:
        """The envelope the trainer wrote (through ObjectStoragePath, with the connection's credentials)."""
        uri = storage.join(job.model_dir, ENVELOPE_FILE)
        return parse_envelope(self.hook.artifact_path(uri).read_text(), uri)

    def register(self, job: TrainingJob, envelope: Envelope | None = None) -> dict[str, Any]:
        """Register the trained model as a candidate; return a small summary for XCom."""
        envelope = envelope or self.read_envelope(job)
        self.registry.register_trained(envelope, job.model_dir)
        metrics = envelope.metrics
        k, scope, base_name = metrics["k"], metrics.get("scope", "candidates"), metrics.get("baseline_name")
        model, baseline = metrics["model"], metrics["baseline"]
        recall = metrics.get("candidate_recall")
        self.log.info(
            "Registered candidate %s %s: ndcg@%d (%s, test window) %.4f vs %s %.4f; candidate recall %s",
            envelope.name,
            envelope.version,
            k,
            scope,
            model["ndcg"],
            base_name or "popularity",
            baseline["ndcg"],
            "n/a (no end-to-end truth)" if recall is None else f"{recall:.4f}",
        )
        return {
            "model_name": envelope.name,
            "version": envelope.version,
            "uri": job.model_dir,
            "k": k,
            "scope": scope,
            "baseline_name": base_name,
            "candidate_recall": metrics.get("candidate_recall"),
            "model": {m: round(model[m], 6) for m in ("ndcg", "recall", "precision", "map", "coverage")},
            "baseline": {m: round(baseline[m], 6) for m in ("ndcg", "recall", "precision", "map", "coverage")},
        }


def job_kwargs(job: TrainingJob) -> dict[str, Any]:
    """The job as JSON-able keyword arguments, to carry it across a deferral."""
    return {**dataclasses.asdict(job), "validation_from": job.validation_from.isoformat()}


def job_from_kwargs(kwargs: dict[str, Any]) -> TrainingJob:
    """The inverse of ``job_kwargs``."""
    return TrainingJob(**{**kwargs, "validation_from": dt.date.fromisoformat(kwargs["validation_from"])})
