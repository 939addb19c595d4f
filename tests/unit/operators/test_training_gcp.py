"""TrainModelOperator on the gcp backend: Vertex AI submission, deferral, reattach on retry, registry upload.

Only the cloud edge is faked: the Google provider's Vertex AI hooks (in-memory jobs and models),
BigQuery's EXPORT DATA (returns the gs:// folder it would write) and GCS (gs:// paths map to a
local folder). The ml_models registry is a real DuckDB table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_ml_provider.backends import vertex
from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.backends.vertex import STATE_STORE_KEY, VertexJobPollError
from airflow_ml_provider.core.registry import ModelRegistry
from airflow_ml_provider.core.training import model_version
from airflow_ml_provider.hooks.ml_platform import MLPlatformHook
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.operators.training import TrainModelOperator, job_from_kwargs
from airflow_ml_provider.triggers.vertex_ai import VertexTrainingJobTrigger
from tests.paths import PIPELINE
from tests.unit.backends.test_vertex import (
    IMAGE,
    PROJECT,
    REGION,
    DictStore,
    FakeModelRegistry,
    FakeVertexJobs,
    envelope,
)

DS = "2026-03-24"
RUN_ID = "scheduled__2026-03-24T04:00:00+00:00"
VERSION = model_version(dt.date(2026, 3, 24), RUN_ID)
RUN_DIR = f"gs://my-bucket/airflow-ml/recsys/{VERSION}"
SA = "trainer@my-project.iam.gserviceaccount.com"
IMPERSONATE = ["airflow@my-project.iam.gserviceaccount.com"]


class ExportStub(DuckDBWarehouse):
    """A DuckDB warehouse (for ml_models) whose EXPORT DATA only records the request, as BigQuery's would run."""

    exports: list[tuple[str, dict[str, Any], str]]

    def export_parquet(self, sql: str, params: Any, uri: str, *, source: str = "<sql>") -> str:
        self.exports.append((sql, dict(params or {}), uri))
        return uri


class FakeTI:
    def __init__(self, run_id: str = RUN_ID) -> None:
        self.dag_id, self.task_id, self.run_id = "recsys_training", "train", run_id
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Edge:
    """The faked cloud: Vertex AI jobs and models, BigQuery exports, GCS as a local folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.jobs = FakeVertexJobs()
        self.models = FakeModelRegistry()
        self.gcs = tmp_path / "gcs"
        self.warehouse = ExportStub(tmp_path / "wh.duckdb", schema="recsys", lock_timeout=10)
        self.warehouse.exports = []
        self.hook_kwargs: list[dict[str, Any]] = []
        self.warehouse_labels: list[dict[str, str] | None] = []

    def path(self, uri: str) -> Path:
        assert uri.startswith("gs://"), uri
        return self.gcs / uri.removeprefix("gs://")

    def write_envelope(self, version: str = VERSION) -> None:
        env = envelope(version).model_copy(update={"metrics": METRICS})
        target = self.path(f"{RUN_DIR}/model/envelope.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.model_dump_json())


METRICS = {
    "k": 10,
    "model": {"ndcg": 0.31, "recall": 0.4, "precision": 0.1, "map": 0.2, "coverage": 0.5},
    "baseline": {"ndcg": 0.22, "recall": 0.3, "precision": 0.08, "map": 0.15, "coverage": 0.1},
}


@pytest.fixture
def edge(tmp_path, monkeypatch) -> Edge:
    e = Edge(tmp_path)
    extra = {
        "backend": "gcp",
        "project": PROJECT,
        "location": REGION,
        "dataset": "recsys",
        "staging_bucket": "gs://my-bucket",
        "training_image_uri": IMAGE,
        "training_service_account": SA,
        "impersonation_chain": IMPERSONATE,
    }
    set_connection(monkeypatch, extra)

    def get_warehouse(self: MLPlatformHook, labels: dict[str, str] | None = None) -> DuckDBWarehouse:
        e.warehouse_labels.append(labels)
        return e.warehouse

    def artifact_path(self: MLPlatformHook, uri: str) -> ObjectStoragePath:
        return ObjectStoragePath(e.path(uri).as_uri())

    def hook(kind: str, fake: Any):
        return lambda **kw: e.hook_kwargs.append({"hook": kind, **kw}) or fake

    monkeypatch.setattr(MLPlatformHook, "get_warehouse", get_warehouse)
    monkeypatch.setattr(MLPlatformHook, "artifact_path", artifact_path)
    monkeypatch.setattr(vertex, "CustomJobHook", hook("jobs", e.jobs.hook))
    monkeypatch.setattr(vertex, "ModelServiceHook", hook("models", e.models.hook))
    return e


def set_connection(monkeypatch, extra: dict[str, Any]) -> None:
    conn = {"conn_type": "ml_platform", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps(conn))


def operator(**kwargs: Any) -> TrainModelOperator:
    with DAG("recsys_training", schedule=None):
        return TrainModelOperator(task_id="train", pipeline=str(PIPELINE), git_sha="abc123", **kwargs)


def context(ti: FakeTI | None = None, store: DictStore | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ds": DS, "ti": ti or FakeTI()}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def defer(ctx: dict[str, Any], **kwargs: Any) -> tuple[TrainModelOperator, TaskDeferred]:
    """Run execute as the task runner would; it must defer."""
    op = operator(**kwargs)
    op.render_template_fields(ctx)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    return op, deferred.value


def test_gcp_execute_submits_the_job_and_defers_to_the_trigger(edge):
    ctx = context()
    op, deferred = defer(ctx, poll_interval=30)

    (request,) = edge.jobs.created
    name = edge.jobs.path("1001")
    trigger = deferred.trigger
    assert isinstance(trigger, VertexTrainingJobTrigger)
    assert deferred.method_name == "execute_complete"
    assert trigger.serialize()[1] == {
        "job_name": name,
        "project": PROJECT,
        "location": REGION,
        "gcp_conn_id": "google_cloud_default",
        "impersonation_chain": IMPERSONATE,
        "poll_interval": 30,
    }
    json.dumps(deferred.kwargs)  # next_kwargs must be serialisable
    job = job_from_kwargs(deferred.kwargs)
    assert job.model_dir == f"{RUN_DIR}/model"

    # The request Vertex AI receives: the trainer with the exported data and staged contract.
    (sql, params, export_uri) = edge.warehouse.exports[0]
    assert export_uri == f"{RUN_DIR}/data" and "FROM features" in sql and set(params) >= {"train_start", "train_end"}
    container = request["job_spec"]["worker_pool_specs"][0]["container_spec"]
    assert container["image_uri"] == IMAGE
    assert container["args"] == job.args()
    args = dict(zip(container["args"][::2], container["args"][1::2], strict=False))
    assert args["--train-data"] == f"{RUN_DIR}/data"
    # End-to-end evaluation reads every positive of the label table, exported next to the data.
    (truth_sql, _, truth_uri) = edge.warehouse.exports[1]
    assert truth_uri == f"{RUN_DIR}/truth" == args["--truth-data"] and "FROM labels" in truth_sql
    assert args["--pipeline"] == f"{RUN_DIR}/inputs/pipeline.yaml"
    assert args["--model-version"] == VERSION and args["--git-sha"] == "abc123"
    assert edge.path(args["--pipeline"]).read_text() == PIPELINE.read_text()
    assert {"name": "AIP_MODEL_DIR", "value": f"{RUN_DIR}/model"} in container["env"]
    assert request["job_spec"]["service_account"] == SA
    assert request["job_spec"]["base_output_directory"] == {"output_uri_prefix": RUN_DIR}
    assert request["display_name"] == f"recsys-{VERSION}"
    labels = request["labels"]
    assert (labels["airflow-dag"], labels["airflow-task"], labels["aml-version"]) == (
        "recsys_training",
        "train",
        VERSION,
    )
    assert labels["airflow-run"].startswith("scheduled__2026-03-24")

    # Credentials and link.
    assert {
        "hook": "jobs",
        "gcp_conn_id": "google_cloud_default",
        "impersonation_chain": IMPERSONATE,
    } in edge.hook_kwargs
    assert ctx["ti"].xcom[VertexTrainingJobLink.key] == (
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/training/1001/cpu?project={PROJECT}"
    )
    assert op.operator_extra_links[0].name == "Vertex AI Training Job"


@pytest.mark.parametrize("with_store", [False, True], ids=["labels", "task_state_store"])
def test_retried_task_reattaches_without_exporting_or_submitting_again(edge, with_store):
    store = DictStore() if with_store else None
    _, first = defer(context(store=store))
    edge.jobs.set_state(first.trigger.job_name, "JOB_STATE_RUNNING")
    _, second = defer(context(store=store))  # a new try: new operator instance, same run

    assert second.trigger.job_name == first.trigger.job_name
    assert len(edge.jobs.created) == 1
    assert len(data_exports(edge)) == 1  # never export over the data a live job reads
    assert second.kwargs == first.kwargs
    if store is not None:
        assert store == {STATE_STORE_KEY: first.trigger.job_name}


def data_exports(edge) -> list[tuple[str, dict[str, Any], str]]:
    """The training-data exports (each run also exports the evaluation truth next to them)."""
    return [e for e in edge.warehouse.exports if e[2].endswith("/data")]


def test_retry_after_a_failed_job_exports_and_submits_a_new_one(edge):
    _, first = defer(context())
    edge.jobs.set_state(first.trigger.job_name, "JOB_STATE_FAILED", error="OOM")
    _, second = defer(context())
    assert second.trigger.job_name != first.trigger.job_name
    assert len(edge.jobs.created) == 2 and len(data_exports(edge)) == 2


def test_execute_complete_registers_the_candidate_and_uploads_a_vertex_model_version(edge):
    op, deferred = defer(context())
    edge.write_envelope()
    event = {"status": "success", "job_name": deferred.trigger.job_name, "state": "JOB_STATE_SUCCEEDED"}

    result = op.execute_complete(context(), event, **deferred.kwargs)

    assert result["model_name"] == "recsys" and result["version"] == VERSION
    assert result["uri"] == f"{RUN_DIR}/model"
    assert result["vertex_model"] == f"projects/{PROJECT}/locations/{REGION}/models/recsys@1"
    json.dumps(result)
    record = ModelRegistry(edge.warehouse).get("recsys", VERSION)
    assert (record.status, record.uri) == ("candidate", f"{RUN_DIR}/model")
    (upload,) = edge.models.uploads
    assert upload["model"]["artifact_uri"] == f"{RUN_DIR}/model"
    assert upload["model"]["version_aliases"] == [f"v-{VERSION}"]
    assert upload["model"]["labels"]["airflow-dag"] == "recsys_training"


def test_execute_complete_is_idempotent_on_retry(edge):
    op, deferred = defer(context())
    edge.write_envelope()
    event = {"status": "success", "job_name": deferred.trigger.job_name, "state": "JOB_STATE_SUCCEEDED"}
    first = op.execute_complete(context(), event, **deferred.kwargs)
    again = operator().execute_complete(context(), event, **deferred.kwargs)
    assert again == first
    assert len(edge.models.uploads) == 1
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
    op, deferred = defer(context())
    with pytest.raises(AirflowFailException, match=message) as failed:
        op.execute_complete(context(), {**event, "job_name": deferred.trigger.job_name}, **deferred.kwargs)
    assert f"training/1001/cpu?project={PROJECT}" in str(failed.value)
    assert edge.models.uploads == []


def test_polling_failure_is_retryable(edge):
    op, deferred = defer(context())
    event = {"status": "error", "job_name": deferred.trigger.job_name, "state": None, "message": "503"}
    with pytest.raises(VertexJobPollError, match="A retry reattaches"):
        op.execute_complete(context(), event, **deferred.kwargs)


def test_non_deferrable_polls_to_success(edge):
    states = iter(["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])

    def progress(**kw: Any):
        job = edge.jobs.get(**kw)
        job.state = vertex.JobState[next(states)]
        return job

    edge.jobs.hook.get_custom_job.side_effect = progress
    edge.write_envelope()
    op = operator(deferrable=False, poll_interval=0)
    ctx = context()
    op.render_template_fields(ctx)
    result = op.execute(ctx)
    assert result["vertex_model"].endswith("models/recsys@1")
    assert len(edge.jobs.created) == 1


def test_on_kill_cancels_the_vertex_job(edge):
    op = operator(deferrable=False, poll_interval=0)

    def killed_while_polling(**kw: Any):
        job = edge.jobs.get(**kw)
        if job.state == vertex.JobState.JOB_STATE_PENDING:
            op.on_kill()  # the worker is told to stop while the job runs
        return job

    edge.jobs.hook.get_custom_job.side_effect = killed_while_polling
    ctx = context()
    op.render_template_fields(ctx)
    with pytest.raises(AirflowFailException, match="was cancelled"):
        op.execute(ctx)
    assert edge.jobs.cancelled == [edge.jobs.path("1001")]


def test_missing_training_image_fails_before_any_export_or_job(edge, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"])
    del conn["extra"]["training_image_uri"]
    set_connection(monkeypatch, conn["extra"])
    op = operator()
    ctx = context()
    op.render_template_fields(ctx)
    with pytest.raises(AirflowFailException, match=r"needs `training_image_uri` in the ml_platform connection"):
        op.execute(ctx)
    assert edge.warehouse.exports == [] and edge.jobs.created == []
