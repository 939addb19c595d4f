"""TrainModelOperator: export training data, run the trainer, register a candidate model."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.envelope import ENVELOPE_FILE, Envelope, parse_envelope
from airflow_ml_provider.core.training import TrainingJob, model_version, training_data_sql, training_params
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.core.registry import ModelRegistry


class TrainModelOperator(MLPlatformOperator):
    """Train the contract's model for ``run_date`` on the connection's runner and register a candidate.

    ``local``: the trainer runs in a subprocess with Vertex AI's arguments and environment.
    ``gcp``: the same entrypoint runs as a Vertex AI CustomJob. The model version is derived
    from the run, so a retried task finds the job (and model) it started instead of
    training twice.

    :param run_date: the date whose windows are trained on (defaults to the logical date).
    :param model_name: defaults to the contract's ``name``.
    :param git_sha: recorded with the model (e.g. from CI).
    """

    template_fields: Sequence[str] = ("run_date", "model_name", "git_sha")
    ui_color = "#fdf1e0"

    def __init__(
        self,
        *,
        run_date: str = "{{ ds }}",
        model_name: str | None = None,
        git_sha: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_date = run_date
        self.model_name = model_name
        self.git_sha = git_sha
        self._runner: LocalTrainingRunner | None = None

    @cached_property
    def registry(self) -> ModelRegistry:
        """The ml_models table on the connection's warehouse."""
        from airflow_ml_provider.core.registry import ModelRegistry

        registry = ModelRegistry(self.hook.get_warehouse())
        registry.ensure()
        return registry

    def execute(self, context: Context) -> dict[str, Any]:
        with self.fail_fast():
            job = self.prepare_job(context)
            from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner

            self._runner = LocalTrainingRunner()
            self._runner.run(job)
            return self.register(job)

    def on_kill(self) -> None:
        if self._runner is not None:
            self._runner.cancel()

    def prepare_job(self, context: Context) -> TrainingJob:
        """Export the training data and stage the contract (and model.py) next to the run."""
        spec = self.spec
        run_date = parse_date(self.run_date, "run_date")
        name = self.model_name or spec.name
        version = model_version(run_date, context["ti"].run_id)
        run_dir = storage.join(self.hook.config.artifacts_uri, name, version)
        params = training_params(spec, run_date)
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
            training_data_sql(spec), params, storage.join(run_dir, "data"), source="training data export"
        )
        pipeline_uri = self._stage(self.pipeline, storage.join(run_dir, "inputs", "pipeline.yaml"))
        hooks_uri = None
        if spec.model.hooks:
            from pathlib import Path

            hooks_uri = self._stage(
                Path(str(self.pipeline)).parent / spec.model.hooks, storage.join(run_dir, "inputs", "model.py")
            )
        return TrainingJob(
            model_name=name,
            version=version,
            run_dir=run_dir,
            pipeline_uri=pipeline_uri,
            data_uri=data_uri,
            validation_from=params["validation_start"],
            hooks_uri=hooks_uri,
            git_sha=self.git_sha,
            labels=self.job_labels(context),
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

    def register(self, job: TrainingJob) -> dict[str, Any]:
        """Register the trained model as a candidate; return a small summary for XCom."""
        envelope = self.read_envelope(job)
        self.registry.register_candidate(
            model_name=envelope.name,
            version=envelope.version,
            uri=job.model_dir,
            metrics=envelope.metrics,
            git_sha=envelope.git_sha,
            spec_hash=envelope.spec_hash,
            created_at=envelope.created_at,
        )
        k = envelope.metrics["k"]
        model, baseline = envelope.metrics["model"], envelope.metrics["baseline"]
        self.log.info(
            "Registered candidate %s %s: ndcg@%d %.4f vs popularity %.4f",
            envelope.name,
            envelope.version,
            k,
            model["ndcg"],
            baseline["ndcg"],
        )
        return {
            "model_name": envelope.name,
            "version": envelope.version,
            "uri": job.model_dir,
            "k": k,
            "model": {m: round(model[m], 6) for m in ("ndcg", "recall", "precision", "map", "coverage")},
            "baseline": {m: round(baseline[m], 6) for m in ("ndcg", "recall", "precision", "map", "coverage")},
        }
