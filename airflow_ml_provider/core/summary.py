"""What is in the warehouse: tables, partitions and row counts (for the CLI and the demo)."""

from __future__ import annotations

from typing import Any

from airflow_ml_provider.core.identifiers import validate_identifier
from airflow_ml_provider.core.warehouse import Warehouse

#: Columns the provider partitions tables by, in the order they are looked for.
PARTITION_COLUMNS = ("as_of_date", "prediction_date", "logical_date")


def describe_tables(warehouse: Warehouse) -> list[dict[str, Any]]:
    """One row per table: name, rows, and the partition count and range where partitioned."""
    out = []
    for table in warehouse.list_tables():
        validate_identifier(table)
        cols = warehouse.table_columns(table)
        part = next((c for c in PARTITION_COLUMNS if c in cols), None)
        if part:
            sql = (
                f"SELECT COUNT(*) AS row_count, COUNT(DISTINCT {part}) AS partitions, "
                f"MIN({part}) AS first_partition, MAX({part}) AS last_partition FROM {table}"
            )
        else:
            sql = f"SELECT COUNT(*) AS row_count, 0 AS partitions FROM {table}"
        stats = warehouse.query(sql, source=f"summary of {table}").to_pylist()[0]
        out.append(
            {
                "table": table,
                "rows": stats["row_count"],
                "partition_column": part,
                "partitions": stats["partitions"],
                "first_partition": stats.get("first_partition"),
                "last_partition": stats.get("last_partition"),
            }
        )
    return out
