"""Local BigQuery for tests (REST + Storage Read, and an OAuth token endpoint), on the local GCS.

``gcp`` starts them on 127.0.0.1 and points the real client libraries at them the way their
documentation allows: ``BIGQUERY_EMULATOR_HOST`` (google-cloud-bigquery),
``STORAGE_EMULATOR_HOST`` (google-cloud-storage and gcsfs), ``BIGQUERY_STORAGE_EMULATOR_HOST``
(our Storage Read client), and a ``google_cloud_default`` connection holding a real
service-account key whose ``token_uri`` is the fake's. Every variable is inherited by
subprocesses (Airflow task runners, the trainer in a Vertex AI job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.bigquery import FakeBigQuery
from tests.fakes.bigquery_storage import FakeBigQueryStorage
from tests.fakes.gcs import DEFAULT_BUCKET, GcsEndpoint
from tests.fakes.google_auth import google_cloud_connection_uri

PROJECT, DATASET, BUCKET = "my-project", "recsys", DEFAULT_BUCKET


@dataclass
class LocalGcp:
    """The running endpoints, for assertions (``bigquery.requests``, ``storage.sessions``...)."""

    bigquery: FakeBigQuery
    storage: FakeBigQueryStorage
    gcs_url: str
    project: str = PROJECT
    dataset: str = DATASET
    bucket: str = BUCKET

    def env(self) -> dict[str, str]:
        """The environment that points the Google clients (in this and child processes) here."""
        return {
            "BIGQUERY_EMULATOR_HOST": self.bigquery.url,
            "BIGQUERY_STORAGE_EMULATOR_HOST": self.storage.host,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            # gcsfs probes a bucket for hierarchical namespaces over gRPC first, which an HTTP
            # emulator cannot answer (a long stall before it falls back).
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": google_cloud_connection_uri(
                self.project, self.bigquery.url + "/token"
            ),
        }

    def ml_platform_connection(self, **extra: object) -> str:
        """``AIRFLOW_CONN_ML_PLATFORM_DEFAULT`` for the gcp backend on these endpoints."""
        extras = {
            "backend": "gcp",
            "project": self.project,
            "dataset": self.dataset,
            "location": "US",
            "staging_bucket": f"gs://{self.bucket}",
            **extra,
        }
        return json.dumps({"conn_type": "ml_platform", "extra": extras})


@pytest.fixture
def gcp(monkeypatch: pytest.MonkeyPatch, gcs_endpoint: GcsEndpoint) -> Iterator[LocalGcp]:
    """Fresh local BigQuery and Storage Read endpoints on the session's GCS, with the environment pointing there."""
    bigquery = FakeBigQuery(gcs_endpoint=gcs_endpoint.url).start()
    storage = FakeBigQueryStorage(bigquery).start()
    local = LocalGcp(bigquery, storage, gcs_endpoint.url)
    bigquery.create_dataset(PROJECT, DATASET)
    for key, value in local.env().items():
        monkeypatch.setenv(key, value)
    try:
        yield local
    finally:
        storage.stop()
        bigquery.stop()
