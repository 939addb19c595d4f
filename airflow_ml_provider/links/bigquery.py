"""Links from a task to the BigQuery table it writes (gcp backend; empty on the embedded DuckDB)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import attrs
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: The console's table page; the same format as the Google provider's BigQueryTableLink.
CONSOLE_TABLE_URL = (
    "https://console.cloud.google.com/bigquery?referrer=search&project={project}&d={dataset}&p={project}"
    "&page=table&t={table}"
)


def bigquery_table_url(project: str, dataset: str, table: str) -> str:
    """The BigQuery console page of ``project.dataset.table``."""
    return CONSOLE_TABLE_URL.format(project=quote(project), dataset=quote(dataset), table=quote(table))


@attrs.define()
class BigQueryTableLink(BaseOperatorLink):
    """The console page of the table the task writes.

    ``table`` names a fixed output table (``recommendations``, ``drift_results``); without it
    the operator's ``table`` attribute is used (FeatureExtractOperator). Airflow calls
    ``get_link`` in the worker when the task finishes and stores the URL in XCom, so the
    connection is read where it is available. On the local backend there is no console:
    the link is empty and the UI shows none.
    """

    name = "BigQuery table"
    table: str | None = None

    @property
    def xcom_key(self) -> str:
        return "ml_bigquery_table"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            config = operator.hook.config  # type: ignore[attr-defined]
            table: Any = self.table or getattr(operator, "table", None)
            if config.backend != "gcp" or not isinstance(table, str) or not table:
                return ""
            return bigquery_table_url(config.project, config.dataset, table)
        except Exception:  # a link never fails the task
            log.warning("Could not build the BigQuery table link of %s", operator, exc_info=True)
            return ""
