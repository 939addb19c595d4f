"""One location for the gcp backend, checked before anything is billed: the hook and ``airflow-ml validate --conn-id``.

The dataset's location comes from the local BigQuery and the bucket's from the local Cloud
Storage (tests/fakes/), through the Google provider's hooks, as on GCP. The rules themselves
(and the pages that state them) are in airflow_ml_provider/backends/gcp_locations.py.
"""

from __future__ import annotations

import json

import pytest

from airflow_ml_provider.backends.gcp_locations import Locations, export_allowed, location_problems, vertex_region
from airflow_ml_provider.cli import main
from airflow_ml_provider.cli_project import check_connection_locations
from airflow_ml_provider.exceptions import ContractError
from airflow_ml_provider.hooks.ml_platform import MLPlatformHook
from tests.fakes.gcp import DATASET, PROJECT, LocalGcp
from tests.fakes.gcs import GcsEndpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def connection(gcp: LocalGcp, monkeypatch: pytest.MonkeyPatch):
    """Set ``ml_platform_default`` to the local gcp endpoints with these extras."""

    def set_extras(**extra: object) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", gcp.ml_platform_connection(**extra))

    set_extras()
    return set_extras


def test_us_dataset_with_a_bucket_in_the_vertex_region_passes(connection) -> None:
    status, detail = check_connection_locations("ml_platform_default")
    assert status == "PASS", detail
    MLPlatformHook().check_locations()


def test_the_runbooks_old_us_multi_region_bucket_is_refused_with_the_fix(connection, gcs_endpoint: GcsEndpoint) -> None:
    """Defect 1: a US bucket passed every check until UploadModel refused it after the paid training job."""
    gcs_endpoint.set_location("my-bucket", "US")
    with pytest.raises(ContractError) as err:
        MLPlatformHook().check_locations()
    message = str(err.value)
    assert "staging bucket gs://my-bucket is in US, but Vertex AI runs in us-central1" in message
    assert "gcloud storage buckets create gs://<name> --location=us-central1" in message
    ok, text = MLPlatformHook().test_connection()
    assert not ok and "gs://my-bucket is in US" in text


def test_a_dataset_elsewhere_than_the_connections_location_is_refused(connection, gcp: LocalGcp) -> None:
    gcp.bigquery.create_dataset(PROJECT, "recsys_eu", "EU")
    connection(dataset="recsys_eu")
    status, detail = check_connection_locations("ml_platform_default")
    assert status == "FAIL"
    assert f"dataset {PROJECT}:recsys_eu is in EU, but the connection's location is US" in detail
    assert '"location": "EU"' in detail


def test_a_regional_dataset_with_a_bucket_elsewhere_names_both(connection, gcp: LocalGcp, gcs_endpoint) -> None:
    gcp.bigquery.create_dataset(PROJECT, "recsys_tokyo", "asia-northeast1")
    connection(dataset="recsys_tokyo", location="asia-northeast1")
    status, detail = check_connection_locations("ml_platform_default")
    assert status == "FAIL"
    assert "Vertex AI runs in asia-northeast1" in detail and "cannot EXPORT DATA" in detail


def test_missing_dataset_and_bucket_are_named(connection, gcp: LocalGcp) -> None:
    connection(dataset="nope", staging_bucket="gs://no-such-bucket")
    status, detail = check_connection_locations("ml_platform_default")
    assert status == "FAIL"
    assert f"dataset {PROJECT}:nope does not exist" in detail and "gs://no-such-bucket does not exist" in detail


def test_local_backend_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ML_LOCAL", json.dumps({"conn_type": "ml_platform", "extra": {"backend": "local"}}))
    assert check_connection_locations("ml_local")[0] == "SKIP"


def test_validate_conn_id_reports_the_connection_check(connection, gcs_endpoint, capsys) -> None:
    gcs_endpoint.set_location("my-bucket", "US")
    assert main(["validate", "--conn-id", "ml_platform_default", "--json"]) == 1
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    found = checks["connection ml_platform_default"]
    assert found["status"] == "FAIL" and "Vertex AI runs in us-central1" in found["detail"]


@pytest.mark.parametrize(
    ("location", "dataset", "bucket", "ok"),
    [
        ("US", "US", "US-CENTRAL1", True),  # the US multi-region exports anywhere; Vertex reads us-central1
        ("EU", "EU", "EUROPE-WEST4", True),  # inside the EU multi-region, and Vertex's EU region
        ("us-central1", "us-central1", "US-CENTRAL1", True),
        ("US", "US", "US", False),  # Vertex AI refuses a multi-region bucket
        ("asia-northeast1", "asia-northeast1", "ASIA", False),  # a regional dataset exports to its region only
        ("US", "EU", "US-CENTRAL1", False),  # BigQuery would run the jobs in US and not find the dataset
    ],
)
def test_location_rules(location: str, dataset: str, bucket: str, ok: bool) -> None:
    found = Locations(location, f"{PROJECT}:{DATASET}", dataset, "b", bucket)
    assert (location_problems(found) == []) is ok


def test_export_rule_and_vertex_regions() -> None:
    assert export_allowed("US", "asia-northeast1") and export_allowed("EU", "europe-west1")
    assert not export_allowed("EU", "europe-west2") and not export_allowed("us-east1", "US")
    assert (vertex_region("US"), vertex_region("EU"), vertex_region("asia-northeast1")) == (
        "us-central1",
        "europe-west4",
        "asia-northeast1",
    )
