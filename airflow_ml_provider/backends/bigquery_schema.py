"""BigQuery schemas and errors, as pure helpers: types in GoogleSQL, the write-compatibility check.

A partition write sends the new rows through a query job into ``table$YYYYMMDD``; BigQuery
refuses it when a column is missing, has another type, or is REQUIRED in the table while the
new rows are NULLABLE (query and Parquet-load results always are). ``check_schema`` finds
all three before anything is written and says which column and what to do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.api_core.exceptions import BadRequest, GoogleAPICallError, NotFound
from google.cloud import bigquery

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.exceptions import (
    BytesBudgetExceeded,
    ContractError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    WarehouseError,
)

# The API reports legacy type names; errors and table_columns speak GoogleSQL.
_GOOGLESQL_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


def human_bytes(n: int) -> str:
    """``1610612736`` -> ``'1.5 GiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def field_type(field: bigquery.SchemaField) -> str:
    """The GoogleSQL type of a schema field, including STRUCT members and ARRAY mode."""
    base = _GOOGLESQL_TYPES.get(field.field_type.upper(), field.field_type.upper())
    if base == "STRUCT":
        base = "STRUCT<" + ", ".join(f"{f.name} {field_type(f)}" for f in field.fields) + ">"
    return f"ARRAY<{base}>" if field.mode == "REPEATED" else base


def schema_types(schema: Sequence[bigquery.SchemaField]) -> dict[str, str]:
    """Column name -> GoogleSQL type, in schema order."""
    return {f.name: field_type(f) for f in schema}


def schema_differences(new: dict[str, str], table: dict[str, str]) -> list[str]:
    """What differs between the new rows' columns and the table's: names, then types (order is free)."""
    diffs = [f"{c} ({t}) is in the table but not in the new rows" for c, t in table.items() if c not in new]
    diffs += [f"{c} ({t}) is in the new rows but not in the table" for c, t in new.items() if c not in table]
    diffs += [
        f"{c} is {table[c]} in the table but {t} in the new rows"
        for c, t in new.items()
        if c in table and table[c] != t
    ]
    return diffs


def mode_differences(new: Sequence[bigquery.SchemaField], table: Sequence[bigquery.SchemaField]) -> list[str]:
    """Columns that are REQUIRED in the table but NULLABLE in the new rows (BigQuery refuses the write)."""
    required = {f.name for f in table if (f.mode or "NULLABLE") == "REQUIRED"}
    return [
        f"{f.name} is REQUIRED (NOT NULL) in the table but NULLABLE in the new rows"
        for f in new
        if f.name in required and (f.mode or "NULLABLE") == "NULLABLE"
    ]


def check_schema(
    new: Sequence[bigquery.SchemaField], table: Sequence[bigquery.SchemaField], table_id: str, source: str
) -> None:
    """Raise SchemaMismatchError unless BigQuery would accept the new rows into the table."""
    diffs = schema_differences(schema_types(new), schema_types(table))
    if diffs:
        raise SchemaMismatchError(
            f"{source}: rows for {table_id} do not match its schema: {'; '.join(diffs)}. Make the "
            "query (or data) produce the table's columns and types; if the change is intended, "
            "migrate the table first (its DDL in sql/ddl/)."
        )
    modes = mode_differences(new, table)
    if modes:
        columns = ", ".join(m.split(" ", 1)[0] for m in modes)
        raise SchemaMismatchError(
            f"{source}: rows for {table_id} cannot be written: {'; '.join(modes)}. Query and load "
            "results are always NULLABLE, so BigQuery refuses them in REQUIRED columns. Tables written "
            "by partition replaces keep every column NULLABLE (see sql/ddl/): relax the column with "
            f"`ALTER TABLE {table_id.split('.')[-1]} ALTER COLUMN <column> DROP NOT NULL` for {columns}."
        )


def nullable(schema: Sequence[bigquery.SchemaField]) -> list[bigquery.SchemaField]:
    """The schema with every top-level REQUIRED column made NULLABLE (REPEATED stays REPEATED)."""
    out = []
    for f in schema:
        api = f.to_api_repr()
        if api.get("mode", "NULLABLE") == "REQUIRED":
            api["mode"] = "NULLABLE"
        out.append(bigquery.SchemaField.from_api_repr(api))
    return out


def with_partition_column(data: pa.Table, partition_column: str, partition: dt.date, table_id: str) -> pa.Table:
    """Prepend the partition column, or insist an existing one holds only ``partition``."""
    check_column_names(data)
    if partition_column not in data.column_names:
        values = pa.array([partition] * data.num_rows, type=pa.date32())
        return data.add_column(0, partition_column, values)
    found = pc.unique(data.column(partition_column)).to_pylist()
    others = [v for v in found if v != partition or isinstance(v, dt.datetime)]
    if others:
        raise SchemaMismatchError(
            f"rows for {table_id} partition {partition.isoformat()} have other values in "
            f"{partition_column}: {others[:5]!r}. Drop the column (it is added) or keep only that date."
        )
    return data


def check_column_names(data: pa.Table) -> None:
    for name in data.column_names:
        validate_identifier(name, kind="column")


def to_parquet(data: pa.Table) -> io.BytesIO:
    """Arrow rows as an in-memory Parquet file BigQuery can load (microsecond timestamps)."""
    buffer = io.BytesIO()
    pq.write_table(data, buffer, coerce_timestamps="us", allow_truncated_timestamps=True)
    buffer.seek(0)
    return buffer


def _reason(err: GoogleAPICallError) -> str:
    return str((err.errors or [{}])[0].get("reason", ""))


@contextlib.contextmanager
def query_errors(source: str) -> Iterator[None]:
    """Turn BigQuery's query errors into sentences that name the SQL file and the fix."""
    try:
        yield
    except GoogleAPICallError as err:
        # The client raises a failed job's error by its reason; reasons it does not map
        # (bytesBilledLimitExceeded among them) arrive as InternalServerError.
        if _reason(err) == "bytesBilledLimitExceeded":
            raise BytesBudgetExceeded(
                f"{source}: BigQuery stopped the query at maximum_bytes_billed: {err.message}. Narrow "
                "the date filter, or raise maximum_bytes_billed in the ml_platform connection extras."
            ) from err
        if isinstance(err, NotFound):
            raise TableNotFoundError(
                f"{source}: BigQuery could not find a table or dataset: {err.message}. Check the table "
                "names in the SQL (bare names resolve in the connection's dataset) and that upstream "
                "tasks have written them."
            ) from err
        if isinstance(err, BadRequest) and "different locations" in str(err.message):
            raise ContractError(
                f"{source}: {err.message}. The dataset and the staging bucket must be in one location "
                "(see docs/gcp.md); `airflow-ml validate --conn-id <conn>` checks them before anything runs."
            ) from err
        if isinstance(err, BadRequest):
            raise SQLTemplateError(
                f"{source}: BigQuery rejected the query: {err.message}. Fix the SQL and rerun the task."
            ) from err
        raise


@contextlib.contextmanager
def job_errors(action: str) -> Iterator[None]:
    """Name the load or write that failed; the target partition is untouched when it does."""
    try:
        yield
    except (BadRequest, NotFound) as err:
        raise WarehouseError(
            f"BigQuery failed {action}: {err.message}. The target table was not changed; check "
            "that the rows match the table's schema and partition."
        ) from err
