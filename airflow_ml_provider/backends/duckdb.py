"""The embedded warehouse: one DuckDB file, GoogleSQL transpiled by sqlglot.

DuckDB allows one process at a time to open a file for writing, or many to read it, and
Airflow runs tasks in parallel processes. So every operation opens a short-lived connection
under an inter-process file lock (shared to read, exclusive to write: ``file_lock``), retries
until ``lock_timeout`` and then raises ``WarehouseLockedError`` (retryable). A partition
write is one DuckDB transaction: a killed process leaves the previous partition as it was.
``transaction()`` holds one connection for a block of writes (a date's feature steps), so
they commit together or not at all: a kill -9, a full disk or an error leaves every table as
it was before the block.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import duckdb.func
import pyarrow as pa

from airflow_ml_provider.backends import duckdb_errors, file_lock
from airflow_ml_provider.core.contract.identifiers import validate_dataset, validate_identifier
from airflow_ml_provider.core.inference.shards import STAGING_PREFIX, fingerprint64
from airflow_ml_provider.core.storage import local_path, to_uri
from airflow_ml_provider.core.warehouse.interface import CheckBuilder, CheckGate, Warehouse, WriteResult
from airflow_ml_provider.core.warehouse.sql import bind_params, partition_select, to_duckdb
from airflow_ml_provider.exceptions import (
    EmptyResultError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    WarehouseError,
    WarehouseLockedError,
)

if TYPE_CHECKING:
    from airflow_ml_provider.core.features.checks import CheckResult

log = logging.getLogger(__name__)

_STAGE = "__aml_stage"
#: DuckDB's memory limit on a streaming read (query_batches), unless the connection sets one.
#: Its default, 80% of RAM, lets the buffer cache of a long scan grow with the table, and a
#: fixed 512MB let it grow by 512MB (peak RSS +370MB from 2M to 8M candidate rows). A scan
#: only needs the blocks it pins, one 256KB block per column and thread (16 threads x 25
#: columns fail at 64MB), so the limit is 1MB per column and thread, at least 128MB (an
#: anti-join such as exclude_seen's, over 8M rows on 2 threads, fails at 64MB and spills at
#: 128MB): past it DuckDB evicts cached blocks or spills (docs/adr/0006-flat-memory-batch-inference.md).
STREAM_MEMORY_FLOOR_MB = 128
STREAM_MEMORY_MB_PER_COLUMN_THREAD = 1
# DuckDB's SUM and COUNT_IF return 128-bit integers where BigQuery returns INT64.
_WIDE_INTS = {"HUGEINT", "UHUGEINT"}


class DuckDBWarehouse(Warehouse):
    """Warehouse on a local DuckDB file (the embedded default)."""

    backend = "local"
    locks_while_reading = True

    def __init__(
        self,
        path: str | Path,
        *,
        schema: str | None = None,
        lock_timeout: float = 120.0,
        stream_memory_limit: str | None = None,
        memory_limit: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.schema = validate_dataset(schema) if schema else "main"
        self.lock_timeout = lock_timeout
        self.stream_memory_limit = stream_memory_limit
        self.memory_limit = _memory_size(memory_limit) if memory_limit else None
        # The connection of an open ``transaction()``, and the thread that owns it.
        self._held: tuple[int, duckdb.DuckDBPyConnection] | None = None

    @property
    def dataset_ref(self) -> str:
        return self.schema

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r}, schema={self.schema!r})"

    # --- connections -------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection held under the inter-process lock (shared when ``read_only``).

        Read-only callers do not create the file; they get an in-memory database with
        the same schema when it does not exist yet, so a reader never fails on a
        missing or busy warehouse before the bound. Inside ``transaction()`` (same thread) every
        caller shares its connection, so reads see the block's uncommitted writes.
        """
        if self._held is not None and self._held[0] == threading.get_ident():
            yield self._held[1]
            return
        # A folder, a Parquet file or any other non-database is refused before a lock file appears.
        refused = duckdb_errors.not_a_database(self.path) if self._sized(self.path) else None
        if refused is not None:
            raise refused
        deadline = time.monotonic() + self.lock_timeout
        lock_path = Path(f"{self.path}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new_lock = not lock_path.exists()
            lock = file_lock.acquire(str(lock_path), shared=read_only, timeout=self.lock_timeout)
        except file_lock.LockTimeout as err:
            raise self._locked_error() from err
        except OSError as err:  # a read-only folder: no lock file can be created
            if not (read_only and duckdb_errors.is_read_only(err)):
                raise (duckdb_errors.storage_error("taking its lock", self.path, err) or err) from err
            # Nobody can write a warehouse in a read-only folder (DuckDB needs its .wal there): read unlocked.
            new_lock, lock = False, file_lock.HeldLock(lambda: None)
        try:
            try:
                con = self._open(read_only, deadline)
            except WarehouseError:
                if new_lock:  # ours alone: the file is no warehouse, so nobody else waits on this lock
                    lock_path.unlink(missing_ok=True)
                raise
            failed = False
            try:
                # DATE(event_ts) must mean the UTC day, as on BigQuery, whatever the host's zone.
                con.execute("SET TimeZone = 'UTC'")
                if self.memory_limit:
                    con.execute(f"SET memory_limit = '{self.memory_limit}'")
                if self.schema != "main":
                    if not read_only:
                        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    with contextlib.suppress(duckdb.CatalogException):
                        con.execute(f'USE "{self.schema}"')
                yield con
            except Exception as err:
                failed = True
                cause = duckdb_errors.unmasked(err)  # a failed ROLLBACK must not hide why the write failed
                translated = (
                    duckdb_errors.translate("a statement", self.path, cause)
                    if isinstance(cause, (duckdb.Error, OSError))
                    else None
                )
                if translated is not None:
                    raise translated from cause
                if cause is not err:
                    raise cause from None
                raise
            finally:
                try:
                    con.close()
                except duckdb.Error as err:  # closing checkpoints: a full disk fails here too
                    if not failed:
                        raise (duckdb_errors.translate("closing it", self.path, err) or err) from err
                    log.debug("closing %s after a failed statement: %s", self.path, err)
        finally:
            lock.release()

    @staticmethod
    def _sized(path: Path) -> bool:
        """True when ``path`` is a folder or holds a header's worth of bytes (a file being created may not yet)."""
        try:
            return path.is_dir() or path.stat().st_size >= 16
        except OSError:
            return False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One DuckDB transaction for every write in the block: all commit, or none does.

        A kill -9 before COMMIT leaves nothing (DuckDB's WAL holds only committed
        transactions); an error, a failed check or a full disk rolls back, and the original
        error is raised, never the rollback's. Nested blocks join the outer one.
        """
        if self._held is not None and self._held[0] == threading.get_ident():
            yield
            return
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            self._held = (threading.get_ident(), con)
            try:
                yield
            except BaseException:
                self._held = None
                _rollback(con)
                raise
            self._held = None
            with _translate_errors("commit of the transaction"):
                con.execute("COMMIT")

    def _in_transaction(self, con: duckdb.DuckDBPyConnection) -> bool:
        return self._held is not None and self._held[1] is con

    def _open(self, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
        # The file lock serialises our own processes; DuckDB's lock can still be held
        # by a process outside it (a user's duckdb shell), so retry until the deadline.
        delay = 0.05
        while True:
            try:
                if read_only and not self.path.exists():
                    return duckdb.connect(":memory:")
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as err:
                text = str(err).lower()
                locked = isinstance(err, duckdb.IOException) and ("set lock" in text or "conflicting lock" in text)
                if not locked:  # not a database, a corrupt block, a read-only file: name it, no traceback
                    raise (duckdb_errors.open_error(self.path, err) or err) from err
                if time.monotonic() + delay > deadline:
                    raise self._locked_error() from err
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _locked_error(self) -> WarehouseLockedError:
        return WarehouseLockedError(
            f"warehouse {self.path} stayed locked by another process for more than "
            f"{self.lock_timeout:g}s. Wait for the other writer (another task, or a duckdb "
            "shell holding the file) to finish, or raise `lock_timeout_seconds` in the "
            "ml_platform connection extras. The task will be retried."
        )

    # --- SQL ----------------------------------------------------------------------

    @staticmethod
    def _compile(sql: str, params: Mapping[str, Any] | None, source: str) -> tuple[str, dict[str, Any]]:
        return to_duckdb(sql, source), bind_params(sql, params, source)

    @staticmethod
    def _run(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], source: str) -> None:
        _add_functions(con, sql)
        with _translate_errors(source, con, sql):
            con.execute(sql, params or None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> pa.Table:
        text, bound = self._compile(sql, params, source)
        with self.connect(read_only=True) as con, _translate_errors(source, con, text):
            _add_functions(con, text)
            rel = con.sql(text, params=bound or None)
            return _as_bigquery_types(rel).to_arrow_table()

    @contextlib.contextmanager
    def query_batches(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        batch_rows: int = 500_000,
        source: str = "<sql>",
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        text, bound = self._compile(sql, params, source)
        with self.connect(read_only=True) as con, _translate_errors(source):
            _add_functions(con, text)
            rel = _as_bigquery_types(con.sql(text, params=bound or None))
            before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # type: ignore[index]
            limit = self.stream_memory_limit or _stream_memory_limit(con, len(rel.columns))
            con.execute(f"SET memory_limit = '{_memory_size(limit)}'")
            reader = rel.to_arrow_reader(batch_rows)
            try:
                yield iter(reader)
            finally:
                # An open stream keeps the database file open even after con.close(), e.g. while
                # an exception's traceback still references it; the next writer would then wait.
                reader.close()
                if self._in_transaction(con):  # the block's later statements get the connection's limit back
                    con.execute(f"SET memory_limit = '{self.memory_limit or before}'")

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *, source: str = "<sql>") -> None:
        text, bound = self._compile(sql, params, source)
        with self.connect() as con:
            self._run(con, text, bound, source)

    def table_exists(self, table: str) -> bool:
        validate_identifier(table)
        with self.connect(read_only=True) as con:
            return bool(self._columns(con, table))

    def list_tables(self) -> list[str]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
                "AND table_schema = $schema AND table_type = 'BASE TABLE' ORDER BY table_name",
                {"schema": self.schema},
            ).fetchall()
        return [r[0] for r in rows if not r[0].startswith(STAGING_PREFIX)]

    def table_columns(self, table: str) -> dict[str, str]:
        validate_identifier(table)
        with self.connect(read_only=True) as con:
            cols = self._columns(con, table)
        if not cols:
            raise TableNotFoundError(f"table {self.schema}.{table} does not exist in {self.path}.")
        return cols

    def all_table_columns(self) -> dict[str, dict[str, str]]:
        # One connection for the lot: opening the file is what costs on a read (tens of ms each).
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns AS c "
                "JOIN information_schema.tables AS t ON t.table_catalog = c.table_catalog "
                "AND t.table_schema = c.table_schema AND t.table_name = c.table_name "
                "WHERE c.table_catalog = current_database() AND c.table_schema = $schema "
                "AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position",
                {"schema": self.schema},
            ).fetchall()
        out: dict[str, dict[str, str]] = {}
        for table, name, dtype in rows:
            if not table.startswith(STAGING_PREFIX):  # the tables list_tables lists
                out.setdefault(table, {})[name] = dtype
        return out

    def _columns(self, con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog "
            "= current_database() AND table_schema = $schema AND table_name = $table ORDER BY ordinal_position",
            {"schema": self.schema, "table": table},
        ).fetchall()
        return {name: dtype for name, dtype in rows}

    # --- writes -------------------------------------------------------------------

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
        return self._replace(table, partition_column, partition, source, params, sql_source, allow_empty, cluster_by)[0]

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
        # The checks read the staged rows in the writing connection: the query runs once.
        return self._replace(
            table,
            partition_column,
            partition,
            source,
            params,
            sql_source,
            allow_empty,
            cluster_by,
            check=check,
            gate=gate,
        )

    def _replace(
        self,
        table: str,
        partition_column: str,
        partition: dt.date,
        source: str | pa.Table,
        params: Mapping[str, Any] | None,
        sql_source: str,
        allow_empty: bool,
        cluster_by: tuple[str, ...],
        *,
        check: CheckBuilder | None = None,
        gate: CheckGate | None = None,
    ) -> tuple[WriteResult, list[CheckResult]]:
        validate_identifier(table)
        validate_identifier(partition_column, kind="partition column")
        for col in cluster_by:
            validate_identifier(col, kind="cluster column")
        started = time.monotonic()
        results: list[CheckResult] = []
        with self.connect() as con:
            self._stage(con, partition_column, partition, source, params, sql_source)
            rows = con.execute(f"SELECT count(*) FROM {_STAGE}").fetchone()[0]  # type: ignore[index]
            if rows == 0 and not allow_empty:
                raise EmptyResultError(
                    f"{sql_source}: produced no rows for {table} partition {partition_column}="
                    f"{partition}; the existing partition was left as it was. Check that the "
                    "source tables have data up to that date."
                )
            query = check(_STAGE) if check else None
            if query is not None and gate is not None:
                if self._columns(con, table):  # a wrong schema is the clearer error than a check's SQL error
                    self._check_schema(con, table, sql_source)
                where = f"data checks of {sql_source}"
                text, bound = self._compile(query.sql, {**(params or {}), **query.params}, where)
                with _translate_errors(where):
                    row = con.execute(text, bound or None)
                    names = [d[0] for d in row.description]
                    results = query.evaluate(dict(zip(names, row.fetchone() or (), strict=True)))
                gate(results)
            own = not self._in_transaction(con)  # inside transaction() the block commits
            if own:
                con.execute("BEGIN TRANSACTION")
            try:
                target = f'"{self.schema}"."{table}"'
                con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({_stage_columns_ddl(con)})")
                self._check_schema(con, table, sql_source)
                with _translate_errors(f"write of {table}"):
                    con.execute(f"DELETE FROM {target} WHERE {partition_column} = $p", {"p": partition})
                    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {_STAGE}")
                    if own:
                        con.execute("COMMIT")
            except BaseException:
                if own:
                    _rollback(con)
                raise
            finally:
                if not own:  # the held connection outlives this write: drop its stage now
                    _drop_stage(con)
        log.debug(
            "Replaced %s.%s partition %s=%s with %d rows in %.2fs",
            self.schema,
            table,
            partition_column,
            partition,
            rows,
            time.monotonic() - started,
        )
        return WriteResult(table=table, partition=partition.isoformat(), rows=int(rows)), results

    def _stage(
        self,
        con: duckdb.DuckDBPyConnection,
        partition_column: str,
        partition: dt.date,
        source: str | pa.Table,
        params: Mapping[str, Any] | None,
        sql_source: str,
    ) -> None:
        """Materialise the new partition's rows in a temp table before touching the target."""
        if self._in_transaction(con):  # a write that failed earlier in the block may have left one
            _drop_stage(con)
        if isinstance(source, str):
            wrapped = partition_select(source, partition_column, sql_source)
            text, bound = self._compile(wrapped, {**(params or {}), "__partition": partition}, sql_source)
            # A temp table dies with the connection, so a killed task leaves nothing behind.
            self._run(con, f"CREATE TEMP TABLE {_STAGE} AS {text}", bound, sql_source)
        else:
            # A view over the registered Arrow table, not a copy: the INSERT reads the Arrow
            # buffers directly, so the lists are in memory once (issue 15's flat memory).
            # The registration lives as long as the connection, i.e. past the INSERT.
            con.register("__aml_arrow", _with_partition_column(source, partition_column, partition, sql_source))
            con.execute(f"CREATE TEMP VIEW {_STAGE} AS SELECT * FROM __aml_arrow")
            return
        for col, dtype in con.execute(f"SELECT column_name, column_type FROM (DESCRIBE temp.main.{_STAGE})").fetchall():
            if dtype in _WIDE_INTS:
                con.execute(f'ALTER TABLE temp.main.{_STAGE} ALTER "{col}" SET DATA TYPE BIGINT')

    def _check_schema(self, con: duckdb.DuckDBPyConnection, table: str, sql_source: str) -> None:
        have = self._columns(con, table)
        new = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE temp.main.{_STAGE})").fetchall())
        if have != new:
            diff = sorted(
                f"{c}: table has {have.get(c, 'no such column')}, rows have {new.get(c, 'no such column')}"
                for c in set(have) | set(new)
                if have.get(c) != new.get(c)
            )
            raise SchemaMismatchError(
                f"{sql_source}: rows do not match the schema of table {self.schema}.{table}: "
                f"{'; '.join(diff)}. Fix the query to produce the table's columns, or drop "
                f"the table (`DROP TABLE {self.schema}.{table}`) to let it be recreated."
            )

    def export_parquet(self, sql: str, params: Mapping[str, Any] | None, uri: str, *, source: str = "<sql>") -> str:
        path = local_path(uri)
        if path is None:
            raise WarehouseError(f"the local warehouse exports to file:// or a path only, got {uri}.")
        path.mkdir(parents=True, exist_ok=True)
        target = path / "data.parquet"
        text, bound = self._compile(sql, params, source)
        with self.connect(read_only=True) as con, _translate_errors(source):
            _add_functions(con, text)
            _as_bigquery_types(con.sql(text, params=bound or None)).write_parquet(str(target))
        return to_uri(target)

    def replace_table(self, table: str, data: pa.Table) -> int:
        validate_identifier(table)
        with self.connect() as con:
            con.register("__aml_arrow", data)
            con.execute(f'CREATE OR REPLACE TABLE "{self.schema}"."{table}" AS SELECT * FROM __aml_arrow')
            con.unregister("__aml_arrow")
        return data.num_rows

    def drop_table(self, table: str) -> None:
        validate_identifier(table)
        with self.connect() as con:
            con.execute(f'DROP TABLE IF EXISTS "{self.schema}"."{table}"')


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after an error without hiding it: DuckDB may have aborted already (a full disk)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as err:  # "cannot rollback - no transaction is active": nothing was committed
        log.debug("rollback after a failed write: %s", _first_line(err))


def _stage_columns_ddl(con: duckdb.DuckDBPyConnection) -> str:
    """The stage's columns as DDL: a new target is created from them, not with CTAS ... LIMIT 0.

    DuckDB 2.0.0 cannot read back, on the same connection, rows inserted into a table that was
    created by CTAS in that transaction once they pass one row group (122,880 rows): later steps
    of a date's transaction read an empty table (tests/integration/backends/test_duckdb_transaction.py).
    """
    rows = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE temp.main.{_STAGE})").fetchall()
    return ", ".join(f'"{name.replace(chr(34), chr(34) * 2)}" {dtype}' for name, dtype in rows)


def _drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the stage (a temp table or view) on a connection that lives on.

    Inside a transaction a failed statement aborts it, so look before dropping.
    """
    found = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_catalog = 'temp' AND table_name = $name",
        {"name": _STAGE},
    ).fetchone()
    if found is not None:
        con.execute(f"DROP {'VIEW' if found[0] == 'VIEW' else 'TABLE'} temp.main.{_STAGE}")
    con.unregister("__aml_arrow")  # a no-op when nothing is registered


def _add_functions(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Register the GoogleSQL functions DuckDB lacks that ``sql`` calls (FARM_FINGERPRINT)."""
    if "farm_fingerprint" in sql.lower():
        with contextlib.suppress(duckdb.CatalogException):  # already registered on this connection
            con.create_function("farm_fingerprint", fingerprint64, ["varchar"], "bigint", type=duckdb.func.ARROW)


def _as_bigquery_types(rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """Cast 128-bit integers to BIGINT so Arrow output matches BigQuery's INT64."""
    if not any(str(t) in _WIDE_INTS for t in rel.types):
        return rel
    cols = [
        f'CAST("{c}" AS BIGINT) AS "{c}"' if str(t) in _WIDE_INTS else f'"{c}"'
        for c, t in zip(rel.columns, rel.types, strict=True)
    ]
    return rel.project(", ".join(cols))


@contextlib.contextmanager
def _translate_errors(
    source: str, con: duckdb.DuckDBPyConnection | None = None, sql: str | None = None
) -> Iterator[None]:
    """Turn DuckDB's errors into the provider's, naming the SQL file (and, given ``sql``, a missing column's table)."""
    try:
        yield
    except duckdb.BinderException as err:
        explained = duckdb_errors.missing_column_error(source, err, sql, con) if sql else None
        if explained is None:
            raise SQLTemplateError(f"{source}: DuckDB rejected the query: {_first_line(err)}. {_FIX_SQL}") from err
        raise SQLTemplateError(explained) from err
    except duckdb.CatalogException as err:
        if "Table with name" not in str(err):
            raise SQLTemplateError(f"{source}: DuckDB rejected the query: {_first_line(err)}. {_FIX_SQL}") from err
        raise TableNotFoundError(
            f"{source}: {_first_line(err)}. Create the table first (run the task that writes "
            "it, or `airflow-ml seed-demo` for the demo sources)."
        ) from err
    except (duckdb.ParserException, duckdb.ConversionException) as err:
        raise SQLTemplateError(f"{source}: DuckDB rejected the query: {_first_line(err)}. {_FIX_SQL}") from err
    except (duckdb.IOException, duckdb.TransactionException, OSError) as err:
        # A full disk or a read-only file: the cause, not "cannot rollback" (duckdb_errors).
        cause = duckdb_errors.unmasked(err)
        translated = duckdb_errors.translate(source, None, cause)
        if translated is None:
            raise
        raise translated from cause


_FIX_SQL = "Fix the SQL (names and types must match the tables it reads) and rerun."


def _memory_size(value: str) -> str:
    """A DuckDB memory size such as ``512MB`` or ``2GiB``, checked before it is put into SET."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip()):
        raise WarehouseError(f"stream memory limit {value!r} is not a size such as '512MB' or '2GiB'.")
    return value.strip()


def _stream_memory_limit(con: duckdb.DuckDBPyConnection, columns: int) -> str:
    """The default limit of a streaming read: what its scan pins (a block per column and thread), not the table."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])  # type: ignore[index]
    return f"{max(STREAM_MEMORY_FLOOR_MB, STREAM_MEMORY_MB_PER_COLUMN_THREAD * columns * threads)}MB"


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0].rstrip("!.")


def _with_partition_column(data: pa.Table, column: str, partition: dt.date, source: str) -> pa.Table:
    """Prepend the partition column, or check that every row already carries ``partition``."""
    if column not in data.column_names:
        return data.add_column(0, column, pa.repeat(pa.scalar(partition, pa.date32()), data.num_rows))
    values = set(data.column(column).unique().to_pylist())
    if values - {partition}:
        raise SchemaMismatchError(
            f"{source}: rows for partition {column}={partition} carry other {column} values "
            f"{sorted(str(v) for v in values - {partition})}. Write one partition per call."
        )
    return data
