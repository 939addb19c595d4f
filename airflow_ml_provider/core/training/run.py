"""Running a training job: the one way the training stage runs (TrainModelOperator, ``airflow-ml train``, benches).

``prepare_training_job`` works out the job (deterministic for a version), checks ``model.py``,
exports the training data and stages the contract next to the run; ``register_trained_model``
registers what the trainer wrote as a candidate (and in the backend's own registry);
``train_model`` is both around a blocking ``TrainingRunner`` (the local subprocess, or a
Vertex AI CustomJob waited on). The operator's deferrable Vertex AI path uses the same two halves
around its trigger.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.training.job import (
    TrainingJob,
    check_model_hooks,
    training_data_sql,
    training_params,
    truth_data_sql,
    truth_params,
)

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.registry.promotion import ModelMirror
    from airflow_ml_provider.core.training.envelope import Envelope
    from airflow_ml_provider.core.warehouse.interface import Warehouse

log = logging.getLogger(__name__)

#: The trainer's candidate metrics kept in the summary (XCom, ``airflow-ml train --json``).
SUMMARY_METRICS = ("ndcg", "ndcg_binary", "recall", "precision", "map", "coverage", "lists", "users")


class TrainingRunner(Protocol):
    """Where the trainer runs: ``backends.local_trainer`` (a subprocess) or ``backends.vertex`` (a CustomJob)."""

    def reattach(self, job: TrainingJob) -> bool:
        """Whether a job of this run is already running or done (then ``run`` waits for it, no new export)."""

    def run(self, job: TrainingJob) -> None:
        """Run (or wait for the reattached) job to the end; raise if it failed."""

    def cancel(self) -> None:
        """End the running job (``on_kill``)."""


def prepare_training_job(
    warehouse: Warehouse,
    spec: PipelineSpec,
    pipeline: str | Path,
    *,
    run_date: dt.date,
    version: str,
    artifacts_root: str,
    model_name: str | None = None,
    git_sha: str | None = None,
    labels: dict[str, str] | None = None,
    artifacts: storage.Artifacts = storage.DEFAULT_ARTIFACTS,
    export: bool = True,
    logger: Any = None,
) -> TrainingJob:
    """The training job of ``version``: the data exported and the contract (and model.py) staged beside it.

    ``export=False`` only works out the job (it is deterministic), e.g. to look for one already
    started. With ``export``, a broken ``model.py`` fails before any data moves.
    """
    from airflow_ml_provider.core.registry.models import ModelRegistry

    name = model_name or spec.name
    run_dir = storage.join(artifacts_root, name, version)
    params = training_params(spec, run_date)
    data_uri = storage.join(run_dir, "data")
    truth_sql = truth_data_sql(spec)
    truth_uri = storage.join(run_dir, "truth") if truth_sql else None
    pipeline_uri = storage.join(run_dir, "inputs", "pipeline.yaml")
    hooks_file = Path(str(pipeline)).parent / str(spec.model.hooks) if spec.model.hooks else None
    hooks_uri = storage.join(run_dir, "inputs", "model.py") if hooks_file else None
    registry = ModelRegistry(warehouse, artifact_root=artifacts.root)
    registry.ensure()
    # The trainer scores the current champion on this run's test window for the gate.
    champion = registry.champion(name)
    if champion is not None and champion.version != version:
        registry.check_artifacts(champion, artifacts.exists)
    if export:
        check_model_hooks(spec, str(pipeline))
        (logger or log).info(
            "Training %s %s: train %s..%s, test %s..%s, artifacts in %s",
            name,
            version,
            params["train_start"],
            params["train_end"],
            params["validation_start"],
            params["validation_end"],
            run_dir,
        )
        if spec.model.sample_users < 1 or spec.evaluation.sample_users < 1:
            (logger or log).info(
                "Training on %.4g of the users (model.sample_users) and judging %.4g of them in the test window "
                "(evaluation.sample_users), by FARM_FINGERPRINT of the user id",
                spec.model.sample_users,
                spec.evaluation.sample_users,
            )
        data_uri = warehouse.export_parquet(training_data_sql(spec), params, data_uri, source="training data export")
        if truth_sql and truth_uri:
            truth_uri = warehouse.export_parquet(
                truth_sql, truth_params(spec, run_date), truth_uri, source="evaluation truth export"
            )
        artifacts.write_bytes(pipeline_uri, Path(str(pipeline)).read_bytes())
        if hooks_file is not None and hooks_uri is not None:
            artifacts.write_bytes(hooks_uri, hooks_file.read_bytes())
    return TrainingJob(
        model_name=name,
        version=version,
        run_dir=run_dir,
        pipeline_uri=pipeline_uri,
        data_uri=data_uri,
        validation_from=params["validation_start"],
        hooks_uri=hooks_uri,
        git_sha=git_sha,
        champion_dir=champion.uri if champion and champion.version != version else None,
        labels=dict(labels or {}),
        truth_uri=truth_uri,
    )


def read_trained_envelope(job: TrainingJob, artifacts: storage.Artifacts = storage.DEFAULT_ARTIFACTS) -> Envelope:
    """The envelope the trainer wrote for ``job``."""
    from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE, parse_envelope

    uri = storage.join(job.model_dir, ENVELOPE_FILE)
    return parse_envelope(artifacts.read_text(uri), uri)


def register_trained_model(
    registry: ModelRegistry,
    job: TrainingJob,
    envelope: Envelope,
    *,
    mirror: ModelMirror | None = None,
    logger: Any = None,
) -> dict[str, Any]:
    """Register the trained model as a candidate (and upload it to the backend's registry); a JSON-able summary."""
    registry.register_trained(envelope, job.model_dir)
    metrics = envelope.metrics
    k, scope, base_name = metrics["k"], metrics.get("scope", "candidates"), metrics.get("baseline_name")
    model, baseline = metrics["model"], metrics["baseline"]
    recall = metrics.get("candidate_recall")
    (logger or log).info(
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
    summary: dict[str, Any] = {
        "model_name": envelope.name,
        "version": envelope.version,
        "uri": job.model_dir,
        "k": k,
        "scope": scope,
        "baseline_name": base_name,
        "candidate_recall": recall,
        "test_dates": metrics.get("test_dates"),
        "lift_ci": metrics.get("lift_ci"),
        "model": {m: round(model[m], 6) for m in SUMMARY_METRICS if m in model},
        "baseline": {m: round(baseline[m], 6) for m in SUMMARY_METRICS if m in baseline},
        # The simple rankers the gate's baseline was the strongest of (evaluation.baseline: strongest).
        "baselines": metrics.get("baselines"),
    }
    if mirror is not None:
        summary["vertex_model"] = mirror.upload_model_version(envelope, job.model_dir, labels=job.labels)
    return summary


def start_training_job(
    warehouse: Warehouse, spec: PipelineSpec, pipeline: str | Path, runner: TrainingRunner, **options: Any
) -> TrainingJob:
    """The job of this version: one ``runner`` already started (reattached), else exported afresh.

    A job a previous try started still reads its export, so it is never exported over.
    ``options`` are ``prepare_training_job``'s.
    """
    job = prepare_training_job(warehouse, spec, pipeline, export=False, **options)
    if runner.reattach(job):
        return job
    return prepare_training_job(warehouse, spec, pipeline, **options)


def train_model(
    warehouse: Warehouse,
    spec: PipelineSpec,
    pipeline: str | Path,
    runner: TrainingRunner,
    *,
    run_date: dt.date,
    version: str,
    artifacts_root: str,
    model_name: str | None = None,
    git_sha: str | None = None,
    labels: dict[str, str] | None = None,
    artifacts: storage.Artifacts = storage.DEFAULT_ARTIFACTS,
    mirror: ModelMirror | None = None,
    logger: Any = None,
) -> dict[str, Any]:
    """Export, train on ``runner`` and register a candidate; return the registration summary.

    A version whose model is already written (a retried task after training finished) is only
    registered; a job of this version already running is waited for, never exported over.
    """
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE

    options: dict[str, Any] = {
        "run_date": run_date,
        "version": version,
        "artifacts_root": artifacts_root,
        "model_name": model_name,
        "git_sha": git_sha,
        "labels": labels,
        "artifacts": artifacts,
        "logger": logger,
    }
    job = prepare_training_job(warehouse, spec, pipeline, export=False, **options)
    registry = ModelRegistry(warehouse, artifact_root=artifacts.root)
    if artifacts.exists(storage.join(job.model_dir, ENVELOPE_FILE)):
        (logger or log).info("Found the finished model of this run at %s; registering it", job.model_dir)
    else:
        job = start_training_job(warehouse, spec, pipeline, runner, **options)
        runner.run(job)
    return register_trained_model(registry, job, read_trained_envelope(job, artifacts), mirror=mirror, logger=logger)
