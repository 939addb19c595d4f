"""VertexTrainingJobTrigger: waits in the triggerer for a Vertex AI training CustomJob to finish (or cancels it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobAsyncHook
from airflow.triggers.base import BaseTrigger, TriggerEvent
from google.api_core.exceptions import FailedPrecondition, NotFound

from airflow_ml_provider.backends.vertex import (
    MAX_POLL_FAILURES,
    RETRY_BASE,
    RETRY_CAP,
    is_transient,
    job_event,
    job_id,
    retry_delay,
    state_name,
)

if TYPE_CHECKING:
    from google.cloud.aiplatform_v1 import JobServiceAsyncClient

#: Seconds for the cancel call; the triggerer bounds on_kill too ([triggerer] on_kill_timeout, 30 s).
_CANCEL_TIMEOUT = 20.0


class VertexTrainingJobTrigger(BaseTrigger):
    """Poll a CustomJob until it ends; fire ``{status: success|error|cancelled, job_name, state, message}``.

    A transient polling error (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED/429, 5xx) is retried
    with capped exponential backoff. When polling fails for good, the trigger cancels the job (nobody
    would watch it finish, and it bills while it runs) and fires an ``error`` event with ``state`` None
    and ``job_cancelled``.
    """

    #: Consecutive transient failures tolerated, and the backoff between them (seconds).
    max_poll_failures, retry_base, retry_cap = MAX_POLL_FAILURES, RETRY_BASE, RETRY_CAP

    def __init__(
        self,
        job_name: str,
        project: str,
        location: str,
        gcp_conn_id: str = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.project = project
        self.location = location
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.poll_interval = poll_interval
        self._job_client: JobServiceAsyncClient | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "project": self.project,
                "location": self.location,
                "gcp_conn_id": self.gcp_conn_id,
                "impersonation_chain": self.impersonation_chain,
                "poll_interval": self.poll_interval,
            },
        )

    @cached_property
    def hook(self) -> CustomJobAsyncHook:
        """The Google provider's async CustomJob hook."""
        return CustomJobAsyncHook(gcp_conn_id=self.gcp_conn_id, impersonation_chain=self.impersonation_chain)

    async def _client(self) -> JobServiceAsyncClient:
        """One async client per trigger instance, closed by ``cleanup``."""
        if self._job_client is None:
            self._job_client = await self.hook.get_job_service_client(region=self.location)
        return self._job_client

    async def run(self) -> AsyncIterator[TriggerEvent]:
        failures = 0
        try:
            client = await self._client()
            while True:
                try:
                    job = await self.hook.get_custom_job(
                        project_id=self.project, location=self.location, job_id=job_id(self.job_name), client=client
                    )
                except Exception as err:
                    failures += 1
                    if not is_transient(err) or failures >= self.max_poll_failures:
                        raise
                    delay = retry_delay(failures, self.retry_base, self.retry_cap)
                    self.log.warning(
                        "Polling Vertex AI training job %s failed (%s); retry %d in %.1f s",
                        self.job_name, err, failures, delay,
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                event = job_event(self.job_name, job)
                if event is not None:
                    yield TriggerEvent(event)
                    return
                self.log.info("Vertex AI training job %s is %s", self.job_name, state_name(job.state))
                await asyncio.sleep(self.poll_interval)
        except Exception as err:  # polling failed for good: stop the job nobody will watch, tell the task
            self.log.exception("Polling Vertex AI training job %s failed", self.job_name)
            cancelled = await self._cancel()
            yield TriggerEvent(
                {
                    "status": "error",
                    "job_name": self.job_name,
                    "state": None,
                    "message": str(err),
                    "job_cancelled": cancelled,
                }
            )

    async def on_kill(self) -> None:
        """Cancel the CustomJob: the user marked the deferred task failed (or cleared or succeeded it).

        The operator's ``on_kill`` never runs while the task is deferred, so without this the job
        would keep running (and billing). Not called on triggerer restarts or timeouts, where the
        job must go on. A job that already ended is left as it is.
        """
        self.log.warning("Cancelling Vertex AI training job %s: its task was stopped", self.job_name)
        client = await self._client()
        try:
            await client.cancel_custom_job(request={"name": self.job_name}, timeout=_CANCEL_TIMEOUT)
        except (FailedPrecondition, NotFound) as err:
            self.log.warning("Vertex AI training job %s was not cancelled: %s", self.job_name, err)

    async def _cancel(self) -> bool:
        """Ask Vertex AI to cancel the job after polling failed for good; whether it was asked (best effort)."""
        try:
            client = await self._client()
            await client.cancel_custom_job(request={"name": self.job_name}, timeout=_CANCEL_TIMEOUT)
        except Exception as err:  # the job ended, is gone, or the outage goes on: the event says so
            self.log.warning("Vertex AI training job %s was not cancelled: %s", self.job_name, err)
            return False
        self.log.warning("Cancelled Vertex AI training job %s: polling it failed for good", self.job_name)
        return True

    async def cleanup(self) -> None:
        """Close the async client's channel (runs on every exit, after ``on_kill``)."""
        client, self._job_client = self._job_client, None
        if client is not None:
            await client.transport.close()
