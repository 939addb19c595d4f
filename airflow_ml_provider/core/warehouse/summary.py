"""What is in the warehouse: tables, partitions and row counts (for the CLI and the demo)."""

from __future__ import annotations

from typing import Any

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.warehouse.interface import Warehouse

#: Columns the provider partitions tables by, in the order they are looked for.
PARTITION_COLUMNS = ("as_of_date", "prediction_date", "logical_date", "check_date")


def describe_tables(warehouse: Warehouse) -> list[dict[str, Any]]:
    """One row per table: name, rows, and the partition count and range where partitioned.

    Two round trips whatever the number of tables: the columns of all tables, then one
    UNION ALL of per-table counts (a read command must stay fast on a laptop).
    """
    columns = warehouse.all_table_columns()
    parts: dict[str, str | None] = {}
    selects = []
    for table in sorted(columns):
        validate_identifier(table)
        part = next((c for c in PARTITION_COLUMNS if c in columns[table]), None)
        parts[table] = part
        if part:
            stats = (
                f"COUNT(DISTINCT {part}) AS partitions, CAST(MIN({part}) AS DATE) AS first_partition, "
                f"CAST(MAX({part}) AS DATE) AS last_partition"
            )
        else:
            stats = "0 AS partitions, CAST(NULL AS DATE) AS first_partition, CAST(NULL AS DATE) AS last_partition"
        selects.append(f"SELECT '{table}' AS table_name, COUNT(*) AS row_count, {stats} FROM {table}")
    if not selects:
        return []
    rows = warehouse.query("\nUNION ALL\n".join(selects), source="summary of the tables").to_pylist()
    by_table = {r["table_name"]: r for r in rows}
    return [
        {
            "table": table,
            "rows": by_table[table]["row_count"],
            "partition_column": parts[table],
            "partitions": by_table[table]["partitions"],
            "first_partition": by_table[table]["first_partition"],
            "last_partition": by_table[table]["last_partition"],
        }
        for table in sorted(columns)
    ]
