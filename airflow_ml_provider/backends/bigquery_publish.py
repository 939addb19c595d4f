"""BigQuery partition writes: a staging table that expires from its creation, checks, one atomic publish.

A partition write fills a staging table, checks it, then publishes it with one query job into
``table$YYYYMMDD`` with WRITE_TRUNCATE: BigQuery's documented atomic replace of one partition
of a column-partitioned, clustered table (docs/adr/0002-gcp-write-path-and-local-endpoints.md).

Staging tables carry their expiry from the moment they exist, so a task killed at any point
(``kill -9``, a lost worker) leaves nothing permanent (docs/adr/0008-gcp-one-location-and-staging-expiry.md):

- a query's rows are staged by ``CREATE OR REPLACE TABLE ... OPTIONS (expiration_timestamp = ...)
  AS SELECT``: the table and its expiry come from one job
  (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#table_option_list);
- Arrow rows go into a table created (``tables.insert``) with its ``expirationTime`` and the
  columns BigQuery makes of the Parquet file
  (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#type_conversions),
  then a load job appends them.

The publish job names the target's own partitioning and clustering, read from the table, so
BigQuery never sees an "incompatible table partitioning specification" (partition expiration,
partition filter requirement and all).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from google.cloud import bigquery

from airflow_ml_provider.backends.bigquery_schema import (
    check_column_names,
    check_schema,
    job_errors,
    nullable,
    with_partition_column,
)
from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult
from airflow_ml_provider.core.warehouse.sql import partition_select
from airflow_ml_provider.exceptions import EmptyResultError, SchemaMismatchError

if TYPE_CHECKING:
    from airflow_ml_provider.core.features.checks import CheckResult
    from airflow_ml_provider.core.warehouse.interface import CheckBuilder, CheckGate

log = logging.getLogger(__name__)

# A crashed write must not leave permanent staging tables behind.
STAGING_TTL = dt.timedelta(days=1)
STAGING_PREFIX = "_staging_"
JOB_ID_PREFIX = "airflow_ml_"


class PartitionWrites(Warehouse):
    """The partition writes of ``BigQueryWarehouse``, which provides the client, the jobs and the table lookups."""

    project: str
    dataset: str
    labels: dict[str, str]

    @property
    @abstractmethod
    def client(self) -> bigquery.Client: ...

    @abstractmethod
    def _table_id(self, table: str) -> str: ...

    @abstractmethod
    def _find_table(self, table_id: str) -> bigquery.Table | None: ...

    @abstractmethod
    def _run(self, sql: str, params: Mapping[str, Any] | None, source: str, **options: Any) -> bigquery.QueryJob: ...

    @abstractmethod
    def _load(self, data: pa.Table, table_id: str, *, write_disposition: str = ...) -> None: ...

    def stage_table(self, table: str, data: pa.Table) -> int:
        """Replace a staging table with ``data``; it expires from its creation, so a lost run leaves nothing."""
        check_column_names(data)
        self._stage_arrow(data, self._table_id(table))
        return data.num_rows

    def replace_partition(
        self,
        table: str,
        partition_column: str,
        partition: dt.date,
        source: str | pa.Table,
        params: Mapping[str, Any] | None = None,
        *,
        sql_source: str = "<sql>",
        cluster_by: tuple[str, ...] = (),
        allow_empty: bool = False,
    ) -> WriteResult:
        """Replace one date partition: fill a staging table, check it, publish it into ``table$YYYYMMDD``."""
        return self._replace(table, partition_column, partition, source, params, sql_source, cluster_by, allow_empty)

    def replace_partition_checked(
        self,
        table: str,
        partition_column: str,
        partition: dt.date,
        source: str,
        params: Mapping[str, Any] | None = None,
        *,
        check: CheckBuilder,
        gate: CheckGate,
        sql_source: str = "<sql>",
        cluster_by: tuple[str, ...] = (),
        allow_empty: bool = False,
    ) -> tuple[WriteResult, list[CheckResult]]:
        """Like ``replace_partition``, with the data checks run on the staged rows before they are published."""
        results: list[CheckResult] = []

        def inspect(staging_id: str) -> None:
            results.extend(self._run_checks(check(f"`{staging_id}`"), {}, sql_source))
            gate(results)  # raising here publishes nothing; the staging table is deleted

        written = self._replace(
            table, partition_column, partition, source, params, sql_source, cluster_by, allow_empty, inspect
        )
        return written, results

    def _replace(
        self,
        table: str,
        partition_column: str,
        partition: dt.date,
        source: str | pa.Table,
        params: Mapping[str, Any] | None,
        sql_source: str,
        cluster_by: tuple[str, ...],
        allow_empty: bool,
        before_publish: Callable[[str], None] | None = None,
    ) -> WriteResult:
        table_id = self._table_id(table)
        validate_identifier(partition_column, kind="partition column")
        for column in cluster_by:
            validate_identifier(column, kind="cluster column")
        if isinstance(partition, dt.datetime) or not isinstance(partition, dt.date):
            raise TypeError(f"partition for {table_id} must be a datetime.date, got {partition!r}.")
        target = self._find_table(table_id)
        if target is not None:
            _check_partitioning(target, table_id, partition_column)
        staging_id = self._staging_id(table, partition)
        try:
            if isinstance(source, str):
                bytes_processed = self._query_into(staging_id, source, params, partition_column, partition, sql_source)
            else:
                self._stage_arrow(with_partition_column(source, partition_column, partition, table_id), staging_id)
                bytes_processed = None
            staging = self.client.get_table(staging_id)
            rows = int(staging.num_rows or 0)
            if rows == 0 and not allow_empty:
                raise _empty_result(table_id, partition, sql_source)
            if target is None:
                target = self._create_partitioned(table_id, nullable(staging.schema), partition_column, cluster_by)
            check_schema(staging.schema, target.schema, table_id, sql_source)
            if before_publish is not None:
                before_publish(staging_id)
            self._publish(staging_id, target, partition, sql_source)
        finally:
            self.client.delete_table(staging_id, not_found_ok=True)
        log.info("Replaced %s partition %s with %d rows", table_id, partition.isoformat(), rows)
        return WriteResult(table, partition.isoformat(), rows, bytes_processed)

    def _staging_id(self, table: str, partition: dt.date) -> str:
        """A staging table name per table, date and Airflow run, so a retry reuses it."""
        seed = json.dumps(self.labels, sort_keys=True) if "airflow-run" in self.labels else uuid.uuid4().hex
        digest = hashlib.sha256(f"{seed}|{table}|{partition}".encode()).hexdigest()[:10]
        return f"{self.project}.{self.dataset}.{STAGING_PREFIX}{table}_{partition:%Y%m%d}_{digest}"

    def _query_into(
        self,
        staging_id: str,
        sql: str,
        params: Mapping[str, Any] | None,
        partition_column: str,
        partition: dt.date,
        source: str,
    ) -> int | None:
        """Create the staging table from the partition-wrapped query, expiring from creation; return bytes processed.

        ``OR REPLACE``: a retry of the same run reuses the staging name.
        """
        hours = int(STAGING_TTL.total_seconds() // 3600)
        ddl = (
            f"CREATE OR REPLACE TABLE `{staging_id}`\n"
            f"OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL {hours} HOUR))\nAS\n"
            + partition_select(sql, partition_column, source)
        )
        job = self._run(ddl, {**(params or {}), "__partition": partition}, source)
        return job.total_bytes_processed

    def _stage_arrow(self, data: pa.Table, staging_id: str) -> None:
        """Create ``staging_id`` with its expiry and the Parquet file's columns, then append ``data`` to it.

        A load job cannot give the table it creates an expiry, so the table is created first.
        A leftover of an earlier try (same name) is deleted, never appended to.
        """
        self.client.delete_table(staging_id, not_found_ok=True)
        staging = bigquery.Table(staging_id, schema=parquet_schema(data.schema))
        staging.expires = dt.datetime.now(dt.UTC) + STAGING_TTL
        self.client.create_table(staging)
        self._load(data, staging_id, write_disposition=bigquery.WriteDisposition.WRITE_APPEND)

    def _create_partitioned(
        self,
        table_id: str,
        schema: Sequence[bigquery.SchemaField],
        partition_column: str,
        cluster_by: tuple[str, ...],
    ) -> bigquery.Table:
        """Create the target on first write: day-partitioned by ``partition_column``, clustered."""
        table = bigquery.Table(table_id, schema=list(schema))
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=partition_column
        )
        if cluster_by:
            table.clustering_fields = list(cluster_by)
        created = self.client.create_table(table, exists_ok=True)
        log.info("Created %s partitioned by %s, clustered by %s", table_id, partition_column, list(cluster_by))
        return created

    def _publish(self, staging_id: str, target: bigquery.Table, partition: dt.date, source: str) -> None:
        """Swap the partition in one query job: ``SELECT`` the staged rows into ``table$YYYYMMDD``.

        BigQuery replaces exactly that partition (WRITE_TRUNCATE) and refuses rows of other dates,
        so readers see the old rows or the new ones. Columns are listed in the table's order. The
        job names the target's partitioning and clustering exactly as the table reports them.
        """
        destination = f"{target.project}.{target.dataset_id}.{target.table_id}${partition:%Y%m%d}"
        columns = ", ".join(f"`{validate_identifier(f.name, kind='column')}`" for f in target.schema)
        options: dict[str, Any] = {
            "destination": destination,
            "write_disposition": bigquery.WriteDisposition.WRITE_TRUNCATE,
            "create_disposition": bigquery.CreateDisposition.CREATE_NEVER,
            "time_partitioning": target.time_partitioning,
        }
        if target.clustering_fields:
            options["clustering_fields"] = list(target.clustering_fields)
        with job_errors(f"publishing {staging_id} into {destination}"):
            self._run(f"SELECT {columns} FROM `{staging_id}`", None, f"{source} (publish)", **options)


def parquet_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    """The columns BigQuery creates from a Parquet file written from ``schema`` (with list inference).

    https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#type_conversions:
    a timestamp adjusted to UTC is TIMESTAMP, one without a time zone DATETIME; a LIST becomes a
    REPEATED column of its element type; a required (non-nullable) field is REQUIRED.
    """
    return [_parquet_field(f.name, f.type, f.nullable) for f in schema]


def _parquet_field(name: str, kind: pa.DataType, is_nullable: bool = True) -> bigquery.SchemaField:
    mode = "NULLABLE" if is_nullable else "REQUIRED"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = _parquet_field(name, kind.value_type)
        return bigquery.SchemaField(name, inner.field_type, mode="REPEATED", fields=inner.fields)
    if pa.types.is_struct(kind):
        return bigquery.SchemaField(name, "RECORD", mode=mode, fields=[_parquet_field(f.name, f.type) for f in kind])
    for test, bq_type in (
        (pa.types.is_boolean, "BOOLEAN"),
        (pa.types.is_integer, "INTEGER"),
        (pa.types.is_floating, "FLOAT"),
        (pa.types.is_decimal, "NUMERIC"),
        (pa.types.is_date, "DATE"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "STRING"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "BYTES"),
    ):
        if test(kind):
            return bigquery.SchemaField(name, bq_type, mode=mode)
    if pa.types.is_timestamp(kind):
        return bigquery.SchemaField(name, "TIMESTAMP" if kind.tz else "DATETIME", mode=mode)
    raise SchemaMismatchError(
        f"column {name} has Arrow type {kind}, which this provider does not load into BigQuery; cast it to a "
        "string, number, boolean, date, timestamp or a list of those."
    )


def _check_partitioning(target: bigquery.Table, table_id: str, partition_column: str) -> None:
    """A partition replace needs a table partitioned by day on ``partition_column``."""
    partitioning = target.time_partitioning
    if partitioning is None or partitioning.field != partition_column or (partitioning.type_ or "DAY") != "DAY":
        found = (
            "not partitioned" if partitioning is None else f"partitioned by {partitioning.field or '_PARTITIONTIME'}"
        )
        raise SchemaMismatchError(
            f"table {table_id} is {found}, but its rows are written one {partition_column} day at a time. "
            f"Recreate it partitioned by day on {partition_column} (its DDL in sql/ddl/), or write to another table."
        )


def _empty_result(table_id: str, partition: dt.date, source: str) -> EmptyResultError:
    return EmptyResultError(
        f"{source}: produced no rows for {table_id} partition {partition.isoformat()}; the partition "
        "was left unchanged. Check the source data for that date, or pass allow_empty=True if an "
        "empty partition is expected."
    )


__all__ = ["JOB_ID_PREFIX", "STAGING_PREFIX", "STAGING_TTL", "PartitionWrites", "parquet_schema"]
