"""The BigQuery warehouse: GoogleSQL jobs and atomic partition writes through the Google provider's hook.

Every query runs as standard SQL in the configured dataset, carries the Airflow task's
labels and its values as query parameters, and is dry-run against ``maximum_bytes_billed``
first. A partition write fills a staging table (query or Arrow load), checks it, then
copies it over ``table$YYYYMMDD`` with WRITE_TRUNCATE: one atomic swap of the partition.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
from google.api_core.exceptions import BadRequest, NotFound
from google.cloud import bigquery

from airflow_ml_provider.core.config import PlatformConfig
from airflow_ml_provider.core.identifiers import validate_identifier
from airflow_ml_provider.core.sql import bigquery_type, bind_params, partition_select
from airflow_ml_provider.core.warehouse import Warehouse, WriteResult
from airflow_ml_provider.exceptions import (
    BytesBudgetExceeded,
    EmptyResultError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    WarehouseError,
)

log = logging.getLogger(__name__)

# A crashed write must not leave permanent staging tables behind.
STAGING_TTL = dt.timedelta(days=1)
STAGING_PREFIX = "_staging_"
JOB_ID_PREFIX = "airflow_ml_"
_GCS_FOLDER = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}(/[A-Za-z0-9._-]+)*/?$")
# The API reports legacy type names; errors and table_columns speak GoogleSQL.
_GOOGLESQL_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


class BigQueryWarehouse(Warehouse):
    """Runs GoogleSQL on BigQuery and writes date partitions by staging table + copy."""

    backend = "gcp"

    def __init__(self, config: PlatformConfig, labels: dict[str, str] | None = None) -> None:
        if not config.project or not config.dataset:
            raise WarehouseError(
                "the BigQuery warehouse needs `project` and `dataset` in the ml_platform connection "
                'extras, e.g. {"backend": "gcp", "project": "my-project", "dataset": "recsys"}.'
            )
        self.config = config
        self.project: str = config.project
        self.dataset: str = config.dataset
        self.labels = dict(labels or {})

    @property
    def dataset_ref(self) -> str:
        """``project``.dataset, backticked because project ids may contain hyphens."""
        return f"`{self.project}`.{self.dataset}"

    def __repr__(self) -> str:
        return f"BigQueryWarehouse({self.project}.{self.dataset})"

    @cached_property
    def hook(self) -> BigQueryHook:
        """The Google provider's hook: credentials come from ``config.gcp_conn_id``."""
        return BigQueryHook(
            gcp_conn_id=self.config.gcp_conn_id,
            location=self.config.location,
            impersonation_chain=self.config.impersonation_chain,
            use_legacy_sql=False,
        )

    @cached_property
    def client(self) -> bigquery.Client:
        """The authenticated BigQuery client, built once by the hook."""
        return self.hook.get_client(project_id=self.project, location=self.config.location)

    # --- queries ---------------------------------------------------------------------

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> pa.Table:
        """Run a SELECT and return the rows as an Arrow table."""
        job = self._run(sql, params, source)
        with _query_errors(source):
            return job.result().to_arrow()

    @contextlib.contextmanager
    def query_batches(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        batch_rows: int = 500_000,
        source: str = "<sql>",
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        """Stream the result through the BigQuery Storage Read API as Arrow record batches."""
        job = self._run(sql, params, source)
        with _query_errors(source):
            yield iter(job.result(page_size=batch_rows).to_arrow_iterable())

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> None:
        """Run a statement (DDL or DML) and wait for it."""
        self._run(sql, params, source)

    def dry_run_bytes(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> int:
        """Bytes BigQuery estimates the query would scan (a dry run costs nothing)."""
        return self._dry_run(sql, self._parameters(sql, params, source), source)

    def _parameters(
        self, sql: str, params: Mapping[str, Any] | None, source: str
    ) -> list[bigquery.ScalarQueryParameter]:
        """Typed query parameters for exactly the ``@names`` the SQL uses."""
        bound = bind_params(sql, params, source)
        return [bigquery.ScalarQueryParameter(name, bigquery_type(v), v) for name, v in bound.items()]

    def _job_config(self, parameters: list[bigquery.ScalarQueryParameter], **options: Any) -> bigquery.QueryJobConfig:
        """The settings every query job shares: standard SQL, dataset, labels, parameters, byte cap."""
        config = bigquery.QueryJobConfig(
            use_legacy_sql=False,
            default_dataset=f"{self.project}.{self.dataset}",
            labels=dict(self.labels),
            query_parameters=parameters,
            **options,
        )
        # Assigning None would send the string "None" to the API.
        if self.config.maximum_bytes_billed:
            config.maximum_bytes_billed = self.config.maximum_bytes_billed
        return config

    def _dry_run(self, sql: str, parameters: list[bigquery.ScalarQueryParameter], source: str) -> int:
        config = self._job_config(parameters, dry_run=True, use_query_cache=False)
        with _query_errors(source):
            job = self.client.query(sql, job_config=config, job_id_prefix=JOB_ID_PREFIX)
        estimate = int(job.total_bytes_processed or 0)
        log.info("Dry run of %s would process %s (%d bytes)", source, human_bytes(estimate), estimate)
        return estimate

    def _check_budget(self, sql: str, parameters: list[bigquery.ScalarQueryParameter], source: str) -> None:
        """Refuse a query whose dry-run estimate exceeds ``maximum_bytes_billed``."""
        limit = self.config.maximum_bytes_billed
        if not limit:
            return
        estimate = self._dry_run(sql, parameters, source)
        if estimate > limit:
            raise BytesBudgetExceeded(
                f"{source}: the query would process {estimate:,} bytes ({human_bytes(estimate)}), "
                f"more than maximum_bytes_billed={limit:,} ({human_bytes(limit)}). Narrow the date "
                "filter so BigQuery prunes partitions, or raise maximum_bytes_billed in the "
                "ml_platform connection extras."
            )

    def _run(self, sql: str, params: Mapping[str, Any] | None, source: str, **options: Any) -> bigquery.QueryJob:
        """Check the byte budget, then run one query job and wait for it."""
        parameters = self._parameters(sql, params, source)
        self._check_budget(sql, parameters, source)
        with _query_errors(source):
            job = self.client.query(
                sql, job_config=self._job_config(parameters, **options), job_id_prefix=JOB_ID_PREFIX
            )
            log.info("BigQuery job %s started for %s", job.job_id, source)
            job.result()
        log.info("BigQuery job %s done: %s processed", job.job_id, human_bytes(job.total_bytes_processed or 0))
        return job

    # --- tables ----------------------------------------------------------------------

    def _table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{validate_identifier(table)}"

    def _find_table(self, table_id: str) -> bigquery.Table | None:
        try:
            return self.client.get_table(table_id)
        except NotFound:
            return None

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists in the configured dataset."""
        return self._find_table(self._table_id(table)) is not None

    def list_tables(self) -> list[str]:
        """Names of the tables (not views, not in-flight staging tables) in the dataset, sorted."""
        try:
            items = self.client.list_tables(f"{self.project}.{self.dataset}")
            names = [t.table_id for t in items if t.table_type == "TABLE"]
        except NotFound:
            return []
        return sorted(n for n in names if not n.startswith(STAGING_PREFIX))

    def table_columns(self, table: str) -> dict[str, str]:
        """Column name -> GoogleSQL type (``INT64``, ``ARRAY<STRING>``, ...), in table order."""
        table_id = self._table_id(table)
        found = self._find_table(table_id)
        if found is None:
            raise TableNotFoundError(
                f"table {table_id} does not exist. Create it (its DDL in sql/ddl/) or write its "
                "first partition, and check `project` and `dataset` in the ml_platform connection."
            )
        return schema_types(found.schema)

    def export_parquet(self, sql: str, params: Mapping[str, Any] | None, uri: str, *, source: str = "<sql>") -> str:
        """``EXPORT DATA`` the query's rows as sharded Parquet files under the gs:// folder ``uri``."""
        if not _GCS_FOLDER.match(uri):
            raise WarehouseError(
                f"export URI {uri!r} must be a gs:// folder of letters, digits and ._/- (e.g. "
                "gs://my-bucket/airflow-ml/recsys/v1/data); set staging_bucket in the ml_platform connection."
            )
        # EXPORT DATA takes its URI as a literal, so it is validated above instead of bound.
        export = (
            f"EXPORT DATA OPTIONS (uri = '{uri.rstrip('/')}/part-*.parquet', format = 'PARQUET', "
            f"overwrite = true) AS\n{sql}"
        )
        self._run(export, params, source)
        return uri.rstrip("/")

    def replace_table(self, table: str, data: pa.Table) -> int:
        """Replace a whole (small, unpartitioned) table with ``data``; return its row count."""
        table_id = self._table_id(table)
        _check_column_names(data)
        self._load(data, table_id)
        return data.num_rows

    def _load(self, data: pa.Table, table_id: str) -> None:
        """Load Arrow rows over ``table_id`` (WRITE_TRUNCATE) as Parquet, which keeps Arrow types."""
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            labels=dict(self.labels),
        )
        parquet_options = bigquery.ParquetOptions()
        parquet_options.enable_list_inference = True
        config.parquet_options = parquet_options
        with _job_errors(f"loading {data.num_rows} rows into {table_id}"):
            job = self.client.load_table_from_file(
                _to_parquet(data), table_id, rewind=True, job_config=config, job_id_prefix=JOB_ID_PREFIX
            )
            log.info("BigQuery load job %s started for %s", job.job_id, table_id)
            job.result()

    # --- partition writes --------------------------------------------------------------

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
        """Replace one date partition: fill a staging table, check it, copy it over ``table$YYYYMMDD``."""
        table_id = self._table_id(table)
        validate_identifier(partition_column, kind="partition column")
        for column in cluster_by:
            validate_identifier(column, kind="cluster column")
        if isinstance(partition, dt.datetime) or not isinstance(partition, dt.date):
            raise TypeError(f"partition for {table_id} must be a datetime.date, got {partition!r}.")
        target = self._find_table(table_id)
        staging_id = self._staging_id(table, partition)
        try:
            if isinstance(source, str):
                bytes_processed = self._query_into(staging_id, source, params, partition_column, partition, sql_source)
            else:
                data = with_partition_column(source, partition_column, partition, table_id)
                self._load(_in_table_order(data, target), staging_id)
                bytes_processed = None
            staging = self._expire_soon(staging_id)
            rows = int(staging.num_rows or 0)
            if rows == 0 and not allow_empty:
                raise _empty_result(table_id, partition, sql_source)
            if target is None:
                target = self._create_partitioned(table_id, staging.schema, partition_column, cluster_by)
            else:
                staging = self._match_column_order(staging, target, sql_source)
            check_schema(staging.schema, target.schema, table_id, sql_source)
            self._copy_to_partition(staging_id, table_id, partition)
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
        """Run the partition-wrapped query into the staging table; return the bytes it processed."""
        job = self._run(
            partition_select(sql, partition_column, source),
            {**(params or {}), "__partition": partition},
            source,
            destination=staging_id,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        return job.total_bytes_processed

    def _expire_soon(self, staging_id: str) -> bigquery.Table:
        """Give the staging table an expiry, so a crash before cleanup leaves nothing permanent."""
        staging = self.client.get_table(staging_id)
        staging.expires = dt.datetime.now(dt.UTC) + STAGING_TTL
        return self.client.update_table(staging, ["expires"])

    def _match_column_order(self, staging: bigquery.Table, target: bigquery.Table, source: str) -> bigquery.Table:
        """Rewrite the staging table in the target's column order when only the order differs.

        A copy job needs identical schemas, while the SQL wrapper puts the partition column
        first; DDL-created tables may have it elsewhere. DuckDB inserts BY NAME, so match it.
        """
        new, table = schema_types(staging.schema), schema_types(target.schema)
        if new != table or list(new) == list(table):
            return staging
        staging_id = str(staging.reference)
        columns = ", ".join(f"`{validate_identifier(c, kind='column')}`" for c in table)
        self._run(
            f"SELECT {columns} FROM `{staging_id}`",
            None,
            source,
            destination=staging_id,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        return self._expire_soon(staging_id)

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

    def _copy_to_partition(self, staging_id: str, table_id: str, partition: dt.date) -> None:
        """Swap the partition in one atomic copy job."""
        destination = f"{table_id}${partition:%Y%m%d}"
        config = bigquery.CopyJobConfig(
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            labels=dict(self.labels),
        )
        with _job_errors(f"copying {staging_id} to {destination}"):
            job = self.client.copy_table(staging_id, destination, job_config=config, job_id_prefix=JOB_ID_PREFIX)
            log.info("BigQuery copy job %s started: %s -> %s", job.job_id, staging_id, destination)
            job.result()


# --- helpers (pure) ------------------------------------------------------------------


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
    """What differs between the new rows' columns and the table's (names, types, then order)."""
    diffs = [f"{c} ({t}) is in the table but not in the new rows" for c, t in table.items() if c not in new]
    diffs += [f"{c} ({t}) is in the new rows but not in the table" for c, t in new.items() if c not in table]
    diffs += [
        f"{c} is {table[c]} in the table but {t} in the new rows"
        for c, t in new.items()
        if c in table and table[c] != t
    ]
    if not diffs and list(new) != list(table):
        diffs.append(f"columns are in a different order: table ({', '.join(table)}), new rows ({', '.join(new)})")
    return diffs


def check_schema(
    new: Sequence[bigquery.SchemaField], table: Sequence[bigquery.SchemaField], table_id: str, source: str
) -> None:
    """Raise SchemaMismatchError unless the staged rows have the table's columns and types, in order."""
    diffs = schema_differences(schema_types(new), schema_types(table))
    if diffs:
        raise SchemaMismatchError(
            f"{source}: rows for {table_id} do not match its schema: {'; '.join(diffs)}. Make the "
            "query (or data) produce the table's columns, types and order; if the change is intended, "
            "migrate the table first (its DDL in sql/ddl/)."
        )


def with_partition_column(data: pa.Table, partition_column: str, partition: dt.date, table_id: str) -> pa.Table:
    """Prepend the partition column, or insist an existing one holds only ``partition``."""
    _check_column_names(data)
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


def _empty_result(table_id: str, partition: dt.date, source: str) -> EmptyResultError:
    return EmptyResultError(
        f"{source}: produced no rows for {table_id} partition {partition.isoformat()}; the partition "
        "was left unchanged. Check the source data for that date, or pass allow_empty=True if an "
        "empty partition is expected."
    )


def _in_table_order(data: pa.Table, target: bigquery.Table | None) -> pa.Table:
    """Reorder Arrow columns like the existing table (a copy job needs identical schemas)."""
    if target is None:
        return data
    order = [f.name for f in target.schema]
    return data.select(order) if sorted(order) == sorted(data.column_names) else data


def _check_column_names(data: pa.Table) -> None:
    for name in data.column_names:
        validate_identifier(name, kind="column")


def _to_parquet(data: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    # BigQuery stores microseconds; nanosecond Parquet timestamps would not load.
    pq.write_table(data, buffer, coerce_timestamps="us", allow_truncated_timestamps=True)
    buffer.seek(0)
    return buffer


def _reason(err: BadRequest) -> str:
    return str((err.errors or [{}])[0].get("reason", ""))


@contextlib.contextmanager
def _query_errors(source: str) -> Iterator[None]:
    """Turn BigQuery's query errors into sentences that name the SQL file and the fix."""
    try:
        yield
    except NotFound as err:
        raise TableNotFoundError(
            f"{source}: BigQuery could not find a table or dataset: {err.message}. Check the table "
            "names in the SQL (bare names resolve in the connection's dataset) and that upstream "
            "tasks have written them."
        ) from err
    except BadRequest as err:
        if _reason(err) == "bytesBilledLimitExceeded":
            raise BytesBudgetExceeded(
                f"{source}: BigQuery stopped the query at maximum_bytes_billed: {err.message}. Narrow "
                "the date filter, or raise maximum_bytes_billed in the ml_platform connection extras."
            ) from err
        raise SQLTemplateError(
            f"{source}: BigQuery rejected the query: {err.message}. Fix the SQL and rerun the task."
        ) from err


@contextlib.contextmanager
def _job_errors(action: str) -> Iterator[None]:
    """Name the load or copy that failed; the target partition is untouched when it does."""
    try:
        yield
    except (BadRequest, NotFound) as err:
        raise WarehouseError(
            f"BigQuery failed {action}: {err.message}. The target table was not changed; check "
            "that the rows match the table's schema and partition."
        ) from err
