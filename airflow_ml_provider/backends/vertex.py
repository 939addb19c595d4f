"""The Vertex AI training runner: the trainer entrypoint as a CustomJob, through the Google provider's hooks.

The job runs ``python -m airflow_ml_provider.core.training.trainer`` in ``training_image_uri`` with exactly
the arguments and ``AIP_*`` environment of the local runner. Its display name
(``<model>-<version>``) and ``aml-version`` label are deterministic per run, so a retried or
crashed task finds the job it started (running or succeeded) instead of submitting a second one;
the job name is also kept in Airflow 3.3's ``task_state_store`` when the context has one.
Trained versions are uploaded to the Vertex AI Model Registry under an alias ``v-<version>``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobHook
from airflow.providers.google.cloud.hooks.vertex_ai.model_service import ModelServiceHook
from airflow.providers.google.cloud.links.base import BASE_LINK
from airflow.providers.google.cloud.links.vertex_ai import VERTEX_AI_CUSTOM_JOB_LINK
from google.api_core.exceptions import FailedPrecondition, MethodNotImplemented, NotFound, ServerError, TooManyRequests
from google.cloud.aiplatform_v1 import JobState

from airflow_ml_provider.backends.gcp_locations import (
    Locations,
    bucket_location,
    bucket_name,
    location_problems,
    vertex_region,
)
from airflow_ml_provider.core.training.job import TRAINER_MODULE, TrainingJob
from airflow_ml_provider.core.warehouse.labels import sanitize_label
from airflow_ml_provider.exceptions import ContractError, MLProviderError, TrainingJobError

if TYPE_CHECKING:
    from google.cloud.aiplatform_v1 import CustomJob, Model

    from airflow_ml_provider.core.contract.config import PlatformConfig
    from airflow_ml_provider.core.training.envelope import Envelope

log = logging.getLogger(__name__)

#: The container's command; ``TrainingJob.args()`` follows it.
TRAINER_COMMAND = ("python", "-m", TRAINER_MODULE)
#: ``task_state_store`` key holding the CustomJob's resource name across retries.
STATE_STORE_KEY = "vertex_custom_job"
MODEL_LABEL, VERSION_LABEL = "aml-model", "aml-version"
SUCCEEDED = "JOB_STATE_SUCCEEDED"
#: A job in one of these states is reattached to instead of submitting a new one.
REATTACH_STATES = frozenset(
    {"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_UPDATING", SUCCEEDED}
)
CANCELLED_STATES = frozenset({"JOB_STATE_CANCELLED"})
# PAUSED counts as failed (as in the Google provider): nothing resumes it, so waiting would never end.
FAILED_STATES = frozenset(
    {"JOB_STATE_FAILED", "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_PAUSED"}
)
_UPLOAD_TIMEOUT = 900.0
#: Polling a job retries a transient error this many times in a row, waiting RETRY_BASE * 2**n seconds (at most
#: RETRY_CAP) in between: about ten minutes of outage before the wait gives up.
MAX_POLL_FAILURES, RETRY_BASE, RETRY_CAP = 10, 2.0, 120.0


class VertexJobPollError(MLProviderError):
    """Polling a Vertex AI job failed (network, quota); a retry reattaches to the same job."""

    retryable = True


class StateStore(Protocol):
    """What the runner uses of Airflow's ``context["task_state_store"]``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


def display_name(job: TrainingJob) -> str:
    """``<model>-<version>``, within Vertex AI's 128 characters and safe to quote in a list filter."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{job.model_name}-{job.version}")[:128]


def job_labels(job: TrainingJob) -> dict[str, str]:
    """The task's labels (dag/task/run) plus the model and version that make a job findable on retry."""
    labels = {sanitize_label(k, key=True): sanitize_label(v) for k, v in job.labels.items()}
    labels[MODEL_LABEL] = sanitize_label(job.model_name)
    labels[VERSION_LABEL] = sanitize_label(job.version)
    return labels


def model_id(model_name: str) -> str:
    """The Vertex AI Model id of a model: ``[a-z0-9_-]``, starting with a letter, at most 63 characters."""
    return sanitize_label(model_name, key=True)


def version_alias(version: str) -> str:
    """The Model Registry alias pinning one trained version: ``v-<version>``."""
    return "v-" + re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")


def job_id(name: str) -> str:
    """The id (last part) of a CustomJob resource name."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def state_name(state: Any) -> str:
    """A JobState (enum or int) as its name, e.g. ``JOB_STATE_RUNNING``."""
    return JobState(state).name


def job_outcome(state: str) -> str | None:
    """``success``, ``error`` or ``cancelled`` for a finished job; None while it is not finished."""
    if state == SUCCEEDED:
        return "success"
    if state in CANCELLED_STATES:
        return "cancelled"
    if state in FAILED_STATES:
        return "error"
    return None


def is_transient(err: BaseException) -> bool:
    """Whether a failed call is worth repeating: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED/429, other 5xx.

    GetCustomJob has no retry of its own (the client's default is none), so one blip would end the wait
    while the job goes on running and billing. https://google.aip.dev/194 names UNAVAILABLE as the code to
    retry; quota (429) and deadline errors pass with time too, so they are retried here as well.
    """
    return isinstance(err, ServerError | TooManyRequests) and not isinstance(err, MethodNotImplemented)


def retry_delay(failures: int, base: float = RETRY_BASE, cap: float = RETRY_CAP) -> float:
    """Seconds to wait after the ``failures``-th transient error in a row: doubling from ``base``, at most ``cap``."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


def job_event(name: str, job: CustomJob) -> dict[str, Any] | None:
    """The trigger event payload for a finished job; None while it runs."""
    state = state_name(job.state)
    status = job_outcome(state)
    if status is None:
        return None
    message = {"success": "succeeded", "cancelled": "was cancelled"}.get(status) or (
        job.error.message or f"ended in state {state}"
    )
    return {"status": status, "job_name": name, "state": state, "message": message}


class VertexTrainingRunner:
    """Submits, finds, watches and cancels training CustomJobs; uploads trained versions to the Model Registry."""

    #: The operator may wait for this runner's jobs in the triggerer (``VertexTrainingJobTrigger``).
    supports_deferral = True

    def __init__(
        self, config: PlatformConfig, *, poll_interval: float = 60, state_store: StateStore | None = None
    ) -> None:
        if not config.project:
            raise ContractError("the Vertex AI runner needs `project` in the ml_platform connection extras.")
        self.config = config
        self.project: str = config.project
        self.region = vertex_region(config.location)
        self.poll_interval = poll_interval
        self.state_store = state_store
        self.job_name: str | None = None  # the job ``run`` waits for (``reattach`` or ``run`` sets it)

    def __repr__(self) -> str:
        return f"VertexTrainingRunner({self.project}, {self.region})"

    @cached_property
    def hook(self) -> CustomJobHook:
        """The Google provider's CustomJob hook: credentials come from ``config.gcp_conn_id``."""
        return CustomJobHook(gcp_conn_id=self.config.gcp_conn_id, impersonation_chain=self.config.impersonation_chain)

    @cached_property
    def model_hook(self) -> ModelServiceHook:
        """The Google provider's Model Registry hook."""
        return ModelServiceHook(
            gcp_conn_id=self.config.gcp_conn_id, impersonation_chain=self.config.impersonation_chain
        )

    # --- the job ----------------------------------------------------------------------

    def reattach(self, job: TrainingJob) -> bool:
        """``TrainingRunner``: check the connection can run ``job``, then find a job of this run already started."""
        self.validate(job)
        self.check_bucket_location(job)
        self.job_name = self.find_reattachable(job, self.state_store)
        return self.job_name is not None

    def run(self, job: TrainingJob) -> None:
        """``TrainingRunner``: submit ``job`` (unless reattached) and poll until it ends; raise unless it succeeded."""
        if self.job_name is None:
            self.job_name = self.submit(job, self.state_store)
        self.wait(self.job_name, self.poll_interval)

    def validate(self, job: TrainingJob) -> None:
        """Fail before any data is exported when the connection cannot run ``job`` on Vertex AI."""
        if not self.config.training_image_uri:
            raise ContractError(
                "the gcp backend trains on Vertex AI and needs `training_image_uri` in the ml_platform "
                "connection extras: a container image with airflow-ml-provider installed (the job runs "
                '`python -m airflow_ml_provider.core.training.trainer` in it), e.g. {"training_image_uri": '
                '"us-docker.pkg.dev/my-project/ml/airflow-ml-trainer:1.0"}.'
            )
        if not job.run_dir.startswith("gs://"):
            raise ContractError(
                f"Vertex AI jobs write their model to GCS, but the run folder is {job.run_dir!r}. Set "
                "`staging_bucket` (or `artifact_root`) to a gs:// URI in the ml_platform connection extras."
            )

    def check_bucket_location(self, job: TrainingJob) -> None:
        """Refuse a run folder in a bucket outside the Vertex AI region, before any data is exported or job billed.

        The dataset is where the connection's ``location`` says (BigQuery runs its jobs there);
        ``gcp_locations`` holds the rules and their documentation.
        """
        bucket = bucket_name(job.run_dir)
        if bucket is None:
            return
        found = Locations(
            self.config.location, f"{self.project}:{self.config.dataset}", self.config.location, bucket,
            bucket_location(self.config, bucket),
        )  # fmt: skip
        problems = location_problems(found)
        if problems:
            raise ContractError(" ".join(problems))

    def custom_job_spec(self, job: TrainingJob) -> dict[str, Any]:
        """The CustomJob request: one replica of the trainer with the local runner's args and env."""
        self.validate(job)
        image = str(self.config.training_image_uri)
        container = {
            "image_uri": image,
            "command": list(TRAINER_COMMAND),
            "args": job.args(),
            # AIP_MODEL_DIR is passed explicitly too: it equals what Vertex derives from the base directory.
            "env": [{"name": k, "value": v} for k, v in job.env().items()],
        }
        spec: dict[str, Any] = {
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": self.config.training_machine_type},
                    "replica_count": 1,
                    "container_spec": container,
                }
            ],
            # Vertex sets AIP_MODEL_DIR=<base>/model, so the run folder makes it job.model_dir.
            "base_output_directory": {"output_uri_prefix": job.run_dir},
        }
        if self.config.training_service_account:
            spec["service_account"] = self.config.training_service_account
        if self.config.training_network:
            spec["network"] = self.config.training_network
        return {"display_name": display_name(job), "labels": job_labels(job), "job_spec": spec}

    def submit_or_reattach(self, job: TrainingJob, state_store: StateStore | None = None) -> str:
        """The resource name of this run's job: the one already started (running or succeeded), else a new one."""
        return self.find_reattachable(job, state_store) or self.submit(job, state_store)

    def find_reattachable(self, job: TrainingJob, state_store: StateStore | None = None) -> str | None:
        """The job a previous try of this run started and that is not failed, or None."""
        name = self._remembered(job, state_store) or self._listed(job)
        if name is not None:
            log.info(
                "Reattaching to Vertex AI training job %s (%s): %s", name, display_name(job), self.console_url(name)
            )
            self._remember(name, state_store)
        return name

    def submit(self, job: TrainingJob, state_store: StateStore | None = None) -> str:
        """Create the CustomJob; return its resource name (remembered in ``state_store``)."""
        spec = self.custom_job_spec(job)
        created = self.hook.create_custom_job(project_id=self.project, region=self.region, custom_job=spec)
        log.info(
            "Submitted Vertex AI training job %s (%s): %s",
            created.name,
            spec["display_name"],
            self.console_url(created.name),
        )
        self._remember(created.name, state_store)
        return created.name

    def _remembered(self, job: TrainingJob, state_store: StateStore | None) -> str | None:
        name = state_store.get(STATE_STORE_KEY) if state_store is not None else None
        if not name:
            return None
        try:
            found = self._get(name)
        except NotFound:
            return None
        if found.display_name == display_name(job) and state_name(found.state) in REATTACH_STATES:
            return str(name)
        return None

    def _listed(self, job: TrainingJob) -> str | None:
        # Only the display name goes into the server-side filter (hyphenated label keys need quoting
        # rules the API does not document); the version label is checked here.
        version = job_labels(job)[VERSION_LABEL]
        found = [
            j
            for j in self.hook.list_custom_jobs(
                project_id=self.project,
                region=self.region,
                page_size=None,
                page_token=None,
                filter=f'display_name="{display_name(job)}"',
                read_mask=None,
            )
            if j.labels.get(VERSION_LABEL) == version and state_name(j.state) in REATTACH_STATES
        ]
        # A succeeded job already holds the model; otherwise follow the live one.
        found.sort(key=lambda j: state_name(j.state) != SUCCEEDED)
        return found[0].name if found else None

    @staticmethod
    def _remember(name: str, state_store: StateStore | None) -> None:
        if state_store is not None:
            state_store.set(STATE_STORE_KEY, name)

    def _get(self, name: str) -> CustomJob:
        return self.hook.get_custom_job(project_id=self.project, region=self.region, custom_job=job_id(name))

    def state(self, name: str) -> str:
        """The job's state name, e.g. ``JOB_STATE_RUNNING``."""
        return state_name(self._get(name).state)

    def wait(self, name: str, poll_interval: float) -> dict[str, Any]:
        """Poll until the job finishes (the non-deferrable path); raise unless it succeeded.

        Transient polling errors are retried with capped backoff (``is_transient``).
        """
        failures = 0
        while True:
            try:
                job = self._get(name)
            except Exception as err:
                failures += 1
                if not is_transient(err) or failures >= MAX_POLL_FAILURES:
                    raise
                log.warning("Polling Vertex AI training job %s failed (%s); retrying", name, err)
                time.sleep(retry_delay(failures))
                continue
            failures = 0
            event = job_event(name, job)
            if event is not None:
                self.raise_for_event(event)
                return event
            log.info("Vertex AI training job %s is %s", name, state_name(job.state))
            time.sleep(poll_interval)

    def raise_for_event(self, event: Mapping[str, Any]) -> None:
        """A sentence naming the job, its state and its console page unless the event is a success."""
        if event.get("status") == "success":
            return
        name = event.get("job_name", "?")
        where = f"Logs: {self.console_url(name)}"
        if event.get("status") == "cancelled":
            raise TrainingJobError(f"Vertex AI training job {name} was cancelled. {where}")
        if not event.get("state"):  # the job's state is unknown: polling failed, not the job
            then = (
                "It was cancelled so it does not run unwatched; a retry trains afresh."
                if event.get("job_cancelled")
                else "A retry reattaches to it."
            )
            raise VertexJobPollError(
                f"could not poll Vertex AI training job {name}: {event.get('message')}. {then} {where}"
            )
        raise TrainingJobError(
            f"Vertex AI training job {name} failed ({event['state']}): {event.get('message')}. {where}"
        )

    def cancel(self, name: str | None = None) -> None:
        """Ask Vertex AI to cancel the job (default: the one ``run`` waits for); one that already ended is left."""
        name = name or self.job_name
        if name is None:
            return
        log.warning("Cancelling Vertex AI training job %s", name)
        try:
            self.hook.cancel_custom_job(project_id=self.project, region=self.region, custom_job=job_id(name))
        except (FailedPrecondition, NotFound) as err:
            log.warning("Vertex AI training job %s was not cancelled: %s", name, err)

    def console_url(self, name: str) -> str:
        """The job's page in the Google Cloud console."""
        parts = name.split("/")
        region = parts[3] if len(parts) >= 6 and parts[2] == "locations" else self.region
        return BASE_LINK + VERTEX_AI_CUSTOM_JOB_LINK.format(
            region=region, custom_job_id=job_id(name), project_id=self.project
        )

    # --- Model Registry ---------------------------------------------------------------

    def upload_model_version(self, envelope: Envelope, model_dir: str, labels: Mapping[str, str] | None = None) -> str:
        """Upload ``model_dir`` as version ``v-<version>`` of the Vertex Model named after the model.

        Returns the version's resource name (``.../models/<id>@<version id>``). A retry finds the
        version by its alias instead of uploading it twice. Vertex AI requires a serving container
        for a custom model; the training image is recorded as a placeholder (batch inference runs in
        Airflow, nothing deploys this model to an endpoint).
        """
        mid, alias = model_id(envelope.name), version_alias(envelope.version)
        existing = self._model(f"{mid}@{alias}")
        if existing is not None:
            log.info("Model %s version %s is already in the Vertex AI Model Registry", envelope.name, envelope.version)
            return f"{existing.name}@{existing.version_id}"
        metrics = envelope.metrics
        k = metrics.get("k")
        model_ndcg = metrics.get("model", {}).get("ndcg")
        baseline_ndcg = metrics.get("baseline", {}).get("ndcg")
        model = {
            "display_name": envelope.name,
            "description": "LightGBM ranker trained by airflow-ml-provider (model.txt + envelope.json).",
            "version_description": f"{envelope.version}: ndcg@{k} ({metrics.get('scope', 'candidates')}) "
            f"{model_ndcg} vs {metrics.get('baseline_name', 'popularity')} {baseline_ndcg}",
            "artifact_uri": model_dir,
            "version_aliases": [alias],
            "labels": {
                **{sanitize_label(k, key=True): sanitize_label(v) for k, v in (labels or {}).items()},
                MODEL_LABEL: sanitize_label(envelope.name),
                VERSION_LABEL: sanitize_label(envelope.version),
            },
            "container_spec": {"image_uri": str(self.config.training_image_uri)},
        }
        client = self.model_hook.get_model_service_client(self.region)
        request: dict[str, Any] = {"parent": client.common_location_path(self.project, self.region), "model": model}
        parent = self._model(mid)
        if parent is not None:
            request["parent_model"] = parent.name
        else:
            request["model_id"] = mid
        operation = client.upload_model(request=request)
        response = operation.result(timeout=_UPLOAD_TIMEOUT)
        name = f"{response.model}@{response.model_version_id}"
        log.info("Uploaded %s %s to the Vertex AI Model Registry as %s", envelope.name, envelope.version, name)
        return name

    def set_alias(self, model_name: str, version: str, alias: str = "champion") -> str:
        """Point ``alias`` at ``version`` (Vertex AI moves it off the version that had it); return that version."""
        mid = model_id(model_name)
        target = self._model(f"{mid}@{version_alias(version)}")
        if target is None:
            raise ContractError(
                f"model {model_name!r} version {version!r} is not in the Vertex AI Model Registry (no model "
                f"{mid!r} with alias {version_alias(version)!r}); the training task uploads it, so rerun that task."
            )
        versioned = f"{mid}@{target.version_id}"
        self.model_hook.add_version_aliases(
            region=self.region, model_id=versioned, project_id=self.project, version_aliases=[alias]
        )
        log.info("Vertex AI model %s alias %r -> version %s (%s)", mid, alias, target.version_id, version)
        return f"{target.name}@{target.version_id}"

    def _model(self, model: str) -> Model | None:
        try:
            return self.model_hook.get_model(region=self.region, project_id=self.project, model_id=model)
        except NotFound:
            return None
