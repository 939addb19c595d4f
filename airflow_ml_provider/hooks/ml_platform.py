"""MLPlatformHook: the ``ml_platform`` connection, turned into a backend.

One connection switches the whole pipeline between the embedded default (DuckDB, a
local trainer, local files) and GCP (BigQuery, Vertex AI, GCS). GCP credentials are
never stored here: they come from ``gcp_conn_id`` through the Google provider's hooks.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.exceptions import ContractError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_ml_provider.backends import Warehouse

_PREFIX = "extra__ml_platform__"


class MLPlatformHook(BaseHook):
    """Reads an ``ml_platform`` connection; no connection means the embedded default."""

    conn_name_attr = "ml_conn_id"
    default_conn_name = "ml_platform_default"
    conn_type = "ml_platform"
    hook_name = "ML Platform"

    def __init__(self, ml_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ml_conn_id = ml_conn_id

    @cached_property
    def config(self) -> PlatformConfig:
        """The validated platform configuration of the connection."""
        try:
            conn = self.get_connection(self.ml_conn_id)
        except AirflowNotFoundException:
            if self.ml_conn_id == self.default_conn_name:
                self.log.info("No connection %r: using the embedded default (DuckDB, local files).", self.ml_conn_id)
                return PlatformConfig()
            raise ContractError(
                f"connection {self.ml_conn_id!r} does not exist. Create it with conn type "
                f"'ml_platform' (e.g. AIRFLOW_CONN_{self.ml_conn_id.upper()}='{{\"conn_type\": "
                '"ml_platform", "extra": {"backend": "local"}}\'), or use the default '
                "'ml_platform_default'."
            ) from None
        return PlatformConfig.from_extras(clean_extras(conn.extra_dejson), source=f"connection {self.ml_conn_id!r}")

    def get_warehouse(self, labels: dict[str, str] | None = None) -> Warehouse:
        """The connection's warehouse; ``labels`` tag BigQuery jobs."""
        from airflow_ml_provider.backends import get_warehouse

        return get_warehouse(self.config, labels=labels)

    def artifact_path(self, uri: str) -> ObjectStoragePath:
        """An ObjectStoragePath for an artifact URI; gs:// uses the connection's GCP credentials."""
        from airflow.sdk import ObjectStoragePath

        if uri.startswith("gs://"):
            return ObjectStoragePath(uri, conn_id=self.config.gcp_conn_id)
        return ObjectStoragePath(uri)

    def test_connection(self) -> tuple[bool, str]:
        """Check the extras parse and the warehouse answers a trivial query."""
        try:
            self.get_warehouse().query("SELECT 1 AS ok")
        except Exception as err:  # the UI shows the message; any failure is a failed test
            return False, str(err)
        return True, f"{self.config.backend} backend is reachable"


def clean_extras(extras: dict[str, Any]) -> dict[str, Any]:
    """Drop empty UI fields and the legacy ``extra__ml_platform__`` prefix."""
    out = {}
    for key, value in extras.items():
        if value in ("", None):
            continue
        out[key.removeprefix(_PREFIX)] = value
    return out
