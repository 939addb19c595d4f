"""A local Cloud Storage endpoint: gcp-storage-emulator in this process, on a free 127.0.0.1 port.

Every client finds it through ``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``, the variable
google-cloud-storage and gcsfs honour (and subprocesses inherit, e.g. the trainer a local
Vertex AI job runs): Airflow's ``ObjectStoragePath("gs://...")`` (gcsfs), the Google provider's
GCSHook and the trainer (``core/storage.py`` builds pyarrow's GcsFileSystem for the emulator,
since Arrow does not read the variable itself).

Bucket locations: the emulator creates every bucket in the ``US`` multi-region and ignores the
``location`` a client asks for. ``create_bucket(name, location)`` and ``set_location`` give a
bucket the location Cloud Storage would report (upper case, e.g. ``US-CENTRAL1``), which the
local BigQuery (EXPORT DATA) and Vertex AI (UploadModel, CustomJob output) check. The default
bucket is regional in ``DEFAULT_LOCATION``, where the tests' Vertex AI region is.

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
DEFAULT_LOCATION = "US-CENTRAL1"


def disable_storage_layout_lookup() -> None:
    """Make gcsfs use the JSON API only (the emulator has no Storage Control gRPC API)."""
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"


def bucket_location(endpoint: str, bucket: str) -> str | None:
    """The location the Cloud Storage endpoint at ``endpoint`` reports for ``bucket`` (None: no such bucket).

    How the other local endpoints (BigQuery's EXPORT DATA, Vertex AI) learn where a bucket is.
    """
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/storage/v1/b/{bucket}", timeout=10) as response:
            return str(json.load(response)["location"])
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class GcsEndpoint:
    """The emulator server, its URL and helpers to look at (and wipe) what clients stored."""

    def __init__(self, default_bucket: str = DEFAULT_BUCKET, default_location: str = DEFAULT_LOCATION) -> None:
        from gcp_storage_emulator.server import create_server

        self.default_bucket = default_bucket
        self.default_location = default_location
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._server = create_server(HOST, self.port, in_memory=True, default_bucket=default_bucket)

    def start(self) -> GcsEndpoint:
        self._server.start()
        self.set_location(self.default_bucket, self.default_location)
        return self

    def stop(self) -> None:
        self._server.stop()

    def wipe(self) -> None:
        """Delete every bucket and object, then create the default bucket again."""
        from gcp_storage_emulator.handlers import buckets

        self._server.wipe()
        buckets.create_bucket(self.default_bucket, self._server._storage)
        self.set_location(self.default_bucket, self.default_location)

    def create_bucket(self, name: str, location: str) -> str:
        """Create bucket ``name`` in ``location`` (``US``, ``us-central1``...); return its gs:// URI."""
        from gcp_storage_emulator.handlers import buckets

        buckets.create_bucket(name, self._server._storage)
        self.set_location(name, location)
        return f"gs://{name}"

    def set_location(self, name: str, location: str) -> None:
        """Move bucket ``name`` to ``location`` as Cloud Storage reports it (upper case; multi-regions typed so)."""
        storage = self._server._storage
        bucket = storage.buckets[name]
        multi = location.lower() in ("us", "eu", "asia")
        bucket.update(location=location.upper(), locationType="multi-region" if multi else "region")
        storage.create_bucket(name, bucket)  # the emulator's way to store a changed bucket

    def location(self, name: str) -> str | None:
        """The location of bucket ``name``, or None when it does not exist."""
        bucket = self._server._storage.buckets.get(name)
        return None if bucket is None else str(bucket["location"])

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
