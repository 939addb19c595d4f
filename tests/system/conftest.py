"""Real-GCP fixtures, following Airflow's system-test convention.

Everything here runs only when ``SYSTEM_TESTS_GCP_PROJECT`` is set, and skips with the reason
otherwise. Each test gets a dataset ``aml_system_<random>`` (tables expire after a day, in case
the clean-up never runs) and a prefix ``gs://$SYSTEM_TESTS_GCP_BUCKET/aml-system-<random>/``;
both are deleted in a ``finally``. Credentials: Application Default Credentials, unless
``google_cloud_default`` is defined. See docs/gcp.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PROJECT_ENV, BUCKET_ENV, IMAGE_ENV = (
    "SYSTEM_TESTS_GCP_PROJECT",
    "SYSTEM_TESTS_GCP_BUCKET",
    "SYSTEM_TESTS_TRAINING_IMAGE",
)


@dataclass
class RealGcp:
    project: str
    location: str
    dataset: str
    bucket: str | None
    prefix: str


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"system test: set {name} (see docs/gcp.md) to run against real Google Cloud")
    return value


@pytest.fixture
def real_gcp(monkeypatch: pytest.MonkeyPatch) -> Iterator[RealGcp]:
    """A temporary dataset (and bucket prefix, when a bucket is given) in the system-test project."""
    from google.cloud import bigquery

    project = _require(PROJECT_ENV)
    if not os.environ.get("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"):
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", "google-cloud-platform://")
    run = uuid.uuid4().hex[:12]
    gcp = RealGcp(
        project=project,
        location=os.environ.get("SYSTEM_TESTS_GCP_LOCATION", "US"),
        dataset=f"aml_system_{run}",
        bucket=os.environ.get(BUCKET_ENV),
        prefix=f"aml-system-{run}",
    )
    client = bigquery.Client(project=project, location=gcp.location)
    dataset = bigquery.Dataset(f"{project}.{gcp.dataset}")
    dataset.location = gcp.location
    dataset.default_table_expiration_ms = 24 * 3600 * 1000
    client.create_dataset(dataset)
    try:
        yield gcp
    finally:
        client.delete_dataset(dataset.reference, delete_contents=True, not_found_ok=True)
        if gcp.bucket:
            import gcsfs

            fs = gcsfs.GCSFileSystem(project=project)
            if fs.exists(f"{gcp.bucket}/{gcp.prefix}"):
                fs.rm(f"{gcp.bucket}/{gcp.prefix}", recursive=True)


@pytest.fixture
def real_bucket(real_gcp: RealGcp) -> str:
    """The system-test bucket; tests that write to GCS skip without it."""
    return _require(BUCKET_ENV)


@pytest.fixture
def training_image() -> str:
    """A container image with airflow-ml-provider installed, for the Vertex AI CustomJob."""
    return _require(IMAGE_ENV)
