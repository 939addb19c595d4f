"""VertexTrainingJobTrigger: waits in the triggerer for a Vertex AI training CustomJob to finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.google.cloud.hooks.vertex_ai.custom_job import CustomJobAsyncHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_ml_provider.backends.vertex import job_event, job_id, state_name


class VertexTrainingJobTrigger(BaseTrigger):
    """Poll a CustomJob until it ends; fire ``{status: success|error|cancelled, job_name, state, message}``.

    ``state`` is missing from an ``error`` event when polling itself failed (the job may still run).
    """

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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            client = await self.hook.get_job_service_client(region=self.location)
            while True:
                job = await self.hook.get_custom_job(
                    project_id=self.project, location=self.location, job_id=job_id(self.job_name), client=client
                )
                event = job_event(self.job_name, job)
                if event is not None:
                    yield TriggerEvent(event)
                    return
                self.log.info("Vertex AI training job %s is %s", self.job_name, state_name(job.state))
                await asyncio.sleep(self.poll_interval)
        except Exception as err:  # the event carries it to the task, whose retry reattaches to the job
            self.log.exception("Polling Vertex AI training job %s failed", self.job_name)
            yield TriggerEvent({"status": "error", "job_name": self.job_name, "state": None, "message": str(err)})
