"""VertexTrainingRunner, its trigger and link against a fake of the Google provider's hooks.

The fakes keep real aiplatform_v1 protos built from the runner's requests, so a misspelled
field fails here as it would at the API; the tests assert what Vertex AI would receive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import types
from typing import Any
from unittest.mock import AsyncMock, MagicMock, create_autospec

import pytest
from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobHook
from airflow.providers.google.cloud.hooks.vertex_ai.model_service import ModelServiceHook
from google.api_core.exceptions import FailedPrecondition, NotFound
from google.cloud.aiplatform_v1 import CustomJob, JobState, Model, ModelServiceClient, UploadModelResponse
from google.rpc.status_pb2 import Status

from airflow_ml_provider.backends import vertex
from airflow_ml_provider.backends.local_trainer import TrainingJobError
from airflow_ml_provider.backends.vertex import STATE_STORE_KEY, VertexJobPollError, VertexTrainingRunner
from airflow_ml_provider.core.config import PlatformConfig
from airflow_ml_provider.core.envelope import Envelope
from airflow_ml_provider.core.training import TrainingJob
from airflow_ml_provider.exceptions import ContractError
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.triggers.vertex_ai import VertexTrainingJobTrigger

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


class FakeVertexJobs:
    """Vertex AI's CustomJob service in memory: what was created, listed, fetched and cancelled."""

    def __init__(self) -> None:
        self.hook = create_autospec(CustomJobHook, instance=True)
        self.jobs: dict[str, CustomJob] = {}
        self.created: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.filters: list[str] = []
        self._ids = itertools.count(1001)
        self.hook.create_custom_job.side_effect = self.create
        self.hook.list_custom_jobs.side_effect = self.list
        self.hook.get_custom_job.side_effect = self.get
        self.hook.cancel_custom_job.side_effect = self.cancel

    def path(self, job_id: str) -> str:
        return f"projects/{PROJECT}/locations/{REGION}/customJobs/{job_id}"

    def add(self, spec: dict[str, Any], state: str) -> CustomJob:
        job = CustomJob(spec)
        job.name = self.path(str(next(self._ids)))
        job.state = JobState[state]
        self.jobs[job.name] = job
        return job

    def create(self, *, project_id: str, region: str, custom_job: dict[str, Any], **_: Any) -> CustomJob:
        assert (project_id, region) == (PROJECT, REGION)
        self.created.append(custom_job)
        return self.add(custom_job, "JOB_STATE_PENDING")

    def list(self, *, project_id: str, region: str, filter: str | None, **_: Any) -> list[CustomJob]:
        assert (project_id, region) == (PROJECT, REGION)
        self.filters.append(filter or "")
        wanted = re.fullmatch(r'display_name="([^"]*)"', filter or "")
        assert wanted, filter
        return [j for j in self.jobs.values() if j.display_name == wanted.group(1)]

    def get(self, *, project_id: str, region: str, custom_job: str, **_: Any) -> CustomJob:
        assert (project_id, region) == (PROJECT, REGION)
        assert "/" not in custom_job, "the hook takes the job id and builds the path itself"
        try:
            return self.jobs[self.path(custom_job)]
        except KeyError:
            raise NotFound(f"custom job {custom_job}") from None

    def cancel(self, *, project_id: str, region: str, custom_job: str, **_: Any) -> None:
        job = self.get(project_id=project_id, region=region, custom_job=custom_job)
        if job.state == JobState.JOB_STATE_SUCCEEDED:
            raise FailedPrecondition("job already succeeded")
        self.cancelled.append(job.name)
        job.state = JobState.JOB_STATE_CANCELLED

    def set_state(self, name: str, state: str, error: str | None = None) -> None:
        self.jobs[name].state = JobState[state]
        if error:
            self.jobs[name].error = Status(code=13, message=error)


class FakeModelRegistry:
    """Vertex AI's Model Registry in memory: models, versions and aliases (unique per model)."""

    def __init__(self) -> None:
        self.hook = create_autospec(ModelServiceHook, instance=True)
        self.client = create_autospec(ModelServiceClient, instance=True)
        self.client.common_location_path.side_effect = ModelServiceClient.common_location_path
        self.hook.get_model_service_client.return_value = self.client
        self.hook.get_model.side_effect = self.get_model
        self.hook.add_version_aliases.side_effect = self.add_aliases
        self.client.upload_model.side_effect = self.upload
        self.models: dict[str, list[Model]] = {}
        self.uploads: list[dict[str, Any]] = []

    def base(self, model_id: str) -> str:
        return f"projects/{PROJECT}/locations/{REGION}/models/{model_id}"

    def get_model(self, *, region: str, project_id: str, model_id: str, **_: Any) -> Model:
        assert (project_id, region) == (PROJECT, REGION)
        mid, _, ref = model_id.partition("@")
        versions = self.models.get(mid, [])
        ref = ref or "default"  # no @: the default version
        for v in versions:
            if ref in v.version_aliases or ref == v.version_id:
                return v
        raise NotFound(f"model {model_id}")

    def upload(self, *, request: dict[str, Any], **_: Any) -> MagicMock:
        self.uploads.append(request)
        assert request["parent"] == f"projects/{PROJECT}/locations/{REGION}"
        if "parent_model" in request:
            mid = request["parent_model"].rsplit("/", 1)[-1]
            assert mid in self.models, "parent_model must exist"
        else:
            mid = request["model_id"]
            assert mid not in self.models, "model_id must be new"
        version = Model(request["model"])
        version.name = self.base(mid)
        version.version_id = str(len(self.models.get(mid, [])) + 1)
        if mid not in self.models:
            version.version_aliases.append("default")
        self._claim(mid, list(request["model"]["version_aliases"]))
        self.models.setdefault(mid, []).append(version)
        operation = MagicMock()
        operation.result.return_value = UploadModelResponse(model=version.name, model_version_id=version.version_id)
        return operation

    def add_aliases(self, *, region: str, model_id: str, project_id: str, version_aliases: list[str], **_: Any):
        mid, _, version_id = model_id.partition("@")
        assert version_id.isdigit(), "MergeVersionAliases needs the version id, not an alias"
        self._claim(mid, version_aliases)
        target = next(v for v in self.models[mid] if v.version_id == version_id)
        target.version_aliases.extend(version_aliases)
        return target

    def _claim(self, mid: str, aliases: list[str]) -> None:
        for v in self.models.get(mid, []):
            kept = [a for a in v.version_aliases if a not in aliases]
            del v.version_aliases[:]
            v.version_aliases.extend(kept)

    def aliases(self, mid: str) -> dict[str, list[str]]:
        return {v.version_id: sorted(v.version_aliases) for v in self.models[mid]}


@pytest.fixture
def jobs() -> FakeVertexJobs:
    return FakeVertexJobs()


@pytest.fixture
def runner(jobs: FakeVertexJobs) -> VertexTrainingRunner:
    r = VertexTrainingRunner(config(training_service_account="trainer@my-project.iam.gserviceaccount.com"))
    r.hook = jobs.hook
    return r


class DictStore(dict):
    """Airflow's task_state_store: get/set by key."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


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
    assert container["command"] == ["python", "-m", "airflow_ml_provider.core.trainer"]
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
    built: list[tuple[str, dict]] = []
    monkeypatch.setattr(vertex, "CustomJobHook", lambda **kw: built.append(("jobs", kw)) or MagicMock())
    monkeypatch.setattr(vertex, "ModelServiceHook", lambda **kw: built.append(("models", kw)) or MagicMock())
    r = VertexTrainingRunner(config(gcp_conn_id="gcp_ml", impersonation_chain=["sa@p.iam.gserviceaccount.com"]))
    assert r.hook is r.hook and r.model_hook is r.model_hook  # built once
    creds = {"gcp_conn_id": "gcp_ml", "impersonation_chain": ["sa@p.iam.gserviceaccount.com"]}
    assert built == [("jobs", creds), ("models", creds)]


# --- submit or reattach --------------------------------------------------------------------


def test_first_submission_creates_the_job(runner, jobs):
    name = runner.submit_or_reattach(training_job())
    assert jobs.created == [runner.custom_job_spec(training_job())]
    assert name == jobs.path("1001")
    assert jobs.filters == ['display_name="recsys-20260324-1a2b3c4d"']


@pytest.mark.parametrize("state", ["JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
def test_reattaches_to_a_live_or_succeeded_job_instead_of_creating(runner, jobs, state, caplog):
    existing = jobs.add(runner.custom_job_spec(training_job()), state)
    with caplog.at_level("INFO"):
        assert runner.submit_or_reattach(training_job()) == existing.name
    assert jobs.created == []
    assert "Reattaching" in caplog.text


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"])
def test_failed_previous_job_leads_to_a_new_submission(runner, jobs, state):
    old = jobs.add(runner.custom_job_spec(training_job()), state)
    name = runner.submit_or_reattach(training_job())
    assert name != old.name
    assert len(jobs.created) == 1


def test_same_display_name_of_another_version_is_not_reattached(runner, jobs):
    spec = runner.custom_job_spec(training_job())
    spec["labels"]["aml-version"] = "20260324-ffffffff"
    jobs.add(spec, "JOB_STATE_RUNNING")
    runner.submit_or_reattach(training_job())
    assert len(jobs.created) == 1


def test_state_store_remembers_the_job_across_tries(runner, jobs):
    store = DictStore()
    first = runner.submit_or_reattach(training_job(), store)
    assert store == {STATE_STORE_KEY: first}
    jobs.hook.list_custom_jobs.side_effect = AssertionError("the stored name is enough")
    jobs.set_state(first, "JOB_STATE_RUNNING")
    assert runner.submit_or_reattach(training_job(), store) == first
    assert len(jobs.created) == 1


def test_state_store_entry_of_a_failed_job_is_replaced(runner, jobs):
    store = DictStore()
    first = runner.submit_or_reattach(training_job(), store)
    jobs.set_state(first, "JOB_STATE_FAILED", error="OOM")
    second = runner.submit_or_reattach(training_job(), store)
    assert second != first
    assert store[STATE_STORE_KEY] == second


# --- state, wait, cancel, console ------------------------------------------------------------


def test_wait_returns_on_success_and_raises_with_the_jobs_error(runner, jobs):
    name = runner.submit(training_job())
    states = iter(["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
    jobs.hook.get_custom_job.side_effect = lambda **kw: (jobs.set_state(name, next(states)), jobs.get(**kw))[1]
    assert runner.wait(name, poll_interval=0)["status"] == "success"
    jobs.hook.get_custom_job.side_effect = jobs.get
    assert runner.state(name) == "JOB_STATE_SUCCEEDED"

    failed = runner.submit(training_job(version="20260325-00000000"))
    jobs.set_state(failed, "JOB_STATE_FAILED", error="trainer: error: label has one class")
    with pytest.raises(TrainingJobError, match=r"customJobs/1002 failed \(JOB_STATE_FAILED\): trainer: error: label"):
        runner.wait(failed, poll_interval=0)


def test_cancel_asks_vertex_and_tolerates_a_finished_job(runner, jobs):
    name = runner.submit(training_job())
    runner.cancel(name)
    assert jobs.cancelled == [name]
    assert runner.state(name) == "JOB_STATE_CANCELLED"
    done = runner.submit(training_job(version="20260325-00000000"))
    jobs.set_state(done, "JOB_STATE_SUCCEEDED")
    runner.cancel(done)  # FailedPrecondition is logged, not raised
    assert runner.state(done) == "JOB_STATE_SUCCEEDED"


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


@pytest.fixture
def registry(runner) -> FakeModelRegistry:
    fake = FakeModelRegistry()
    runner.model_hook = fake.hook
    return fake


def test_upload_creates_the_model_then_adds_versions(runner, registry):
    first = runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model", labels=LABELS)
    assert first == f"projects/{PROJECT}/locations/{REGION}/models/recsys@1"
    (request,) = registry.uploads
    assert request["model_id"] == "recsys" and "parent_model" not in request
    model = request["model"]
    Model(model)  # a valid Model message
    assert model["artifact_uri"] == f"{RUN_DIR}/model"
    assert model["version_aliases"] == ["v-20260324-1a2b3c4d"]
    assert model["labels"]["aml-version"] == "20260324-1a2b3c4d"
    assert model["labels"]["airflow-dag"] == "recsys_training"
    assert model["container_spec"] == {"image_uri": IMAGE}

    second = runner.upload_model_version(envelope("20260331-99999999"), f"{RUN_DIR}/model")
    assert second.endswith("models/recsys@2")
    assert registry.uploads[1]["parent_model"] == f"projects/{PROJECT}/locations/{REGION}/models/recsys"
    assert "model_id" not in registry.uploads[1]


def test_upload_retry_finds_the_version_instead_of_uploading_twice(runner, registry):
    first = runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model")
    again = runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model")
    assert again == first
    assert len(registry.uploads) == 1


def test_set_alias_moves_champion_between_versions(runner, registry):
    runner.upload_model_version(envelope("20260324-1a2b3c4d"), f"{RUN_DIR}/model")
    runner.upload_model_version(envelope("20260331-99999999"), f"{RUN_DIR}/model")
    runner.set_alias("recsys", "20260324-1a2b3c4d")
    assert registry.aliases("recsys") == {
        "1": ["champion", "default", "v-20260324-1a2b3c4d"],
        "2": ["v-20260331-99999999"],
    }
    moved = runner.set_alias("recsys", "20260331-99999999")
    assert moved.endswith("models/recsys@2")
    assert registry.aliases("recsys") == {
        "1": ["default", "v-20260324-1a2b3c4d"],
        "2": ["champion", "v-20260331-99999999"],
    }


def test_set_alias_of_an_unknown_version_is_a_clear_error(runner, registry):
    with pytest.raises(ContractError, match=r"version '20260324-1a2b3c4d' is not in the Vertex AI Model Registry"):
        runner.set_alias("recsys", "20260324-1a2b3c4d")


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


def fake_async_hook(monkeypatch, states: list[str | Exception], error: str = "") -> MagicMock:
    hook = MagicMock()
    hook.get_job_service_client = AsyncMock(return_value="client")
    replies = []
    for s in states:
        if isinstance(s, Exception):
            replies.append(s)
            continue
        job = CustomJob(name=f"projects/123/locations/{REGION}/customJobs/42", state=JobState[s])
        if error:
            job.error = Status(code=13, message=error)
        replies.append(job)
    hook.get_custom_job = AsyncMock(side_effect=replies)
    built: list[dict] = []
    monkeypatch.setattr(
        "airflow_ml_provider.triggers.vertex_ai.CustomJobAsyncHook", lambda **kw: built.append(kw) or hook
    )
    hook.built = built
    return hook


def events(trigger: VertexTrainingJobTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]

    return asyncio.run(collect())


def test_trigger_polls_until_success(monkeypatch):
    hook = fake_async_hook(monkeypatch, ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"])
    got = events(make_trigger())
    assert got == [
        {
            "status": "success",
            "job_name": f"projects/123/locations/{REGION}/customJobs/42",
            "state": "JOB_STATE_SUCCEEDED",
            "message": "succeeded",
        }
    ]
    assert hook.built == [{"gcp_conn_id": "gcp_ml", "impersonation_chain": ["sa@my-project.iam.gserviceaccount.com"]}]
    hook.get_job_service_client.assert_awaited_with(region=REGION)
    assert hook.get_custom_job.await_count == 3
    assert hook.get_custom_job.await_args.kwargs == {
        "project_id": PROJECT,
        "location": REGION,
        "job_id": "42",
        "client": "client",
    }


def test_trigger_reports_failure_with_the_jobs_error(monkeypatch):
    fake_async_hook(monkeypatch, ["JOB_STATE_RUNNING", "JOB_STATE_FAILED"], error="Replica workerpool0-0 exited 1")
    (event,) = events(make_trigger())
    assert event["status"] == "error"
    assert event["state"] == "JOB_STATE_FAILED"
    assert event["message"] == "Replica workerpool0-0 exited 1"


def test_trigger_reports_cancellation(monkeypatch):
    fake_async_hook(monkeypatch, ["JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"])
    (event,) = events(make_trigger())
    assert (event["status"], event["state"]) == ("cancelled", "JOB_STATE_CANCELLED")


def test_trigger_turns_a_polling_failure_into_an_error_event(monkeypatch):
    fake_async_hook(monkeypatch, ["JOB_STATE_RUNNING", RuntimeError("503 Service Unavailable")])
    (event,) = events(make_trigger())
    assert event == {
        "status": "error",
        "job_name": f"projects/123/locations/{REGION}/customJobs/42",
        "state": None,
        "message": "503 Service Unavailable",
    }


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
