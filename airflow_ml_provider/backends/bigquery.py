"""The BigQuery warehouse: GoogleSQL jobs and atomic partition writes through the Google provider's hook.

Every query runs as standard SQL in the configured dataset, carries the Airflow task's
labels and its values as query parameters, and is dry-run against ``maximum_bytes_billed``
first. Partition writes (staging table, checks, one atomic publish into ``table$YYYYMMDD``)
are in ``bigquery_publish.py``; large results are read through the Storage Read API
(``bigquery_read.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from airflow_ml_provider.backends.bigquery_publish import JOB_ID_PREFIX, STAGING_PREFIX, STAGING_TTL, PartitionWrites
from airflow_ml_provider.backends.bigquery_read import read_batches, read_client
from airflow_ml_provider.backends.bigquery_schema import (
    check_column_names,
    human_bytes,
    job_errors,
    query_errors,
    schema_types,
    to_parquet,
)
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.warehouse.sql import bigquery_type, bind_params
from airflow_ml_provider.exceptions import BytesBudgetExceeded, TableNotFoundError, WarehouseError

if TYPE_CHECKING:
    from google.cloud.bigquery_storage_v1 import BigQueryReadClient

log = logging.getLogger(__name__)

_GCS_FOLDER = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}(/[A-Za-z0-9._-]+)*/?$")


__all__ = ["STAGING_PREFIX", "STAGING_TTL", "BigQueryWarehouse", "human_bytes", "schema_types"]


class BigQueryWarehouse(PartitionWrites):
    """Runs GoogleSQL on BigQuery and replaces date partitions by staging table + partition-decorator query."""

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

    @cached_property
    def read_client(self) -> BigQueryReadClient:
        """The BigQuery Storage Read client, with the hook's credentials."""
        from airflow.providers.google.common.consts import CLIENT_INFO

        return read_client(self.hook.get_credentials(), CLIENT_INFO)

    # --- queries ---------------------------------------------------------------------

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> pa.Table:
        """Run a SELECT and return the rows as an Arrow table."""
        job = self._run(sql, params, source)
        with query_errors(source):
            # Small results (registry, reports) come over REST; large reads use query_batches.
            return job.result().to_arrow(create_bqstorage_client=False)

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
        if job.destination is None:
            raise WarehouseError(f"{source}: BigQuery job {job.job_id} returned no result table to read.")
        yield read_batches(self.read_client, job.destination, self.project, batch_rows=batch_rows, source=source)

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
        with query_errors(source):
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
        with query_errors(source):
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
        """``EXPORT DATA`` the query's rows as Parquet shards into a new folder under ``uri``; return it.

        ``overwrite = true`` replaces same-named shards but never deletes others, so a retry that
        writes fewer shards would leave stale ones next to its own. Each export therefore writes
        to a folder of its own (``<uri>/export-<time>-<id>``), and the trainer reads exactly that.
        """
        if not _GCS_FOLDER.match(uri):
            raise WarehouseError(
                f"export URI {uri!r} must be a gs:// folder of letters, digits and ._/- (e.g. "
                "gs://my-bucket/airflow-ml/recsys/v1/data); set staging_bucket in the ml_platform connection."
            )
        folder = f"{uri.rstrip('/')}/export-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        # EXPORT DATA takes its URI as a literal, so it is validated above instead of bound.
        export = (
            f"EXPORT DATA OPTIONS (uri = '{folder}/part-*.parquet', format = 'PARQUET', overwrite = false) AS\n{sql}"
        )
        self._run(export, params, source)
        log.info("Exported %s to %s", source, folder)
        return folder

    def replace_table(self, table: str, data: pa.Table) -> int:
        """Replace a whole (small, unpartitioned) table with ``data``; return its row count."""
        table_id = self._table_id(table)
        check_column_names(data)
        self._load(data, table_id)
        return data.num_rows

    def drop_table(self, table: str) -> None:
        """Delete ``table`` if it exists."""
        self.client.delete_table(self._table_id(table), not_found_ok=True)

    def _load(
        self, data: pa.Table, table_id: str, *, write_disposition: str = bigquery.WriteDisposition.WRITE_TRUNCATE
    ) -> None:
        """Load Arrow rows into ``table_id`` (default: over it, WRITE_TRUNCATE) as Parquet, which keeps Arrow types."""
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=write_disposition,
            labels=dict(self.labels),
        )
        parquet_options = bigquery.ParquetOptions()
        parquet_options.enable_list_inference = True
        config.parquet_options = parquet_options
        with job_errors(f"loading {data.num_rows} rows into {table_id}"):
            job = self.client.load_table_from_file(
                to_parquet(data), table_id, rewind=True, job_config=config, job_id_prefix=JOB_ID_PREFIX
            )
            log.info("BigQuery load job %s started for %s", job.job_id, table_id)
            job.result()
