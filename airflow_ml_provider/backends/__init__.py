"""The backends: ``local`` (DuckDB, a subprocess trainer, files) and ``gcp`` (BigQuery, Vertex AI, GCS).

Each function here answers one backend difference from the platform config, so stages and
entry points never branch on ``backend`` themselves. GCP libraries are imported only for ``gcp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult

if TYPE_CHECKING:
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.backends.vertex import StateStore, VertexTrainingRunner
    from airflow_ml_provider.core.contract.config import PlatformConfig

__all__ = ["Warehouse", "WriteResult", "get_model_mirror", "get_training_runner", "get_warehouse"]


def get_warehouse(config: PlatformConfig, labels: dict[str, str] | None = None) -> Warehouse:
    """The warehouse for a platform config."""
    if config.backend == "gcp":
        from airflow_ml_provider.backends.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(config, labels=labels)
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(
        config.warehouse_file,
        schema=config.dataset,
        lock_timeout=config.lock_timeout_seconds,
        stream_memory_limit=config.duckdb_stream_memory_limit,
        memory_limit=config.duckdb_memory_limit,
    )


def get_training_runner(
    config: PlatformConfig, *, poll_interval: float = 60, state_store: StateStore | None = None
) -> LocalTrainingRunner | VertexTrainingRunner:
    """Where the trainer runs: a Vertex AI CustomJob on gcp, a local subprocess otherwise."""
    if config.backend == "gcp":
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner

        return VertexTrainingRunner(config, poll_interval=poll_interval, state_store=state_store)
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner

    return LocalTrainingRunner()


def get_model_mirror(config: PlatformConfig) -> VertexTrainingRunner | None:
    """The backend's own model registry that follows ``ml_models``: Vertex AI's on gcp, none locally."""
    if config.backend == "gcp":
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner

        return VertexTrainingRunner(config)
    return None
