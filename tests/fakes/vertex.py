"""A local Vertex AI endpoint (gRPC over TLS) for the real google-cloud-aiplatform clients and provider hooks.

It serves what airflow-ml-provider calls: JobService Create/Get/List/CancelCustomJob, ModelService
UploadModel (a long-running operation, finished on the client's first GetOperation poll)/GetModel/
MergeVersionAliases, and google.longrunning.Operations GetOperation. Requests and replies are the
proto-plus types of ``google.cloud.aiplatform_v1``, so a misspelled or mistyped field fails in the
client's serialisation, as it would against Vertex AI. Every request is recorded in ``requests``.

CreateCustomJob RUNS the job: the first worker pool's ``command + args`` as a local subprocess
(``python`` is this interpreter; the image is not pulled), with the spec's ``env``, the ``AIP_*``
variables Vertex AI sets, and ``STORAGE_EMULATOR_HOST`` so the job reads and writes the local GCS.
State: QUEUED -> PENDING -> RUNNING -> SUCCEEDED, or FAILED (``error.message`` ends with the tail of
stderr), or CANCELLING -> CANCELLED (cancel kills the process group).

Rules enforced (each answers as Vertex AI documents):
- CustomJob ``display_name`` required, at most 128 characters:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs#CustomJob
- labels (jobs and models): at most 64; keys 1-63 characters ``[a-z][a-z0-9_-]*``; values at most 63
  ``[a-z0-9_-]`` (INVALID_ARGUMENT): https://cloud.google.com/resource-manager/docs/labels-overview#requirements
- a job needs at least one worker pool with a container ``image_uri``:
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec
- ``AIP_MODEL_DIR``/``AIP_CHECKPOINT_DIR``/``AIP_TENSORBOARD_LOG_DIR`` = ``<base_output_directory>/model/``,
  ``/checkpoints/``, ``/logs/``: https://cloud.google.com/vertex-ai/docs/training/code-requirements#environment-variables
- list filter: only ``display_name``, ``state`` and ``labels.<key>`` comparisons joined by AND
  (anything else is INVALID_ARGUMENT): https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs/list
- cancelling a job that already ended is FAILED_PRECONDITION; a cancelled job gets ``error.code`` 1 (CANCELLED):
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs/cancel
- buckets outside the service's region: a CustomJob's ``base_output_directory`` and a Model's
  ``artifact_uri`` must be in a bucket of the request's region (FAILED_PRECONDITION, with the message
  Vertex AI answers UploadModel with); the bucket's location comes from the local Cloud Storage:
  https://cloud.google.com/vertex-ai/docs/general/import-model,
  https://cloud.google.com/vertex-ai/docs/general/locations,
  https://github.com/googleapis/python-aiplatform/issues/885 (Vertex AI may refuse a CustomJob's
  output bucket later than at create; here it is refused at once)
- get/cancel of a missing job, get of a missing model, version or alias: NOT_FOUND
- model id: at most 63 characters ``[a-z0-9_-]``, not starting with a digit or hyphen; a ``model_id``
  that exists is ALREADY_EXISTS; a new version names its model in ``parent_model`` (which must exist),
  never both: https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.models/upload
- a custom model needs a serving ``container_spec.image_uri`` and a ``display_name`` (at most 128):
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.models#Model
- version aliases match ``[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]``; the first version gets ``default``; an
  alias names one version of a model, so giving it to another moves it; ``GetModel`` resolves
  ``id``, ``id@<version id>`` and ``id@<alias>``; MergeVersionAliases needs ``@<version id>``
  and ``-alias`` removes one (``default`` cannot be removed):
  https://cloud.google.com/vertex-ai/docs/model-registry/model-alias,
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.models/mergeVersionAliases

NOT enforced (the code relies on them untested here):
- IAM, quotas, machine types, accelerators, networks, service accounts, the image itself (never pulled)
- project ids vs numbers (names carry the project number ``PROJECT_NUMBER``; any project is accepted)
- replica counts beyond the first worker pool's first replica; restarts, scheduling, timeouts, EXPIRED
  and PAUSED states (``set_state`` can force them)
- which wins when a container ``env`` sets an ``AIP_*`` variable too (here Vertex AI's value wins)
- page tokens (one page), ``read_mask``, filters with OR/NOT/functions, create_time ordering
- model artifacts are not copied or checked; upload never fails asynchronously

Test hooks (not Vertex AI behaviour): ``run_jobs=False`` + ``release``, ``set_state``, ``fail_next``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import proto
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from google.rpc import status_pb2

from tests.fakes import tls
from tests.fakes.vertex_models import (
    PROJECT_NUMBER,
    ModelRegistryService,
    Refused,
    check_bucket_region,
    check_labels,
    location,
    now,
)

__all__ = ["PROJECT_NUMBER", "Job", "Refused", "VertexEndpoint"]

JOB_ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
             "JOB_STATE_PARTIALLY_SUCCEEDED"}  # fmt: skip
_FILTER_TERM = re.compile(r'\s*(display_name|state|labels\.[a-z][a-z0-9_-]*)\s*(=|!=)\s*"?([^"\s]*)"?\s*')
#: The repository root, so the job's ``python -m airflow_ml_provider...`` imports the code under test.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Job:
    """One CustomJob and the local process that runs it."""

    job: v1.CustomJob
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_dir: Path | None = None
    held: threading.Event = field(default_factory=threading.Event)
    cancel_requested: bool = False
    forced: bool = False  # set_state took over: the process's exit no longer decides the state

    @property
    def state(self) -> str:
        return v1.JobState(self.job.state).name

    def stderr(self) -> str:
        return (self.log_dir / "stderr").read_text(errors="replace") if self.log_dir else ""

    def stdout(self) -> str:
        return (self.log_dir / "stdout").read_text(errors="replace") if self.log_dir else ""


class VertexEndpoint(ModelRegistryService):
    """The server, its state (``jobs``, ``models``, ``operations``) and the ``requests`` it received.

    ``run_jobs=False`` keeps new jobs PENDING (as while Vertex AI provisions) until ``release(name)``.
    """

    def __init__(self, storage_emulator_host: str | None = None) -> None:
        self.storage_emulator_host = storage_emulator_host
        self._lock = threading.RLock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers(self._handlers())
        self.port = self._server.add_secure_port(f"{tls.HOST}:0", tls.server_credentials())
        self.address = f"{tls.HOST}:{self.port}"
        self._logs = Path(tempfile.mkdtemp(prefix="aml-vertex-jobs-"))
        self.reset()

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> VertexEndpoint:
        self._server.start()
        return self

    def stop(self) -> None:
        self.reset()
        self._server.stop(grace=None)
        shutil.rmtree(self._logs, ignore_errors=True)  # the jobs' logs (left in /tmp by every session before)

    def reset(self) -> None:
        """Kill running jobs and forget everything (between tests)."""
        with self._lock:
            for job in getattr(self, "jobs", {}).values():
                job.cancel_requested = True
                job.held.set()
                self._kill(job)
            self.jobs: dict[str, Job] = {}
            self.models: dict[str, list[v1.Model]] = {}
            self.operations: dict[str, operations_pb2.Operation] = {}
            self.requests: list[tuple[str, Any]] = []
            self.run_jobs = True
            self._faults: dict[str, list[tuple[grpc.StatusCode, str]]] = {}
            self._ids = itertools.count(1001)

    # --- what tests look at -------------------------------------------------------------

    def calls(self, method: str) -> list[Any]:
        """The requests received by one method, e.g. ``calls("CreateCustomJob")``."""
        return [request for name, request in self.requests if name == method]

    def job(self, name: str) -> Job:
        return self.jobs[name.rsplit("/", 1)[-1]]

    def wait(self, name: str, timeout: float = 60.0, states: set[str] | frozenset[str] = frozenset(JOB_ENDED)) -> str:
        """Wait until the job is in one of ``states`` (default: ended); return its state."""
        deadline = time.monotonic() + timeout
        job = self.job(name)
        while job.state not in states:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {name} is still {job.state} after {timeout}s; stderr:\n{job.stderr()[-2000:]}"
                )
            time.sleep(0.02)
        return job.state

    def release(self, name: str) -> None:
        """Let a job created while ``run_jobs`` was False leave PENDING and run."""
        self.job(name).held.set()

    def fail_next(self, method: str, code: grpc.StatusCode, message: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (a transient outage, say)."""
        with self._lock:
            self._faults.setdefault(method, []).extend([(code, message)] * times)

    def set_state(self, name: str, state: str, error: str | None = None) -> None:
        """Force a state Vertex AI reports but this fake does not reach by itself (e.g. EXPIRED)."""
        with self._lock:
            job = self.job(name)
            job.forced = True
            self._kill(job)
            job.held.set()
            job.job.state = v1.JobState[state]
            if error:
                job.job.error = status_pb2.Status(code=13, message=error)

    def aliases(self, model_id: str) -> dict[str, list[str]]:
        """``{version id: sorted aliases}`` of a model."""
        return {m.version_id: sorted(m.version_aliases) for m in self.models[model_id]}

    # --- gRPC plumbing -----------------------------------------------------------------

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        def unary(method: str, fn: Any, request_type: Any, response_type: Any) -> grpc.RpcMethodHandler:
            def handle(request: Any, context: grpc.ServicerContext) -> Any:
                with self._lock:
                    self.requests.append((method, request))
                    fault = self._faults[method].pop(0) if self._faults.get(method) else None
                if fault is not None:
                    context.abort(*fault)
                try:
                    return fn(request)
                except Refused as err:
                    context.abort(err.code, str(err))

            decode, _ = _codec(request_type)
            _, encode = _codec(response_type)
            return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=decode, response_serializer=encode)

        jobs = {
            "CreateCustomJob": unary(
                "CreateCustomJob", self.create_custom_job, v1.CreateCustomJobRequest, v1.CustomJob
            ),
            "GetCustomJob": unary("GetCustomJob", self.get_custom_job, v1.GetCustomJobRequest, v1.CustomJob),
            "ListCustomJobs": unary(
                "ListCustomJobs", self.list_custom_jobs, v1.ListCustomJobsRequest, v1.ListCustomJobsResponse
            ),
            "CancelCustomJob": unary(
                "CancelCustomJob", self.cancel_custom_job, v1.CancelCustomJobRequest, empty_pb2.Empty
            ),
        }
        models = {
            "UploadModel": unary("UploadModel", self.upload_model, v1.UploadModelRequest, operations_pb2.Operation),
            "GetModel": unary("GetModel", self.get_model, v1.GetModelRequest, v1.Model),
            "MergeVersionAliases": unary(
                "MergeVersionAliases", self.merge_version_aliases, v1.MergeVersionAliasesRequest, v1.Model
            ),
        }
        operations = {
            "GetOperation": unary(
                "GetOperation", self.get_operation, operations_pb2.GetOperationRequest, operations_pb2.Operation
            )
        }
        return [
            grpc.method_handlers_generic_handler("google.cloud.aiplatform.v1.JobService", jobs),
            grpc.method_handlers_generic_handler("google.cloud.aiplatform.v1.ModelService", models),
            grpc.method_handlers_generic_handler("google.longrunning.Operations", operations),
        ]

    # --- JobService ----------------------------------------------------------------------

    def create_custom_job(self, request: v1.CreateCustomJobRequest) -> v1.CustomJob:
        where = location(request.parent)
        spec = v1.CustomJob(request.custom_job)
        if not spec.display_name or len(spec.display_name) > 128:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"CustomJob display_name must be 1 to 128 characters, got {len(spec.display_name)}",
            )
        check_labels(spec.labels, "CustomJob")
        pools = spec.job_spec.worker_pool_specs
        if not pools or not pools[0].container_spec.image_uri:
            raise Refused(
                grpc.StatusCode.INVALID_ARGUMENT,
                "CustomJob job_spec.worker_pool_specs[0] needs a container_spec with an image_uri",
            )
        base = spec.job_spec.base_output_directory.output_uri_prefix
        check_bucket_region(self.storage_emulator_host, base, where, "CustomJob base_output_directory")
        with self._lock:
            job_id = str(next(self._ids))
            spec.name = f"{where}/customJobs/{job_id}"
            spec.state = v1.JobState.JOB_STATE_QUEUED
            spec.create_time = spec.update_time = now()
            job = Job(job=spec, env=self._job_env(spec))
            if self.run_jobs:
                job.held.set()
            self.jobs[job_id] = job
            created = v1.CustomJob(spec)
        threading.Thread(target=self._run, args=(job,), name=f"vertex-job-{job_id}", daemon=True).start()
        return created

    def _job_env(self, spec: v1.CustomJob) -> dict[str, str]:
        container = spec.job_spec.worker_pool_specs[0].container_spec
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT")  # fmt: skip
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.update({e.name: e.value for e in container.env})
        base = spec.job_spec.base_output_directory.output_uri_prefix.rstrip("/")
        if base:
            env.update(
                AIP_MODEL_DIR=f"{base}/model/",
                AIP_CHECKPOINT_DIR=f"{base}/checkpoints/",
                AIP_TENSORBOARD_LOG_DIR=f"{base}/logs/",
            )
        env["CLOUD_ML_JOB_ID"] = spec.name.rsplit("/", 1)[-1]
        if self.storage_emulator_host:
            env["STORAGE_EMULATOR_HOST"] = self.storage_emulator_host
        return env

    def _run(self, job: Job) -> None:
        self._set(job, "JOB_STATE_PENDING")
        job.held.wait()
        container = job.job.job_spec.worker_pool_specs[0].container_spec
        command = [sys.executable if c == "python" else c for c in [*container.command, *container.args]]
        with self._lock:
            if job.cancel_requested or job.forced:  # cancelled, reset or forced meanwhile
                return
            job.log_dir = self._logs / job.job.name.rsplit("/", 1)[-1]
            job.log_dir.mkdir(parents=True, exist_ok=True)
            with open(job.log_dir / "stdout", "wb") as out, open(job.log_dir / "stderr", "wb") as err:
                job.proc = subprocess.Popen(
                    command, env=job.env, stdout=out, stderr=err, cwd=job.log_dir, start_new_session=True
                )
            job.job.start_time = now()
            job.job.state = v1.JobState.JOB_STATE_RUNNING
        code = job.proc.wait()
        with self._lock:
            if job.forced:
                return
            job.job.end_time = job.job.update_time = now()
            if job.cancel_requested:
                job.job.state = v1.JobState.JOB_STATE_CANCELLED
                job.job.error = status_pb2.Status(code=1, message="CANCELED")
            elif code == 0:
                job.job.state = v1.JobState.JOB_STATE_SUCCEEDED
            else:
                tail = "\n".join(job.stderr().strip().splitlines()[-10:])
                job.job.state = v1.JobState.JOB_STATE_FAILED
                job.job.error = status_pb2.Status(
                    code=3, message=f"The replica workerpool0-0 exited with a non-zero status of {code}. {tail}"
                )

    def _set(self, job: Job, state: str) -> None:
        with self._lock:
            if job.state not in JOB_ENDED and not job.cancel_requested and not job.forced:
                job.job.state = v1.JobState[state]
                job.job.update_time = now()

    def _find(self, name: str) -> Job:
        job = self.jobs.get(name.rsplit("/", 1)[-1]) if "/customJobs/" in name else None
        if job is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, f"The CustomJob does not exist: {name}")
        return job

    def get_custom_job(self, request: v1.GetCustomJobRequest) -> v1.CustomJob:
        with self._lock:
            return v1.CustomJob(self._find(request.name).job)

    def list_custom_jobs(self, request: v1.ListCustomJobsRequest) -> v1.ListCustomJobsResponse:
        location(request.parent)
        terms = [t for t in re.split(r"\s+AND\s+", request.filter.strip()) if t] if request.filter else []
        checks = []
        for term in terms:
            found = _FILTER_TERM.fullmatch(term)
            if not found:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter term {term!r}")
            checks.append(found.groups())

        def matches(job: v1.CustomJob) -> bool:
            for key, op, value in checks:
                if key == "display_name":
                    actual = job.display_name
                elif key == "state":
                    actual = v1.JobState(job.state).name
                else:
                    actual = job.labels.get(key.split(".", 1)[1], "")
                if (actual == value) != (op == "="):
                    return False
            return True

        with self._lock:
            found_jobs = [v1.CustomJob(j.job) for j in self.jobs.values() if matches(j.job)]
        return v1.ListCustomJobsResponse(custom_jobs=sorted(found_jobs, key=lambda j: j.name, reverse=True))

    def cancel_custom_job(self, request: v1.CancelCustomJobRequest) -> empty_pb2.Empty:
        with self._lock:
            job = self._find(request.name)
            if job.state in JOB_ENDED:
                raise Refused(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Cannot cancel CustomJob {request.name}: it is already in state {job.state}.",
                )
            job.cancel_requested = True
            job.job.state = v1.JobState.JOB_STATE_CANCELLING
            if job.proc is None:  # not started yet: nothing to kill
                job.job.state = v1.JobState.JOB_STATE_CANCELLED
                job.job.error = status_pb2.Status(code=1, message="CANCELED")
                job.held.set()
            else:
                self._kill(job)
        return empty_pb2.Empty()

    @staticmethod
    def _kill(job: Job) -> None:
        if job.proc is not None and job.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.proc.pid, signal.SIGTERM)


def _codec(message_type: Any) -> tuple[Any, Any]:
    """(deserialise, serialise) for a proto-plus type or a plain protobuf type."""
    if isinstance(message_type, proto.message.MessageMeta):
        return message_type.deserialize, message_type.serialize
    return message_type.FromString, lambda m: m.SerializeToString()
