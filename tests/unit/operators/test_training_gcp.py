"""TrainModelOperator on the gcp backend: Vertex AI submission, deferral, reattach on retry, registry upload.

The Google provider's real Vertex AI hooks and clients talk to the local Vertex AI endpoint,
and artifacts go through ObjectStoragePath/gcsfs to the local GCS (tests/fakes/). Only the
warehouse is stood in for: a real DuckDB warehouse (for ml_models and the training data) whose
``export_parquet`` writes Parquet shards to the local GCS as BigQuery's EXPORT DATA would.
Where a test runs the job, the endpoint runs the real trainer entrypoint as the job's process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.backends.vertex import STATE_STORE_KEY, VertexJobPollError
from airflow_ml_provider.core import storage
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.training.job import model_version
from airflow_ml_provider.hooks.ml_platform import MLPlatformHook
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.operators.evaluation import EvaluateAndPromoteOperator
from airflow_ml_provider.operators.training import TrainModelOperator, job_from_kwargs
from airflow_ml_provider.triggers.vertex_ai import VertexTrainingJobTrigger
from tests.fakes.gcs import GcsEndpoint
from tests.fakes.vertex import PROJECT_NUMBER, VertexEndpoint
from tests.unit.backends.test_vertex import IMAGE, PROJECT, REGION, DictStore, envelope

DS = "2026-03-24"  # TRAINING_RUN_DATE of the training_warehouse_file fixture
RUN_ID = "scheduled__2026-03-24T04:00:00+00:00"
VERSION = model_version(dt.date(2026, 3, 24), RUN_ID)
RUN_DIR = f"gs://my-bucket/airflow-ml/recsys/{VERSION}"
SA = "trainer@my-project.iam.gserviceaccount.com"
JOB_1001 = f"projects/{PROJECT_NUMBER}/locations/{REGION}/customJobs/1001"
METRICS = {
    "k": 10,
    "model": {"ndcg": 0.31, "recall": 0.4, "precision": 0.1, "map": 0.2, "coverage": 0.5},
    "baseline": {"ndcg": 0.22, "recall": 0.3, "precision": 0.08, "map": 0.15, "coverage": 0.1},
}


class ExportStub(DuckDBWarehouse):
    """A DuckDB warehouse whose EXPORT DATA writes Parquet shards to the local GCS, as BigQuery's does.

    Why a stand-in here: these tests isolate the training task's Vertex AI behaviours (reattach,
    retry, cancel) on a prebuilt feature warehouse; BigQuery's own EXPORT DATA runs through the
    real client against the local BigQuery in tests/unit/backends/test_bigquery.py and in the
    whole gcp pipeline (tests/integration/test_gcp_pipeline.py).
    """

    gcs: GcsEndpoint
    exports: list[tuple[str, dict[str, Any], str]]

    def export_parquet(self, sql: str, params: Any, uri: str, *, source: str = "<sql>") -> str:
        self.exports.append((sql, dict(params or {}), uri))
        local = storage.local_path(super().export_parquet(sql, params, str(self.path.parent / "export"), source=source))
        assert local is not None
        self.gcs.write_bytes(f"{uri.rstrip('/')}/part-000000000000.parquet", local.read_bytes())
        return uri.rstrip("/")


class FakeTI:
    def __init__(self, run_id: str = RUN_ID) -> None:
        self.dag_id, self.task_id, self.run_id = "recsys_training", "train", run_id
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Edge:
    """The local cloud: Vertex AI and GCS endpoints, plus the warehouse stand-in."""

    def __init__(self, vertex: VertexEndpoint, gcs: GcsEndpoint, warehouse: ExportStub, pipeline: Path) -> None:
        self.vertex, self.gcs, self.warehouse, self.pipeline = vertex, gcs, warehouse, pipeline
        self.warehouse_labels: list[dict[str, str] | None] = []

    def created(self) -> list[Any]:
        return self.vertex.calls("CreateCustomJob")

    def uploads(self) -> list[Any]:
        return self.vertex.calls("UploadModel")

    def write_envelope(self, version: str = VERSION) -> None:
        """What a finished trainer leaves in AIP_MODEL_DIR, for tests that do not run it."""
        env = envelope(version).model_copy(update={"metrics": METRICS})
        self.gcs.write_text(f"{RUN_DIR}/model/envelope.json", env.model_dump_json())


@pytest.fixture
def edge(vertex_endpoint, gcs_endpoint, training_warehouse_file, fast_pipeline_file, tmp_path, monkeypatch) -> Edge:
    vertex_endpoint.run_jobs = False  # jobs wait in PENDING unless a test releases them
    path = tmp_path / "wh" / "warehouse.duckdb"
    path.parent.mkdir()
    shutil.copy(training_warehouse_file, path)
    warehouse = ExportStub(path, lock_timeout=10)
    warehouse.gcs, warehouse.exports = gcs_endpoint, []
    e = Edge(vertex_endpoint, gcs_endpoint, warehouse, fast_pipeline_file)
    extra = {
        "backend": "gcp",
        "project": PROJECT,
        "location": REGION,
        "dataset": "recsys",
        "staging_bucket": "gs://my-bucket",
        "training_image_uri": IMAGE,
        "training_service_account": SA,
    }
    set_connection(monkeypatch, extra)

    def get_warehouse(self: MLPlatformHook, labels: dict[str, str] | None = None) -> DuckDBWarehouse:
        e.warehouse_labels.append(labels)
        return warehouse

    # The one stand-in (see ExportStub): artifacts and Vertex AI are the real path.
    monkeypatch.setattr(MLPlatformHook, "get_warehouse", get_warehouse)
    return e


def set_connection(monkeypatch, extra: dict[str, Any]) -> None:
    conn = {"conn_type": "ml_platform", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps(conn))


def operator(edge: Edge, **kwargs: Any) -> TrainModelOperator:
    with DAG("recsys_training", schedule=None):
        return TrainModelOperator(task_id="train", pipeline=str(edge.pipeline), git_sha="abc123", **kwargs)


def context(ti: FakeTI | None = None, store: DictStore | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ds": DS, "ti": ti or FakeTI()}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def defer(edge: Edge, ctx: dict[str, Any], **kwargs: Any) -> tuple[TrainModelOperator, TaskDeferred]:
    """Run execute as the task runner would; it must defer."""
    op = operator(edge, **kwargs)
    op.render_template_fields(ctx)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    return op, deferred.value


def trigger_events(trigger: VertexTrainingJobTrigger) -> list[dict[str, Any]]:
    """Run the deferred trigger against the endpoint as the triggerer would."""

    async def collect() -> list[dict[str, Any]]:
        try:
            return [e.payload async for e in trigger.run()]
        finally:
            await trigger.cleanup()

    return asyncio.run(collect())


def test_gcp_execute_submits_the_job_and_defers_to_the_trigger(edge):
    ctx = context()
    op, deferred = defer(edge, ctx, poll_interval=30)

    (request,) = edge.created()
    trigger = deferred.trigger
    assert isinstance(trigger, VertexTrainingJobTrigger)
    assert deferred.method_name == "execute_complete"
    assert trigger.serialize()[1] == {
        "job_name": JOB_1001,
        "project": PROJECT,
        "location": REGION,
        "gcp_conn_id": "google_cloud_default",
        "impersonation_chain": None,
        "poll_interval": 30,
    }
    json.dumps(deferred.kwargs)  # next_kwargs must be serialisable
    job = job_from_kwargs(deferred.kwargs)
    assert job.model_dir == f"{RUN_DIR}/model"

    # The request Vertex AI receives: the trainer with the exported data and staged contract.
    (sql, params, export_uri) = edge.warehouse.exports[0]
    assert export_uri == f"{RUN_DIR}/data" and "FROM features" in sql and set(params) >= {"train_start", "train_end"}
    assert edge.gcs.objects(f"{RUN_DIR}/data") == [f"{RUN_DIR}/data/part-000000000000.parquet"]
    assert request.parent == f"projects/{PROJECT}/locations/{REGION}"
    custom_job = request.custom_job
    container = custom_job.job_spec.worker_pool_specs[0].container_spec
    assert container.image_uri == IMAGE
    assert list(container.args) == job.args()
    args = dict(zip(container.args[::2], container.args[1::2], strict=False))
    assert args["--train-data"] == f"{RUN_DIR}/data"
    # End-to-end evaluation reads every positive of the label table, exported next to the data.
    (truth_sql, _, truth_uri) = edge.warehouse.exports[1]
    assert truth_uri == f"{RUN_DIR}/truth" == args["--truth-data"] and "FROM labels" in truth_sql
    assert args["--pipeline"] == f"{RUN_DIR}/inputs/pipeline.yaml"
    assert args["--model-version"] == VERSION and args["--git-sha"] == "abc123"
    assert edge.gcs.read_text(args["--pipeline"]) == edge.pipeline.read_text()
    assert edge.gcs.read_text(args["--hooks"]) == (edge.pipeline.parent / "model.py").read_text()
    assert {(e.name, e.value) for e in container.env} >= {("AIP_MODEL_DIR", f"{RUN_DIR}/model")}
    assert custom_job.job_spec.service_account == SA
    assert custom_job.job_spec.base_output_directory.output_uri_prefix == RUN_DIR
    assert custom_job.display_name == f"recsys-{VERSION}"
    labels = custom_job.labels
    assert (labels["airflow-dag"], labels["airflow-task"], labels["aml-version"]) == (
        "recsys_training",
        "train",
        VERSION,
    )
    assert labels["airflow-run"].startswith("scheduled__2026-03-24")

    # Link.
    assert ctx["ti"].xcom[VertexTrainingJobLink.key] == (
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/training/1001/cpu?project={PROJECT}"
    )
    assert op.operator_extra_links[0].name == "Vertex AI Training Job"


def test_hooks_and_trigger_carry_the_connections_impersonation_chain(edge, monkeypatch):
    chain = ["airflow@my-project.iam.gserviceaccount.com"]
    conn = json.loads(os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"])
    set_connection(monkeypatch, {**conn["extra"], "impersonation_chain": chain})
    op = operator(edge)
    runner = op.runner(context())
    assert runner.hook.impersonation_chain == chain and runner.model_hook.impersonation_chain == chain
    assert runner.hook.gcp_conn_id == "google_cloud_default"


@pytest.mark.parametrize("with_store", [False, True], ids=["labels", "task_state_store"])
def test_retried_task_reattaches_without_exporting_or_submitting_again(edge, with_store):
    store = DictStore() if with_store else None
    _, first = defer(edge, context(store=store))
    edge.vertex.set_state(first.trigger.job_name, "JOB_STATE_RUNNING")
    _, second = defer(edge, context(store=store))  # a new try: new operator instance, same run

    assert second.trigger.job_name == first.trigger.job_name
    assert len(edge.created()) == 1
    assert len(data_exports(edge)) == 1  # never export over the data a live job reads
    assert second.kwargs == first.kwargs
    if store is not None:
        assert store == {STATE_STORE_KEY: first.trigger.job_name}


def data_exports(edge) -> list[tuple[str, dict[str, Any], str]]:
    """The training-data exports (each run also exports the evaluation truth next to them)."""
    return [e for e in edge.warehouse.exports if e[2].endswith("/data")]


def test_retry_after_a_failed_job_exports_and_submits_a_new_one(edge):
    _, first = defer(edge, context())
    edge.vertex.set_state(first.trigger.job_name, "JOB_STATE_FAILED", error="OOM")
    _, second = defer(edge, context())
    assert second.trigger.job_name != first.trigger.job_name
    assert len(edge.created()) == 2 and len(data_exports(edge)) == 2


def test_the_job_runs_the_real_trainer_with_vertex_env_and_gcs_artifacts(edge):
    """The CustomJob's process is the trainer entrypoint: it reads the export and writes the model to GCS."""
    op, deferred = defer(edge, context(), poll_interval=0.2)
    name = deferred.trigger.job_name
    edge.vertex.release(name)
    events = trigger_events(deferred.trigger)
    job = edge.vertex.job(name)
    assert events[0]["status"] == "success", job.stderr()[-3000:]
    assert job.env["AIP_MODEL_DIR"] == f"{RUN_DIR}/model/"  # as Vertex AI sets it, from base_output_directory
    assert job.env["AIP_CHECKPOINT_DIR"] == f"{RUN_DIR}/checkpoints/"
    assert job.env["STORAGE_EMULATOR_HOST"] == edge.gcs.url
    written = edge.gcs.objects(f"{RUN_DIR}/model")
    assert {f"{RUN_DIR}/model/envelope.json", f"{RUN_DIR}/model/model.txt"} <= set(written)
    assert edge.gcs.read_text(f"{RUN_DIR}/model/model.txt").startswith("tree\n")  # LightGBM text, never a pickle

    result = op.execute_complete(context(), events[0], **deferred.kwargs)
    assert result["version"] == VERSION and result["model"]["ndcg"] > 0
    assert result["vertex_model"] == f"projects/{PROJECT_NUMBER}/locations/{REGION}/models/recsys@1"
    record = ModelRegistry(edge.warehouse).get("recsys", VERSION)
    assert (record.status, record.uri) == ("candidate", f"{RUN_DIR}/model")

    # The gate passes on the trained metrics: the champion alias lands on the uploaded version.
    with DAG("recsys_training", schedule=None):
        promote = EvaluateAndPromoteOperator(task_id="promote", pipeline=str(edge.pipeline), version=VERSION)
    assert promote.execute(context())["promoted"] is True
    assert edge.vertex.aliases("recsys") == {"1": ["champion", "default", f"v-{VERSION}"]}
    assert ModelRegistry(edge.warehouse).champion("recsys").version == VERSION


def test_execute_complete_registers_the_candidate_and_uploads_a_vertex_model_version(edge):
    op, deferred = defer(edge, context())
    edge.write_envelope()
    event = {"status": "success", "job_name": deferred.trigger.job_name, "state": "JOB_STATE_SUCCEEDED"}

    result = op.execute_complete(context(), event, **deferred.kwargs)

    assert result["model_name"] == "recsys" and result["version"] == VERSION
    assert result["uri"] == f"{RUN_DIR}/model"
    assert result["vertex_model"] == f"projects/{PROJECT_NUMBER}/locations/{REGION}/models/recsys@1"
    json.dumps(result)
    record = ModelRegistry(edge.warehouse).get("recsys", VERSION)
    assert (record.status, record.uri) == ("candidate", f"{RUN_DIR}/model")
    (upload,) = edge.uploads()
    assert upload.model.artifact_uri == f"{RUN_DIR}/model"
    assert list(upload.model.version_aliases) == [f"v-{VERSION}"]
    assert upload.model.labels["airflow-dag"] == "recsys_training"


def test_execute_complete_without_the_deferral_kwargs_rebuilds_the_job(edge):
    """`airflow dags test` resumes with the event only (Airflow drops next_kwargs there): same result."""
    op, deferred = defer(edge, context())
    edge.write_envelope()
    event = {"status": "success", "job_name": deferred.trigger.job_name, "state": "JOB_STATE_SUCCEEDED"}

    result = op.execute_complete(context(), event)

    assert (result["version"], result["uri"]) == (VERSION, f"{RUN_DIR}/model")
    assert ModelRegistry(edge.warehouse).get("recsys", VERSION).status == "candidate"


def test_execute_complete_is_idempotent_on_retry(edge):
    op, deferred = defer(edge, context())
    edge.write_envelope()
    event = {"status": "success", "job_name": deferred.trigger.job_name, "state": "JOB_STATE_SUCCEEDED"}
    first = op.execute_complete(context(), event, **deferred.kwargs)
    again = operator(edge).execute_complete(context(), event, **deferred.kwargs)
    assert again == first
    assert len(edge.uploads()) == 1
    assert [r.version for r in ModelRegistry(edge.warehouse).list("recsys")] == [VERSION]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"status": "error", "state": "JOB_STATE_FAILED", "message": "Replica workerpool0-0 exited 1"},
            r"customJobs/1001 failed \(JOB_STATE_FAILED\): Replica workerpool0-0 exited 1\. Logs: https://",
        ),
        ({"status": "cancelled", "state": "JOB_STATE_CANCELLED", "message": "x"}, r"customJobs/1001 was cancelled"),
    ],
)
def test_failed_or_cancelled_job_fails_the_task_naming_job_and_console(edge, event, message):
    op, deferred = defer(edge, context())
    with pytest.raises(AirflowFailException, match=message) as failed:
        op.execute_complete(context(), {**event, "job_name": deferred.trigger.job_name}, **deferred.kwargs)
    assert f"training/1001/cpu?project={PROJECT}" in str(failed.value)
    assert edge.uploads() == []


def test_polling_failure_is_retryable(edge):
    op, deferred = defer(edge, context())
    event = {"status": "error", "job_name": deferred.trigger.job_name, "state": None, "message": "503"}
    with pytest.raises(VertexJobPollError, match="A retry reattaches"):
        op.execute_complete(context(), event, **deferred.kwargs)


def test_non_deferrable_polls_to_success(edge):
    """Polls in the worker until the job ends (the trainer itself runs in the test above and in test_gcp_retry)."""
    op = operator(edge, deferrable=False, poll_interval=0.05)

    def finish_once_polled() -> None:
        while len(edge.vertex.calls("GetCustomJob")) < 2:
            threading.Event().wait(0.02)
        edge.write_envelope()
        edge.vertex.set_state(JOB_1001, "JOB_STATE_SUCCEEDED")

    finisher = threading.Thread(target=finish_once_polled, daemon=True)
    finisher.start()
    ctx = context()
    op.render_template_fields(ctx)
    result = op.execute(ctx)
    finisher.join(5)
    assert result["vertex_model"].endswith("models/recsys@1")
    assert len(edge.created()) == 1
    assert len(edge.vertex.calls("GetCustomJob")) >= 2  # it polled while the job ran


def test_on_kill_cancels_the_vertex_job(edge):
    op = operator(edge, deferrable=False, poll_interval=0.05)

    def kill_once_submitted() -> None:  # the worker is told to stop while the job runs
        while not edge.vertex.calls("GetCustomJob"):
            threading.Event().wait(0.02)
        op.on_kill()

    killer = threading.Thread(target=kill_once_submitted, daemon=True)
    killer.start()
    ctx = context()
    op.render_template_fields(ctx)
    with pytest.raises(AirflowFailException, match="was cancelled"):
        op.execute(ctx)
    killer.join(5)
    assert [r.name.rsplit("/", 1)[-1] for r in edge.vertex.calls("CancelCustomJob")] == ["1001"]
    assert edge.vertex.job(JOB_1001).state == "JOB_STATE_CANCELLED"


def test_missing_training_image_fails_before_any_export_or_job(edge, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"])
    del conn["extra"]["training_image_uri"]
    set_connection(monkeypatch, conn["extra"])
    op = operator(edge)
    ctx = context()
    op.render_template_fields(ctx)
    with pytest.raises(AirflowFailException, match=r"needs `training_image_uri` in the ml_platform connection"):
        op.execute(ctx)
    assert edge.warehouse.exports == [] and edge.created() == []
