"""A local Cloud Storage endpoint: gcp-storage-emulator in this process, on a free 127.0.0.1 port.

Every client finds it through ``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``, the variable
google-cloud-storage and gcsfs honour (and subprocesses inherit, e.g. the trainer a local
Vertex AI job runs): Airflow's ``ObjectStoragePath("gs://...")`` (gcsfs), the Google provider's
GCSHook and the trainer (``core/storage.py`` builds pyarrow's GcsFileSystem for the emulator,
since Arrow does not read the variable itself).

Gaps found and closed:
- gcsfs >= 2025 asks the Storage Control gRPC API for the bucket's layout (hierarchical or
  zonal) before the first operation; the emulator only speaks the JSON API, so each bucket cost
  a 60 s timeout before gcsfs fell back to the JSON API. ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``
  (read when gcsfs is imported) selects the plain JSON-API filesystem; it must be set before
  gcsfs is imported, which tests/fakes/fixtures.py does when pytest loads it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from tests.fakes.tls import HOST

DEFAULT_BUCKET = "my-bucket"


def disable_storage_layout_lookup() -> None:
    """Make gcsfs use the JSON API only (the emulator has no Storage Control gRPC API)."""
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class GcsEndpoint:
    """The emulator server, its URL and helpers to look at (and wipe) what clients stored."""

    def __init__(self, default_bucket: str = DEFAULT_BUCKET) -> None:
        from gcp_storage_emulator.server import create_server

        self.default_bucket = default_bucket
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._server = create_server(HOST, self.port, in_memory=True, default_bucket=default_bucket)

    def start(self) -> GcsEndpoint:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def wipe(self) -> None:
        """Delete every bucket and object, then create the default bucket again."""
        from gcp_storage_emulator.handlers import buckets

        self._server.wipe()
        buckets.create_bucket(self.default_bucket, self._server._storage)

    @property
    def fs(self) -> Any:
        """A gcsfs filesystem on the emulator (anonymous: the emulator checks no credentials)."""
        import gcsfs
        from google.auth.credentials import AnonymousCredentials

        return gcsfs.GCSFileSystem(token=AnonymousCredentials(), project="test-project", endpoint_url=self.url)

    def uri(self, path: str, bucket: str | None = None) -> str:
        """``gs://<bucket>/<path>``."""
        return f"gs://{bucket or self.default_bucket}/{path.lstrip('/')}"

    def objects(self, prefix: str = "") -> list[str]:
        """The gs:// URIs of the objects under ``prefix`` (a gs:// URI or a path in the default bucket)."""
        root = prefix.removeprefix("gs://") if prefix.startswith("gs://") else f"{self.default_bucket}/{prefix}"
        fs = self.fs
        fs.invalidate_cache()
        return sorted(f"gs://{p}" for p in fs.find(root.rstrip("/")))

    def read_bytes(self, uri: str) -> bytes:
        return bytes(self.fs.cat_file(uri.removeprefix("gs://")))

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def write_bytes(self, uri: str, data: bytes) -> None:
        self.fs.pipe_file(uri.removeprefix("gs://"), data)

    def write_text(self, uri: str, text: str) -> None:
        self.write_bytes(uri, text.encode("utf-8"))
