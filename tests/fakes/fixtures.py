"""pytest fixtures for the local Google Cloud endpoints (a plugin listed in tests/conftest.py).

- ``gcs_endpoint``: the local Cloud Storage (emptied for each test); ``STORAGE_EMULATOR_HOST`` points at it.
- ``vertex_endpoint``: the local Vertex AI (state reset for each test) with ``gcs_endpoint``; the Google
  provider's Vertex AI hooks reach it and ``google_cloud_default`` is an anonymous connection.

Both servers start once per session. Loading this module sets two process-wide variables that
must be set before gRPC opens its first TLS channel and before gcsfs is imported (see tls.py, gcs.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fakes import gcs, tls

gcs.disable_storage_layout_lookup()
tls.install_roots()

#: The project the tests' ml_platform and google_cloud_default connections name.
PROJECT = "my-project"


@pytest.fixture(scope="session")
def _gcs_server() -> Iterator[gcs.GcsEndpoint]:
    server = gcs.GcsEndpoint().start()
    yield server
    server.stop()


@pytest.fixture
def gcs_endpoint(_gcs_server: gcs.GcsEndpoint, monkeypatch: pytest.MonkeyPatch) -> gcs.GcsEndpoint:
    """The local GCS, empty but for its default bucket ``my-bucket``."""
    _gcs_server.wipe()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _gcs_server.url)
    return _gcs_server


@pytest.fixture(scope="session")
def _vertex_server(_gcs_server: gcs.GcsEndpoint) -> Iterator[object]:
    from tests.fakes.vertex import VertexEndpoint

    server = VertexEndpoint(storage_emulator_host=_gcs_server.url).start()
    yield server
    server.stop()


@pytest.fixture
def vertex_endpoint(_vertex_server, gcs_endpoint: gcs.GcsEndpoint, monkeypatch: pytest.MonkeyPatch):
    """The local Vertex AI, empty; jobs it runs see ``gcs_endpoint``.

    The hooks build clients for ``{region}-aiplatform.googleapis.com:443``: their endpoint
    resolution (``_get_api_endpoint``) is the one thing patched, so the hooks' own methods, the
    real clients and their gRPC transport all run. Credentials come from a real
    ``google_cloud_default`` connection with ``is_anonymous`` (the provider's own option).
    """
    from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobHook
    from airflow.providers.google.cloud.hooks.vertex_ai.model_service import ModelServiceHook

    _vertex_server.reset()
    for hook in (CustomJobHook, ModelServiceHook):
        monkeypatch.setattr(hook, "_get_api_endpoint", lambda self, region=None: _vertex_server.address)
    conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": PROJECT}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))
    yield _vertex_server
    _vertex_server.reset()
