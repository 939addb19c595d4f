"""The Model Registry half of the local Vertex AI endpoint, and what both halves share.

The rules it enforces and the ones it does not are listed in tests/fakes/vertex.py.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import grpc
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

#: The project number in the resource names the endpoint returns (Vertex AI returns numbers, not ids).
PROJECT_NUMBER = "123456789012"
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_MODEL_ID = re.compile(r"[a-z_][a-z0-9_-]{0,62}")
_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
_PARENT = re.compile(r"projects/([^/]+)/locations/([^/]+)")


class Refused(Exception):
    """A request Vertex AI would refuse: the gRPC status and message it answers with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_labels(labels: Any, what: str) -> None:
    if len(labels) > 64:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{what} has {len(labels)} labels; at most 64 are allowed")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{what} label {key!r}={value!r} is invalid: keys match [a-z][a-z0-9_-]{{0,62}}, "
                "values [a-z0-9_-]{0,63}",
            )


def check_bucket_region(storage_host: str | None, uri: str, where: str, what: str) -> None:
    """Vertex AI reads and writes only buckets in its own region (FAILED_PRECONDITION otherwise).

    https://cloud.google.com/vertex-ai/docs/general/import-model ("the bucket's region matches the
    regional endpoint you're using"), https://cloud.google.com/vertex-ai/docs/general/locations; the
    message is the service's, as quoted in https://github.com/googleapis/python-aiplatform/issues/885.
    ``where`` is a ``projects/*/locations/<region>`` name. Without a local Cloud Storage nothing is checked.
    """
    from tests.fakes.gcs import bucket_location

    if storage_host is None or not uri.startswith("gs://"):
        return
    region = where.rsplit("/", 1)[-1]
    bucket = uri[len("gs://") :].split("/", 1)[0]
    found = bucket_location(storage_host, bucket)
    if found is None:
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"{what}: the Cloud Storage bucket {bucket} does not exist")
    if found.lower() != region:
        raise Refused(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"The Cloud Storage bucket of `{uri}` is in location `{found.lower()}`. It must be in the same "
            f"regional location as the service location `{region}`.",
        )


def location(parent: str) -> str:
    """``projects/<number>/locations/<region>`` for a request's ``parent`` (Vertex AI names carry the number)."""
    found = _PARENT.fullmatch(parent)
    if not found:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"parent {parent!r} is not projects/*/locations/*")
    return f"projects/{PROJECT_NUMBER}/locations/{found.group(2)}"


def now() -> dt.datetime:
    """The resource timestamp for "now"."""
    return dt.datetime.now(dt.UTC)


class ModelRegistryService:
    """ModelService UploadModel/GetModel/MergeVersionAliases and Operations GetOperation (a mixin of VertexEndpoint)."""

    _lock: threading.RLock
    _ids: Any
    storage_emulator_host: str | None
    models: dict[str, list[v1.Model]]
    operations: dict[str, operations_pb2.Operation]

    def upload_model(self, request: v1.UploadModelRequest) -> operations_pb2.Operation:
        where = location(request.parent)
        model = v1.Model(request.model)
        if not model.display_name or len(model.display_name) > 128:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "Model display_name must be 1 to 128 characters")
        if not model.container_spec.image_uri:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Model container_spec.image_uri is required: a custom model needs a serving container",
            )
        check_labels(model.labels, "Model")
        check_bucket_region(self.storage_emulator_host, model.artifact_uri, where, "Model artifact_uri")
        for alias in model.version_aliases:
            self._check_alias(alias)
        with self._lock:
            if request.parent_model and request.model_id:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "set either parent_model or model_id, not both")
            if request.parent_model:
                mid = request.parent_model.rsplit("/", 1)[-1]
                if mid not in self.models:
                    raise Refused(grpc.StatusCode.NOT_FOUND, f"parent_model {request.parent_model} does not exist")
            else:
                mid = request.model_id or str(next(self._ids))
                if not _MODEL_ID.fullmatch(mid):
                    raise Refused(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"model_id {mid!r} is invalid: up to 63 of [a-z0-9_-], not starting with a digit or hyphen",
                    )
                if mid in self.models:
                    raise Refused(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"Model {mid} already exists; upload a new version with parent_model",
                    )
            versions = self.models.setdefault(mid, [])
            model.name = f"{where}/models/{mid}"
            model.version_id = str(len(versions) + 1)
            model.create_time = model.version_create_time = now()
            aliases = list(model.version_aliases) + ([] if versions else ["default"])
            self._claim(mid, aliases)
            del model.version_aliases[:]
            model.version_aliases.extend(aliases)
            versions.append(model)
            op_name = f"{where}/models/{mid}/operations/{next(self._ids)}"
            response = v1.UploadModelResponse(model=model.name, model_version_id=model.version_id)
            packed = any_pb2.Any()
            packed.Pack(v1.UploadModelResponse.pb(response))
            # Done only when the client polls: the client's GetOperation path is exercised too.
            self.operations[op_name] = operations_pb2.Operation(name=op_name, done=True, response=packed)
            return operations_pb2.Operation(name=op_name, done=False)

    def get_operation(self, request: operations_pb2.GetOperationRequest) -> operations_pb2.Operation:
        with self._lock:
            if request.name not in self.operations:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"operation {request.name} does not exist")
            return self.operations[request.name]

    @staticmethod
    def _check_alias(alias: str) -> None:
        if not _ALIAS.fullmatch(alias):
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"version alias {alias!r} does not match [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9]",
            )

    def _claim(self, mid: str, aliases: list[str]) -> None:
        """An alias names one version: take it off the others."""
        for version in self.models.get(mid, []):
            kept = [a for a in version.version_aliases if a not in aliases]
            del version.version_aliases[:]
            version.version_aliases.extend(kept)

    def _resolve(self, name: str) -> v1.Model:
        path, _, ref = name.partition("@")
        mid = path.rsplit("/", 1)[-1] if "/models/" in path else ""
        for version in self.models.get(mid, []):
            if (ref or "default") in version.version_aliases or ref == version.version_id:
                return version
        raise Refused(grpc.StatusCode.NOT_FOUND, f"Model {name} does not exist")

    def get_model(self, request: v1.GetModelRequest) -> v1.Model:
        with self._lock:
            return v1.Model(self._resolve(request.name))

    def merge_version_aliases(self, request: v1.MergeVersionAliasesRequest) -> v1.Model:
        ref = request.name.partition("@")[2]
        if not ref.isdigit():
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "MergeVersionAliases needs the model version id in the name (models/<id>@<version id>), "
                f"got {request.name}",
            )
        with self._lock:
            target = self._resolve(request.name)
            mid = target.name.rsplit("/", 1)[-1]
            added = [a for a in request.version_aliases if not a.startswith("-")]
            removed = [a[1:] for a in request.version_aliases if a.startswith("-")]
            for alias in added + removed:
                self._check_alias(alias)
            if "default" in removed:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "the default version alias cannot be removed")
            self._claim(mid, added)
            kept = [a for a in target.version_aliases if a not in removed]
            del target.version_aliases[:]
            target.version_aliases.extend(kept + added)
            return v1.Model(target)
