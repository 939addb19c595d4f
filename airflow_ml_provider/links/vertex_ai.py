"""Links from a task to the Vertex AI console."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


class VertexTrainingJobLink(BaseOperatorLink):
    """The console page of the task's Vertex AI training job.

    The operator persists the full URL to XCom under ``xcom_key``; Airflow 3 serves the link from
    that XCom, so the API server never needs the operator or GCP credentials.
    """

    name = "Vertex AI Training Job"
    key = "vertex_training_job"

    @property
    def xcom_key(self) -> str:
        return self.key

    @classmethod
    def persist(cls, context: Any, url: str) -> None:
        """Store the job's URL for the link; a failure is logged, never fails the task."""
        try:
            context["ti"].xcom_push(key=cls.key, value=url)
        except Exception:
            log.warning("Could not store the Vertex AI job link %s", url, exc_info=True)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(key=self.key, ti_key=ti_key)
        return value if isinstance(value, str) and value.startswith("https://") else ""
