"""VertexTrainingRunner, its trigger and link through the real Google provider hooks and clients.

They talk gRPC to the local Vertex AI endpoint (tests/fakes/vertex.py), which runs each job's
command as a subprocess and refuses what Vertex AI documents it refuses; the tests assert the
requests Vertex AI would receive and the states its jobs reach.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import types
from typing import Any
from unittest.mock import MagicMock

import grpc
import pytest
from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobHook
from google.api_core.exceptions import FailedPrecondition, InvalidArgument, NotFound
from google.cloud.aiplatform_v1 import CustomJob

from airflow_ml_provider.backends.vertex import STATE_STORE_KEY, VertexJobPollError, VertexTrainingRunner, job_id
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.training.envelope import Envelope
from airflow_ml_provider.core.training.job import TrainingJob
from airflow_ml_provider.exceptions import ContractError, TrainingJobError
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.triggers.vertex_ai import VertexTrainingJobTrigger
from tests.fakes.vertex import PROJECT_NUMBER, VertexEndpoint

PROJECT, REGION = "my-project", "us-central1"
IMAGE = "us-docker.pkg.dev/my-project/ml/trainer:1.0"
RUN_DIR = "gs://my-bucket/airflow-ml/recsys/20260324-1a2b3c4d"
LABELS = {"managed-by": "airflow-ml-provider", "airflow-dag": "recsys_training", "airflow-task": "train",
          "airflow-run": "scheduled__2026-03-24t04-00-00-00-00"}  # fmt: skip


def config(**extra: Any) -> PlatformConfig:
    base = {
        "backend": "gcp",
        "project": PROJECT,
        "location": REGION,
        "dataset": "recsys",
        "staging_bucket": "gs://my-bucket",
        "training_image_uri": IMAGE,
    }
    return PlatformConfig.model_validate({**base, **extra})


def training_job(**overrides: Any) -> TrainingJob:
    fields: dict[str, Any] = {
        "model_name": "recsys",
        "version": "20260324-1a2b3c4d",
        "run_dir": RUN_DIR,
        "pipeline_uri": f"{RUN_DIR}/inputs/pipeline.yaml",
        "data_uri": f"{RUN_DIR}/data",
        "validation_from": dt.date(2026, 3, 17),
        "hooks_uri": f"{RUN_DIR}/inputs/model.py",
        "git_sha": "abc123",
        "labels": LABELS,
    }
    return TrainingJob(**{**fields, **overrides})


@pytest.fixture
def runner(vertex_endpoint: VertexEndpoint) -> VertexTrainingRunner:
    """The runner with the real Google provider hooks, on the local Vertex AI; new jobs wait in PENDING."""
    vertex_endpoint.run_jobs = False
    return VertexTrainingRunner(config(training_service_account="trainer@my-project.iam.gserviceaccount.com"))


class DictStore(dict):
    """Airflow's task_state_store: get/set by key."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


def start_job(endpoint: VertexEndpoint, command: str, display: str = "probe") -> str:
    """Create a CustomJob running ``python -c command`` through the real hook and let it run; its name."""
    spec = {
        "display_name": display,
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "replica_count": 1,
                    "container_spec": {"image_uri": IMAGE, "command": ["python", "-c"], "args": [command]},
                }
            ]
        },
    }
    name = CustomJobHook().create_custom_job(project_id=PROJECT, region=REGION, custom_job=spec).name
    endpoint.release(name)
    return name


SLEEP = "import time; time.sleep(120)"


# --- the CustomJob request -----------------------------------------------------------------


def test_custom_job_runs_the_trainer_with_the_local_runners_args_and_env(runner):
    job = training_job()
    spec = runner.custom_job_spec(job)
    CustomJob(spec)  # the request is a valid CustomJob message

    assert spec["display_name"] == "recsys-20260324-1a2b3c4d"
    (pool,) = spec["job_spec"]["worker_pool_specs"]
    assert pool["replica_count"] == 1
    assert pool["machine_spec"] == {"machine_type": "n1-standard-8"}
    container = pool["container_spec"]
    assert container["image_uri"] == IMAGE
    assert container["command"] == ["python", "-m", "airflow_ml_provider.core.training.trainer"]
    assert container["args"] == job.args()
    assert container["args"][container["args"].index("--model-version") + 1] == "20260324-1a2b3c4d"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"AIP_MODEL_DIR": f"{RUN_DIR}/model", "AIP_TRAINING_DATA_URI": f"{RUN_DIR}/data"}
    # Vertex derives AIP_MODEL_DIR = <base_output_directory>/model: the same folder.
    assert spec["job_spec"]["base_output_directory"] == {"output_uri_prefix": RUN_DIR}
    assert f"{spec['job_spec']['base_output_directory']['output_uri_prefix']}/model" == job.model_dir
    assert spec["job_spec"]["service_account"] == "trainer@my-project.iam.gserviceaccount.com"
    assert "network" not in spec["job_spec"]


def test_custom_job_labels_name_the_task_and_the_version(runner):
    labels = runner.custom_job_spec(training_job())["labels"]
    assert labels["airflow-dag"] == "recsys_training"
    assert labels["airflow-task"] == "train"
    assert labels["airflow-run"] == "scheduled__2026-03-24t04-00-00-00-00"
    assert labels["aml-model"] == "recsys"
    assert labels["aml-version"] == "20260324-1a2b3c4d"
    for key, value in labels.items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) and re.fullmatch(r"[a-z0-9_-]{0,63}", value), (key, value)


def test_custom_job_machine_type_and_network_come_from_the_connection():
    r = VertexTrainingRunner(
        config(training_machine_type="n2-highmem-16", training_network="projects/123/global/networks/ml")
    )
    spec = r.custom_job_spec(training_job())["job_spec"]
    assert spec["worker_pool_specs"][0]["machine_spec"] == {"machine_type": "n2-highmem-16"}
    assert spec["network"] == "projects/123/global/networks/ml"
    assert "service_account" not in spec


def test_display_name_is_sanitised_for_vertex():
    spec = VertexTrainingRunner(config()).custom_job_spec(training_job(model_name='my "ranker" v2' + "x" * 200))
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", spec["display_name"])


def test_missing_training_image_is_a_clear_error():
    r = VertexTrainingRunner(config(training_image_uri=None))
    with pytest.raises(ContractError, match=r"needs `training_image_uri`.*airflow-ml-provider installed"):
        r.custom_job_spec(training_job())


def test_local_artifact_root_is_refused_for_vertex():
    r = VertexTrainingRunner(config(artifact_root="file:///tmp/artifacts"))
    with pytest.raises(ContractError, match=r"write their model to GCS.*staging_bucket"):
        r.custom_job_spec(training_job(run_dir="file:///tmp/artifacts/recsys/v1"))


def test_bigquery_multi_region_maps_to_a_vertex_region():
    assert VertexTrainingRunner(config(location="US")).region == "us-central1"
    assert VertexTrainingRunner(config(location="EU")).region == "europe-west4"
    assert VertexTrainingRunner(config(location="asia-northeast1")).region == "asia-northeast1"


def test_hooks_use_the_connections_gcp_credentials(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GCP_ML", '{"conn_type": "google_cloud_platform", "extra": {"is_anonymous": true}}')
    r = VertexTrainingRunner(config(gcp_conn_id="gcp_ml", impersonation_chain=["sa@p.iam.gserviceaccount.com"]))
    assert r.hook is r.hook and r.model_hook is r.model_hook  # built once
    for hook in (r.hook, r.model_hook):
        assert (hook.gcp_conn_id, hook.impersonation_chain) == ("gcp_ml", ["sa@p.iam.gserviceaccount.com"])


# --- submit or reattach --------------------------------------------------------------------


def test_first_submission_creates_the_job(runner, vertex_endpoint):
    name = runner.submit_or_reattach(training_job())
    (create,) = vertex_endpoint.calls("CreateCustomJob")
    assert create.parent == f"projects/{PROJECT}/locations/{REGION}"
    assert create.custom_job == CustomJob(runner.custom_job_spec(training_job()))
    assert name == vertex_endpoint.job(name).job.name and name.endswith("/customJobs/1001")
    assert [r.filter for r in vertex_endpoint.calls("ListCustomJobs")] == ['display_name="recsys-20260324-1a2b3c4d"']


@pytest.mark.parametrize("state", ["JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
def test_reattaches_to_a_live_or_succeeded_job_instead_of_creating(runner, vertex_endpoint, state, caplog):
    existing = runner.submit(training_job())
    vertex_endpoint.set_state(existing, state)
    with caplog.at_level("INFO"):
        assert runner.submit_or_reattach(training_job()) == existing
    assert len(vertex_endpoint.calls("CreateCustomJob")) == 1
    assert "Reattaching" in caplog.text


def end_job(runner: VertexTrainingRunner, endpoint: VertexEndpoint, name: str, state: str) -> None:
    """End a PENDING job the way Vertex AI would: run it (the trainer fails: no data), cancel or expire it."""
    if state == "JOB_STATE_FAILED":
        endpoint.release(name)
    elif state == "JOB_STATE_CANCELLED":
        runner.cancel(name)
    else:
        endpoint.set_state(name, state)
    assert endpoint.wait(name) == state


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"])
def test_failed_previous_job_leads_to_a_new_submission(runner, vertex_endpoint, state):
    old = runner.submit(training_job())
    end_job(runner, vertex_endpoint, old, state)
    name = runner.submit_or_reattach(training_job())
    assert name != old
    assert len(vertex_endpoint.calls("CreateCustomJob")) == 2


def test_same_display_name_of_another_version_is_not_reattached(runner, vertex_endpoint):
    spec = runner.custom_job_spec(training_job())
    spec["labels"]["aml-version"] = "20260324-ffffffff"
    other = CustomJobHook().create_custom_job(project_id=PROJECT, region=REGION, custom_job=spec).name
    assert runner.submit_or_reattach(training_job()) != other
    assert len(vertex_endpoint.calls("CreateCustomJob")) == 2


def test_state_store_remembers_the_job_across_tries(runner, vertex_endpoint):
    store = DictStore()
    first = runner.submit_or_reattach(training_job(), store)
    assert store == {STATE_STORE_KEY: first}
    vertex_endpoint.set_state(first, "JOB_STATE_RUNNING")
    listed = len(vertex_endpoint.calls("ListCustomJobs"))
    assert runner.submit_or_reattach(training_job(), store) == first
    assert len(vertex_endpoint.calls("ListCustomJobs")) == listed  # the stored name was enough
    assert len(vertex_endpoint.calls("CreateCustomJob")) == 1


def test_state_store_entry_of_a_failed_job_is_replaced(runner, vertex_endpoint):
    store = DictStore()
    first = runner.submit_or_reattach(training_job(), store)
    end_job(runner, vertex_endpoint, first, "JOB_STATE_FAILED")
    second = runner.submit_or_reattach(training_job(), store)
    assert second != first
    assert store[STATE_STORE_KEY] == second


# --- state, wait, cancel, console ------------------------------------------------------------


def test_wait_returns_on_success_and_raises_with_the_jobs_error(runner, vertex_endpoint):
    ok = start_job(vertex_endpoint, "print('trained')")
    assert runner.wait(ok, poll_interval=0.05)["status"] == "success"
    assert runner.state(ok) == "JOB_STATE_SUCCEEDED"
    assert len(vertex_endpoint.calls("GetCustomJob")) >= 2  # it polled while the job ran

    failed = start_job(vertex_endpoint, "import sys; sys.exit('trainer: error: label has one class')")
    with pytest.raises(TrainingJobError, match=r"customJobs/1002 failed \(JOB_STATE_FAILED\): .*trainer: error: label"):
        runner.wait(failed, poll_interval=0.05)


def test_cancel_kills_a_running_job_and_tolerates_a_finished_one(runner, vertex_endpoint):
    name = start_job(vertex_endpoint, SLEEP)
    vertex_endpoint.wait(name, states={"JOB_STATE_RUNNING"})
    proc = vertex_endpoint.job(name).proc
    runner.cancel(name)
    assert [r.name.rsplit("/", 1)[-1] for r in vertex_endpoint.calls("CancelCustomJob")] == [job_id(name)]
    assert vertex_endpoint.wait(name) == "JOB_STATE_CANCELLED"
    assert runner.state(name) == "JOB_STATE_CANCELLED" and proc.poll() is not None

    done = start_job(vertex_endpoint, "pass")
    vertex_endpoint.wait(done)
    runner.cancel(done)  # FAILED_PRECONDITION is logged, not raised
    assert runner.state(done) == "JOB_STATE_SUCCEEDED"


def test_missing_job_is_not_found(runner):
    with pytest.raises(NotFound):
        runner.state(f"projects/{PROJECT}/locations/{REGION}/customJobs/999")


def test_console_url_points_at_the_job(runner):
    assert runner.console_url(f"projects/123/locations/{REGION}/customJobs/42") == (
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/training/42/cpu?project={PROJECT}"
    )


def test_events_become_sentences_naming_job_and_console(runner):
    name = f"projects/123/locations/{REGION}/customJobs/42"
    runner.raise_for_event({"status": "success", "job_name": name, "state": "JOB_STATE_SUCCEEDED"})
    with pytest.raises(TrainingJobError, match=r"customJobs/42 was cancelled\. Logs: https://.*training/42"):
        runner.raise_for_event({"status": "cancelled", "job_name": name, "state": "JOB_STATE_CANCELLED"})
    with pytest.raises(VertexJobPollError, match=r"could not poll .*customJobs/42: 503 unavailable"):
        runner.raise_for_event({"status": "error", "job_name": name, "state": None, "message": "503 unavailable"})
    assert VertexJobPollError.retryable and not TrainingJobError.retryable


# --- Model Registry ----------------------------------------------------------------------------


def envelope(version: str) -> Envelope:
    return Envelope.model_validate(
        {
            "name": "recsys",
            "version": version,
            "created_at": "2026-03-24T05:00:00+00:00",
            "git_sha": "abc123",
            "spec_hash": "f" * 64,
            "packages": {},
            "features": [{"name": "user_events", "type": "INT64"}],
            "categories": {},
            "objective": "lambdarank",
            "params": {},
            "best_iteration": 10,
            "data": {
                "uri": f"{RUN_DIR}/data",
                "train_rows": 100,
                "validation_rows": 50,
                "train_lists": 10,
                "validation_lists": 5,
                "train_dates": ["2026-03-01", "2026-03-10"],
                "validation_dates": ["2026-03-17", "2026-03-23"],
            },
            "metrics": {"k": 10, "model": {"ndcg": 0.31}, "baseline": {"ndcg": 0.22}},
            "profile": {},
            "sample": {},
        }
    )


MODELS = f"projects/{PROJECT_NUMBER}/locations/{REGION}/models"


def test_upload_creates_the_model_then_adds_versions(runner, vertex_endpoint):
    first = runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model", labels=LABELS)
    assert first == f"{MODELS}/recsys@1"
    (request,) = vertex_endpoint.calls("UploadModel")
    assert request.model_id == "recsys" and not request.parent_model
    model = request.model
    assert model.artifact_uri == f"{RUN_DIR}/model"
    assert list(model.version_aliases) == ["v-20260324-1a2b3c4d"]
    assert model.labels["aml-version"] == "20260324-1a2b3c4d"
    assert model.labels["airflow-dag"] == "recsys_training"
    assert model.container_spec.image_uri == IMAGE
    assert vertex_endpoint.calls("GetOperation")  # the client waited on the upload operation

    second = runner.upload_model_version(envelope("20260331-99999999"), f"{RUN_DIR}/model")
    assert second == f"{MODELS}/recsys@2"
    upload = vertex_endpoint.calls("UploadModel")[1]
    assert upload.parent_model == f"{MODELS}/recsys" and not upload.model_id


def test_upload_retry_finds_the_version_instead_of_uploading_twice(runner, vertex_endpoint):
    first = runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model")
    again = runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model")
    assert again == first
    assert len(vertex_endpoint.calls("UploadModel")) == 1


def test_set_alias_moves_champion_between_versions(runner, vertex_endpoint):
    runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model")
    runner.upload_model_version(envelope("20260331-99999999"), f"{RUN_DIR}/model")
    runner.set_alias("recsys", "20260324-1a2b3c4d")
    assert vertex_endpoint.aliases("recsys") == {
        "1": ["champion", "default", "v-20260324-1a2b3c4d"],
        "2": ["v-20260331-99999999"],
    }
    moved = runner.set_alias("recsys", "20260331-99999999")
    assert moved == f"{MODELS}/recsys@2"
    assert vertex_endpoint.aliases("recsys") == {
        "1": ["default", "v-20260324-1a2b3c4d"],
        "2": ["champion", "v-20260331-99999999"],
    }
    merged = [r.name for r in vertex_endpoint.calls("MergeVersionAliases")]
    assert merged == [f"projects/{PROJECT}/locations/{REGION}/models/recsys@{v}" for v in ("1", "2")]


def test_set_alias_of_an_unknown_version_is_a_clear_error(runner):
    with pytest.raises(ContractError, match=r"version '20260324-1a2b3c4d' is not in the Vertex AI Model Registry"):
        runner.set_alias("recsys", "20260324-1a2b3c4d")


def test_model_registry_refuses_what_vertex_refuses(runner):
    """The endpoint's documented rules: a serving container, model id format (the runner relies on them)."""
    client = runner.model_hook.get_model_service_client(REGION)
    parent = f"projects/{PROJECT}/locations/{REGION}"
    model = {"display_name": "m", "artifact_uri": f"{RUN_DIR}/model"}
    with pytest.raises(InvalidArgument, match="serving container"):
        client.upload_model(request={"parent": parent, "model_id": "m", "model": model})
    with pytest.raises(InvalidArgument, match="model_id '1bad'"):
        client.upload_model(
            request={"parent": parent, "model_id": "1bad", "model": {**model, "container_spec": {"image_uri": IMAGE}}}
        )


# --- trigger -----------------------------------------------------------------------------------


def make_trigger(**overrides: Any) -> VertexTrainingJobTrigger:
    kwargs: dict[str, Any] = {
        "job_name": f"projects/123/locations/{REGION}/customJobs/42",
        "project": PROJECT,
        "location": REGION,
        "gcp_conn_id": "gcp_ml",
        "impersonation_chain": ["sa@my-project.iam.gserviceaccount.com"],
        "poll_interval": 0,
    }
    return VertexTrainingJobTrigger(**{**kwargs, **overrides})


def test_trigger_serialises_and_round_trips_location_and_impersonation():
    from airflow.sdk.module_loading import import_string

    classpath, kwargs = make_trigger().serialize()
    assert classpath == "airflow_ml_provider.triggers.vertex_ai.VertexTrainingJobTrigger"
    assert kwargs["location"] == REGION
    assert kwargs["impersonation_chain"] == ["sa@my-project.iam.gserviceaccount.com"]
    assert kwargs["gcp_conn_id"] == "gcp_ml"
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def live_trigger(job_name: str, **overrides: Any) -> VertexTrainingJobTrigger:
    """A trigger on the endpoint's job with the (anonymous) default connection."""
    return make_trigger(job_name=job_name, gcp_conn_id="google_cloud_default", impersonation_chain=None, **overrides)


def run_trigger(trigger: VertexTrainingJobTrigger) -> list[dict[str, Any]]:
    """Run the trigger as the triggerer does: collect its events, then ``cleanup``."""

    async def collect() -> list[dict[str, Any]]:
        try:
            return [e.payload async for e in trigger.run()]
        finally:
            await trigger.cleanup()

    return asyncio.run(collect())


def test_trigger_polls_until_success(vertex_endpoint):
    name = start_job(vertex_endpoint, "import time; time.sleep(0.3)")
    got = run_trigger(live_trigger(name, poll_interval=0.05))
    assert got == [{"status": "success", "job_name": name, "state": "JOB_STATE_SUCCEEDED", "message": "succeeded"}]
    polls = vertex_endpoint.calls("GetCustomJob")
    assert len(polls) >= 2 and {p.name for p in polls} == {f"projects/{PROJECT}/locations/{REGION}/customJobs/1001"}


def test_trigger_reports_failure_with_the_jobs_error(vertex_endpoint):
    name = start_job(vertex_endpoint, "import sys; sys.exit('Replica workerpool0-0: out of memory')")
    (event,) = run_trigger(live_trigger(name))
    assert (event["status"], event["state"]) == ("error", "JOB_STATE_FAILED")
    assert "exited with a non-zero status of 1" in event["message"] and "out of memory" in event["message"]


def test_trigger_reports_cancellation(vertex_endpoint):
    name = start_job(vertex_endpoint, SLEEP)
    CustomJobHook().cancel_custom_job(project_id=PROJECT, region=REGION, custom_job=name.rsplit("/", 1)[-1])
    (event,) = run_trigger(live_trigger(name))
    assert (event["status"], event["state"]) == ("cancelled", "JOB_STATE_CANCELLED")


def test_trigger_turns_a_polling_failure_into_an_error_event(vertex_endpoint):
    missing = f"projects/{PROJECT_NUMBER}/locations/{REGION}/customJobs/404"
    (event,) = run_trigger(live_trigger(missing))
    assert (event["status"], event["job_name"], event["state"]) == ("error", missing, None)
    assert "404 The CustomJob does not exist" in event["message"]


def test_trigger_on_kill_cancels_the_running_job(vertex_endpoint):
    """Defect 5: a deferred task marked failed must not leave its Vertex AI job running.

    As the triggerer does (airflow/jobs/triggerer_job_runner.py): the trigger's task is cancelled
    with the user-action message, then ``on_kill`` is awaited, then ``cleanup``.
    """
    name = start_job(vertex_endpoint, SLEEP)
    vertex_endpoint.wait(name, states={"JOB_STATE_RUNNING"})
    proc = vertex_endpoint.job(name).proc
    trigger = live_trigger(name, poll_interval=0.05)

    async def mark_failed() -> None:
        async def consume() -> None:
            async for _ in trigger.run():
                raise AssertionError("the job is still running: no event expected")

        task = asyncio.create_task(consume())
        while not vertex_endpoint.calls("GetCustomJob"):
            await asyncio.sleep(0.02)
        task.cancel("User action")
        with pytest.raises(asyncio.CancelledError):
            await task
        try:
            await trigger.on_kill()
        finally:
            await trigger.cleanup()

    asyncio.run(mark_failed())
    assert [r.name.rsplit("/", 1)[-1] for r in vertex_endpoint.calls("CancelCustomJob")] == [job_id(name)]
    assert vertex_endpoint.wait(name, timeout=10) == "JOB_STATE_CANCELLED"
    assert proc.poll() is not None  # the job's process is gone
    assert trigger._job_client is None  # cleanup closed the client


def test_trigger_on_kill_leaves_a_finished_job_alone(vertex_endpoint):
    name = start_job(vertex_endpoint, "pass")
    vertex_endpoint.wait(name)
    trigger = live_trigger(name)

    async def kill() -> None:
        await trigger.on_kill()  # FAILED_PRECONDITION is logged, not raised
        await trigger.cleanup()

    asyncio.run(kill())
    assert vertex_endpoint.job(name).state == "JOB_STATE_SUCCEEDED"


# --- link --------------------------------------------------------------------------------------


def test_link_returns_the_persisted_console_url(monkeypatch):
    from airflow.sdk.execution_time.xcom import XCom

    pushed: dict[str, Any] = {}
    ti = types.SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    url = "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/42/cpu?project=my-project"
    VertexTrainingJobLink.persist({"ti": ti}, url)
    assert pushed == {VertexTrainingJobLink().xcom_key: url}
    monkeypatch.setattr(XCom, "get_value", lambda *, key, ti_key: pushed.get(key))
    assert VertexTrainingJobLink().get_link(MagicMock(), ti_key=MagicMock()) == url
    pushed.clear()
    assert VertexTrainingJobLink().get_link(MagicMock(), ti_key=MagicMock()) == ""


def test_link_persist_failure_never_fails_the_task():
    def boom(**_: Any) -> None:
        raise RuntimeError("xcom backend down")

    VertexTrainingJobLink.persist({"ti": types.SimpleNamespace(xcom_push=boom)}, "https://x")


# --- defect 3: a blip while polling does not end the wait ---------------------------------------


def fast_retries(trigger: VertexTrainingJobTrigger, failures: int = 5) -> VertexTrainingJobTrigger:
    trigger.max_poll_failures, trigger.retry_base, trigger.retry_cap = failures, 0.01, 0.02
    return trigger


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED]
)
def test_trigger_retries_transient_polling_errors_and_sees_the_job_succeed(vertex_endpoint, code):
    name = start_job(vertex_endpoint, "import time; time.sleep(0.3)")
    vertex_endpoint.fail_next("GetCustomJob", code, "the service blinked", times=3)
    got = run_trigger(fast_retries(live_trigger(name, poll_interval=0.05)))
    assert got == [{"status": "success", "job_name": name, "state": "JOB_STATE_SUCCEEDED", "message": "succeeded"}]
    assert len(vertex_endpoint.calls("GetCustomJob")) >= 4  # three refused, then polled to the end
    assert vertex_endpoint.calls("CancelCustomJob") == []


def test_trigger_gives_up_on_a_persistent_outage_with_an_error_event_and_cancels_the_job(vertex_endpoint):
    name = start_job(vertex_endpoint, SLEEP)
    vertex_endpoint.wait(name, states={"JOB_STATE_RUNNING"})
    vertex_endpoint.fail_next("GetCustomJob", grpc.StatusCode.UNAVAILABLE, "connection reset", times=100)
    (event,) = run_trigger(fast_retries(live_trigger(name, poll_interval=0.05), failures=4))
    assert (event["status"], event["state"], event["job_cancelled"]) == ("error", None, True)
    assert "connection reset" in event["message"]
    assert len(vertex_endpoint.calls("GetCustomJob")) == 4
    assert vertex_endpoint.wait(name, timeout=10) == "JOB_STATE_CANCELLED"  # it does not run (and bill) unwatched
    with pytest.raises(VertexJobPollError, match=r"connection reset\. It was cancelled .* a retry trains afresh"):
        VertexTrainingRunner(config()).raise_for_event(event)


def test_trigger_does_not_retry_a_permanent_error(vertex_endpoint):
    name = start_job(vertex_endpoint, SLEEP)
    vertex_endpoint.fail_next("GetCustomJob", grpc.StatusCode.PERMISSION_DENIED, "no aiplatform.customJobs.get")
    (event,) = run_trigger(fast_retries(live_trigger(name)))
    assert event["status"] == "error" and "no aiplatform.customJobs.get" in event["message"]
    assert len(vertex_endpoint.calls("GetCustomJob")) == 1


def test_non_deferrable_wait_retries_transient_polling_errors(runner, vertex_endpoint, monkeypatch):
    from airflow_ml_provider.backends import vertex

    monkeypatch.setattr(vertex, "retry_delay", lambda failures: 0.01)
    name = start_job(vertex_endpoint, "print('trained')")
    vertex_endpoint.fail_next("GetCustomJob", grpc.StatusCode.UNAVAILABLE, "blip", times=2)
    assert runner.wait(name, poll_interval=0.05)["status"] == "success"


# --- defect 1: the model's bucket must be in the Vertex AI region ---------------------------------


def test_upload_of_a_model_in_a_bucket_outside_the_region_is_refused_as_vertex_does(runner, gcs_endpoint):
    gcs_endpoint.create_bucket("my-us-bucket", "US")
    with pytest.raises(FailedPrecondition, match=r"is in location `us`\. It must be in the same regional location"):
        runner.upload_model_version(envelope("20260324-1a2b3c4d"), "gs://my-us-bucket/airflow-ml/recsys/v1/model")


def test_a_custom_job_writing_outside_the_region_is_refused(runner, gcs_endpoint):
    gcs_endpoint.create_bucket("my-eu-bucket", "europe-west4")
    spec = runner.custom_job_spec(training_job(run_dir="gs://my-eu-bucket/airflow-ml/recsys/v1"))
    with pytest.raises(FailedPrecondition, match="service location `us-central1`"):
        CustomJobHook().create_custom_job(project_id=PROJECT, region=REGION, custom_job=spec)


def test_runner_refuses_a_bucket_outside_the_region_before_any_export_or_job(vertex_endpoint, gcs_endpoint):
    """The check runs in reattach, the training stage's first call: nothing is exported or billed yet."""
    gcs_endpoint.set_location("my-bucket", "US")  # docs/gcp.md used to create it so
    r = VertexTrainingRunner(config(location="US"))
    with pytest.raises(ContractError, match=r"gs://my-bucket is in US, but Vertex AI runs in us-central1.*--location"):
        r.reattach(training_job())
    assert vertex_endpoint.calls("ListCustomJobs") == [] and vertex_endpoint.calls("CreateCustomJob") == []

    gcs_endpoint.set_location("my-bucket", "us-central1")
    assert r.reattach(training_job()) is False  # the US multi-region dataset exports to it; Vertex reads it
