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
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.backends.vertex import StateStore, VertexTrainingRunner
    from airflow_ml_provider.core.storage import Artifacts

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

    def get_artifacts(self) -> Artifacts:
        """Artifact reads and writes for the stages, through ObjectStoragePath with the connection's credentials."""
        from airflow_ml_provider.core.storage import Artifacts

        def write_bytes(uri: str, data: bytes) -> None:
            path = self.artifact_path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return Artifacts(
            read_text=lambda uri: self.artifact_path(uri).read_text(),
            read_bytes=lambda uri: self.artifact_path(uri).read_bytes(),
            write_bytes=write_bytes,
            exists=lambda uri: self.artifact_path(uri).exists(),
            root=self.config.artifacts_uri,
        )

    def get_training_runner(
        self, *, poll_interval: float = 60, state_store: StateStore | None = None
    ) -> LocalTrainingRunner | VertexTrainingRunner:
        """Where the connection's trainer runs: a local subprocess, or a Vertex AI CustomJob on gcp."""
        from airflow_ml_provider.backends import get_training_runner

        return get_training_runner(self.config, poll_interval=poll_interval, state_store=state_store)

    def get_model_mirror(self) -> VertexTrainingRunner | None:
        """The backend's own model registry that follows ``ml_models`` (Vertex AI's on gcp), or None."""
        from airflow_ml_provider.backends import get_model_mirror

        return get_model_mirror(self.config)

    def check_locations(self) -> None:
        """On gcp, refuse (ContractError naming the fix) a dataset, staging bucket and Vertex AI region that do not fit.

        Metadata reads only, so it runs before anything is billed: ``test_connection`` and
        ``airflow-ml validate --conn-id`` call it. The rules: ``backends/gcp_locations.py``.
        """
        if self.config.backend != "gcp":
            return
        from airflow_ml_provider.backends.gcp_locations import check_locations

        check_locations(self.config)

    def test_connection(self) -> tuple[bool, str]:
        """Check the extras parse, the warehouse answers a trivial query and (gcp) the locations fit together."""
        try:
            self.get_warehouse().query("SELECT 1 AS ok")
            self.check_locations()
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
