"""Warehouse (and later trainer and artifact) backends: ``local`` (DuckDB) and ``gcp`` (BigQuery)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.config import PlatformConfig

__all__ = ["Warehouse", "WriteResult", "get_warehouse"]


def get_warehouse(config: PlatformConfig, labels: dict[str, str] | None = None) -> Warehouse:
    """The warehouse for a platform config. GCP libraries are imported only for ``gcp``."""
    if config.backend == "gcp":
        from airflow_ml_provider.backends.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(config, labels=labels)
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(
        config.warehouse_file,
        schema=config.dataset,
        lock_timeout=config.lock_timeout_seconds,
        stream_memory_limit=config.duckdb_stream_memory_limit,
    )
