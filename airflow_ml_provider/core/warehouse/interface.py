"""The Warehouse interface (pure); implementations live in ``backends/``: DuckDB and BigQuery.

All SQL given to a warehouse is GoogleSQL with ``@name`` parameters. Table names are
bare identifiers, resolved in the configured dataset (BigQuery) or schema (DuckDB).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from airflow_ml_provider.core.features.checks import CheckQuery, CheckResult

#: Given the relation holding a partition's new rows, the checks to run on it (None: no checks).
CheckBuilder = Callable[[str], "CheckQuery | None"]
#: Judges the check results before anything is published; raises to stop the write.
CheckGate = Callable[[list["CheckResult"]], None]


@dataclass(frozen=True)
class WriteResult:
    """What a partition write did. Small and JSON-able: operators return it as is."""

    table: str
    partition: str
    rows: int
    bytes_processed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict (for XCom)."""
        return asdict(self)


class Warehouse(ABC):
    """Runs GoogleSQL and writes date partitions atomically and idempotently."""

    backend: ClassVar[str]
    #: Whether an open ``query_batches`` stream holds a lock other tasks wait on (DuckDB's file lock).
    locks_while_reading: ClassVar[bool] = False

    @property
    @abstractmethod
    def dataset_ref(self) -> str:
        """The dataset (BigQuery) or schema (DuckDB) as GoogleSQL, for qualifying names in views."""

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> pa.Table:
        """Run a SELECT and return the rows as an Arrow table."""

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> pd.DataFrame:
        """Run a SELECT and return the rows as a pandas DataFrame."""
        return self.query(sql, params, source=source).to_pandas()

    @abstractmethod
    def query_batches(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        batch_rows: int = 500_000,
        source: str = "<sql>",
    ) -> contextlib.AbstractContextManager[Iterator[pa.RecordBatch]]:
        """Stream a SELECT as Arrow record batches of at most about ``batch_rows`` rows.

        A context manager, so the connection (and the local file lock) is held only while
        the caller iterates.
        """

    @abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> None:
        """Run a statement (DDL or DML) for its effect."""

    @abstractmethod
    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists in the warehouse's dataset."""

    @abstractmethod
    def list_tables(self) -> list[str]:
        """Names of the tables in the warehouse's dataset, sorted."""

    @abstractmethod
    def table_columns(self, table: str) -> dict[str, str]:
        """Column name -> warehouse type of an existing table, in table order."""

    def all_table_columns(self) -> dict[str, dict[str, str]]:
        """Every table's columns (name -> type), by table; a backend may do it in one round trip."""
        return {table: self.table_columns(table) for table in self.list_tables()}

    def ensure_table(self, ddl: str, *, source: str = "<ddl>") -> None:
        """Create a table or view from GoogleSQL DDL unless it exists (``IF NOT EXISTS``)."""
        from airflow_ml_provider.core.warehouse.sql import check_create_if_not_exists

        check_create_if_not_exists(ddl, source)
        self.execute(ddl, source=source)

    @abstractmethod
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
        """Replace one date partition of ``table`` with the rows of ``source``.

        ``source`` is a GoogleSQL query (which must not output ``partition_column``:
        the partition value is added) or an Arrow table. Readers see the old partition
        or the new one, never a mix; a rerun replaces rather than appends; a failure
        leaves the old partition untouched. The table is created on first write,
        partitioned by ``partition_column`` and clustered by ``cluster_by``. An empty
        result raises ``EmptyResultError`` unless ``allow_empty``.
        """

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
        """``replace_partition`` of a query's rows, after ``gate`` accepted the checks run on those rows.

        A gate that raises leaves the partition as it was. This default runs the checks on
        the query itself, then writes (the query runs twice); a backend that stages the new
        rows (DuckDB's temp table, a BigQuery script's temp table) checks the staged rows and
        publishes them from the same stage.
        """
        from airflow_ml_provider.core.warehouse.sql import partition_select

        relation = f"(\n{partition_select(source, partition_column, sql_source)}\n)"
        results = self._run_checks(check(relation), {**(params or {}), "__partition": partition}, sql_source)
        gate(results)
        written = self.replace_partition(
            table,
            partition_column,
            partition,
            source,
            params,
            sql_source=sql_source,
            cluster_by=cluster_by,
            allow_empty=allow_empty,
        )
        return written, results

    def _run_checks(self, query: CheckQuery | None, params: Mapping[str, Any], sql_source: str) -> list[CheckResult]:
        if query is None:
            return []
        rows = self.query(query.sql, {**params, **query.params}, source=f"data checks of {sql_source}").to_pylist()
        return query.evaluate(rows[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together or not at all, where the backend can (a date's feature steps).

        The default gives no such guarantee: each write is atomic on its own. DuckDB runs the
        block as one transaction; BigQuery keeps one atomic write per step (docs/adr/0003).
        """
        yield

    @abstractmethod
    def replace_table(self, table: str, data: pa.Table) -> int:
        """Replace a whole (small, unpartitioned) table with ``data``; return its row count."""

    def stage_table(self, table: str, data: pa.Table) -> int:
        """Write ``data`` as the whole of a staging table (a retry replaces it whole); return its row count.

        Staging tables hold intermediate rows between tasks (e.g. a shard's lists until publish).
        """
        return self.replace_table(table, data)

    @abstractmethod
    def drop_table(self, table: str) -> None:
        """Drop ``table`` if it exists (staging tables, after they were published)."""

    @abstractmethod
    def export_parquet(self, sql: str, params: Mapping[str, Any] | None, uri: str, *, source: str = "<sql>") -> str:
        """Write a query's rows as Parquet under the folder ``uri``; return the URI to read back."""

    def dry_run_bytes(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> int | None:
        """Bytes the query would scan, where the backend can tell (BigQuery); else None."""
        return None
