"""Local Google Cloud for tests: BigQuery (REST + Storage Read), GCS and an OAuth token endpoint.

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
from typing import Any

import pytest

from tests.fakes.bigquery import FakeBigQuery
from tests.fakes.bigquery_storage import FakeBigQueryStorage
from tests.fakes.google_auth import google_cloud_connection_uri

PROJECT, DATASET, BUCKET = "my-project", "recsys", "ml-artifacts"


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


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[tuple[Any, str]]:
    """gcp-storage-emulator (in memory) for the session: it takes half a second to stop."""
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        yield server, f"http://127.0.0.1:{server._api._httpd.server_address[1]}"
    finally:
        server.stop()


@pytest.fixture
def gcp(monkeypatch: pytest.MonkeyPatch, gcs_server: tuple[Any, str]) -> Iterator[LocalGcp]:
    """Fresh local BigQuery, Storage Read, GCS and token endpoints, with the environment pointing at them."""
    gcs, gcs_url = gcs_server
    gcs.wipe()
    from gcp_storage_emulator.handlers import buckets

    buckets.create_bucket(BUCKET, gcs._api._storage)

    bigquery = FakeBigQuery(gcs_endpoint=gcs_url).start()
    storage = FakeBigQueryStorage(bigquery).start()
    local = LocalGcp(bigquery, storage, gcs_url)
    bigquery.create_dataset(PROJECT, DATASET)
    for key, value in local.env().items():
        monkeypatch.setenv(key, value)
    try:
        yield local
    finally:
        storage.stop()
        bigquery.stop()
