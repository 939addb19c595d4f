"""Reading and writing artifacts by URI (``file://``, ``gs://`` or a plain path) with pyarrow.fs.

The trainer runs inside Vertex AI jobs without Airflow, so the core cannot use Airflow's
ObjectStoragePath; pyarrow's filesystems cover the same two schemes. Operators use
ObjectStoragePath.

``STORAGE_EMULATOR_HOST`` (the variable google-cloud-storage and gcsfs read) points gs://
URIs at a local GCS emulator, anonymously, so the trainer runs against the same local
endpoint as the rest of the gcp backend in tests.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs


def to_uri(path_or_uri: str | Path) -> str:
    """A URI for a local path; URIs pass through."""
    text = str(path_or_uri)
    return text if "://" in text else Path(text).expanduser().resolve().as_uri()


def join(uri: str, *parts: str) -> str:
    """Append path parts to a URI."""
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def _resolve(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    text = to_uri(uri)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator and text.startswith("gs://"):
        return _emulated_gcs(emulator), text.removeprefix("gs://")
    return pafs.FileSystem.from_uri(text)


def _emulated_gcs(host: str) -> pafs.FileSystem:
    """GCS at a local emulator: the convention Google's client libraries and gcsfs honour, Arrow does not.

    Emulators check no credentials, so the client is anonymous (Arrow would otherwise look for
    application default credentials, e.g. a metadata server, and stall).
    """
    scheme, _, endpoint = host.rpartition("://")
    return pafs.GcsFileSystem(
        anonymous=True,
        scheme=scheme or "http",
        endpoint_override=endpoint.rstrip("/"),
        retry_time_limit=dt.timedelta(seconds=15),
    )


def read_bytes(uri: str | Path) -> bytes:
    """The content of a file; a missing file raises FileNotFoundError naming the URI."""
    fs, path = _resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{uri} does not exist") from err


def read_text(uri: str | Path) -> str:
    """A UTF-8 file's text."""
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Write a file, creating its folder."""
    fs, path = _resolve(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def write_text(uri: str | Path, text: str) -> None:
    """Write a UTF-8 text file, creating its folder."""
    write_bytes(uri, text.encode("utf-8"))


def exists(uri: str | Path) -> bool:
    """Whether a file or folder exists at ``uri``."""
    fs, path = _resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` URI or plain path; None for remote URIs."""
    if "://" not in uri:
        return Path(uri)
    if uri.startswith("file://"):
        return Path(pafs.FileSystem.from_uri(uri)[1])
    return None


@dataclass(frozen=True)
class Artifacts:
    """How a stage reads and writes artifacts: this module's functions by default, ObjectStoragePath in Airflow.

    ``MLPlatformHook.get_artifacts()`` builds the Airflow one, with the connection's GCP credentials.
    ``root`` is the connection's artifact root, which a relative ``ml_models.uri`` is under
    (ADR 10); None means the embedded default's, ``$AIRFLOW_ML_HOME/artifacts``.
    """

    read_text: Callable[[str], str] = read_text
    read_bytes: Callable[[str], bytes] = read_bytes
    write_bytes: Callable[[str, bytes], None] = write_bytes
    exists: Callable[[str], bool] = exists
    root: str | None = None


#: Artifacts through this module (pyarrow.fs): the default of every stage outside Airflow.
DEFAULT_ARTIFACTS = Artifacts()
