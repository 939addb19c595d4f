"""The local Google Cloud endpoints (tests/fakes/): every client we use reaches them; they refuse what GCP does."""

from __future__ import annotations

import pytest
from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobHook
from airflow.providers.google.cloud.hooks.vertex_ai.model_service import ModelServiceHook
from airflow.sdk import ObjectStoragePath
from google.api_core.exceptions import InvalidArgument, NotFound

from airflow_ml_provider.core import storage

PROJECT, REGION = "my-project", "us-central1"


def test_object_storage_path_writes_lists_reads_and_deletes_on_the_local_gcs(vertex_endpoint, gcs_endpoint):
    # vertex_endpoint provides the anonymous google_cloud_default connection ObjectStoragePath uses.
    root = ObjectStoragePath("gs://my-bucket/run", conn_id="google_cloud_default")
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "envelope.json").write_text("{}")
    assert [p.name for p in (root / "model").iterdir()] == ["envelope.json"]
    assert (root / "model" / "envelope.json").read_text() == "{}"
    assert gcs_endpoint.objects("run") == ["gs://my-bucket/run/model/envelope.json"]
    (root / "model" / "envelope.json").unlink()
    assert gcs_endpoint.objects("run") == []


def test_the_trainers_storage_reaches_the_local_gcs(gcs_endpoint):
    storage.write_text("gs://my-bucket/a/b.txt", "hello")  # pyarrow's GcsFileSystem, as in the trainer
    assert storage.exists("gs://my-bucket/a/b.txt") and storage.read_text("gs://my-bucket/a/b.txt") == "hello"
    assert gcs_endpoint.read_text("gs://my-bucket/a/b.txt") == "hello"  # gcsfs sees what Arrow wrote
    with pytest.raises(FileNotFoundError, match="gs://my-bucket/missing does not exist"):
        storage.read_text("gs://my-bucket/missing")


def test_gcs_endpoint_is_wiped_between_tests(gcs_endpoint):
    assert gcs_endpoint.objects() == []


def job_spec(**overrides):
    spec = {
        "display_name": "probe",
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "replica_count": 1,
                    "container_spec": {"image_uri": "img", "command": ["python", "-c"], "args": ["pass"]},
                }
            ]
        },
    }
    return {**spec, **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"display_name": "x" * 129}, "display_name must be 1 to 128 characters"),
        ({"labels": {"Airflow-Dag": "x"}}, "label 'Airflow-Dag'"),
        ({"labels": {"dag": "Has Spaces"}}, "label 'dag'='Has Spaces' is invalid"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "65 labels; at most 64"),
        ({"job_spec": {"worker_pool_specs": []}}, "needs a container_spec with an image_uri"),
    ],
)
def test_vertex_endpoint_refuses_jobs_vertex_refuses(vertex_endpoint, overrides, message):
    with pytest.raises(InvalidArgument, match=message):
        CustomJobHook().create_custom_job(project_id=PROJECT, region=REGION, custom_job=job_spec(**overrides))
    assert vertex_endpoint.jobs == {}


def test_vertex_endpoint_refuses_list_filters_it_does_not_know(vertex_endpoint):
    hook = CustomJobHook()
    listed = hook.list_custom_jobs(
        project_id=PROJECT,
        region=REGION,
        page_size=None,
        page_token=None,
        filter='labels.aml-version="v1" AND state="JOB_STATE_RUNNING"',
        read_mask=None,
    )
    assert list(listed) == []
    with pytest.raises(InvalidArgument, match="unsupported filter term"):
        list(
            hook.list_custom_jobs(
                project_id=PROJECT,
                region=REGION,
                page_size=None,
                page_token=None,
                filter="display_name:probe*",
                read_mask=None,
            )
        )


def test_vertex_endpoint_model_registry_rules(vertex_endpoint):
    hook = ModelServiceHook()
    client = hook.get_model_service_client(REGION)
    parent = f"projects/{PROJECT}/locations/{REGION}"
    model = {"display_name": "m", "container_spec": {"image_uri": "img"}}
    client.upload_model(request={"parent": parent, "model_id": "m", "model": model}).result(timeout=10)
    with pytest.raises(Exception, match="already exists"):
        client.upload_model(request={"parent": parent, "model_id": "m", "model": model})
    with pytest.raises(InvalidArgument, match="does not match"):
        client.upload_model(
            request={
                "parent": parent,
                "parent_model": f"{parent}/models/m",
                "model": {**model, "version_aliases": ["V1"]},
            }
        )
    with pytest.raises(InvalidArgument, match="needs the model version id"):
        hook.add_version_aliases(region=REGION, project_id=PROJECT, model_id="m@default", version_aliases=["champion"])
    with pytest.raises(NotFound):
        hook.get_model(region=REGION, project_id=PROJECT, model_id="m@champion")
    assert hook.get_model(region=REGION, project_id=PROJECT, model_id="m").version_id == "1"  # the default version
