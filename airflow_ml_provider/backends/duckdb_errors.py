"""Storage failures of the embedded warehouse as sentences: the path, the cause and the fix.

DuckDB reports a full disk, a read-only file or folder, a file that is not a database and a
corrupt block as ``IOException``/``TransactionException``/``Error`` text (and Python as
``OSError``). ``backends.duckdb`` turns them into ``WarehouseError`` here, and never lets a
failed rollback replace the error that caused it.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import duckdb

from airflow_ml_provider.exceptions import WarehouseError

#: The first bytes of a DuckDB database file: 8 bytes of checksum, then the magic.
DUCKDB_MAGIC, DUCKDB_MAGIC_AT = b"DUCK", 8
#: Formats people pass as --warehouse by mistake, by their leading magic bytes.
_KNOWN_FORMATS = {
    b"PAR1": "a Parquet file",
    b"SQLite format 3": "a SQLite database",
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "a gzip file",
    b"ARROW1": "an Arrow IPC file",
}

_DISK_FULL = ("no space left on device", "disk quota exceeded", "max_temp_directory_size")
_READ_ONLY = ("permission denied", "operation not permitted", "read-only file system")


def _cause(err: BaseException) -> str:
    """The error's first line, without DuckDB's category prefix and trailing punctuation."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return re.sub(r"^(IO Error|TransactionContext Error|Catalog Error|Error): ", "", text).rstrip("!. ")


def _errno(err: BaseException) -> int | None:
    return err.errno if isinstance(err, OSError) else None


def is_disk_full(err: BaseException) -> bool:
    return _errno(err) in (errno.ENOSPC, errno.EDQUOT) or any(s in str(err).lower() for s in _DISK_FULL)


def is_read_only(err: BaseException) -> bool:
    return _errno(err) in (errno.EACCES, errno.EPERM, errno.EROFS) or any(s in str(err).lower() for s in _READ_ONLY)


def disk_full_error(where: str, err: BaseException) -> WarehouseError:
    return WarehouseError(
        f"{where}: the disk is full ({_cause(err)}). The write was rolled back: the tables are as they were. "
        "Free space on that disk (DuckDB also spills large queries to a .tmp folder beside the warehouse), "
        "or move the warehouse to a larger disk (--warehouse, or warehouse_path in the connection), and rerun."
    )


def read_only_error(path: Path, err: BaseException) -> WarehouseError:
    return WarehouseError(
        f"warehouse {path} cannot be written: {_cause(err)}. Writing needs the file and its folder "
        f"{path.parent} writable (DuckDB writes {path.name}.wal, and the provider {path.name}.lock, beside it). "
        "Make both writable (e.g. chmod u+w), or copy the warehouse to a writable folder and point "
        "--warehouse (or warehouse_path in the connection) at the copy."
    )


def storage_error(where: str, path: Path | None, err: BaseException) -> WarehouseError | None:
    """The provider's error for a storage failure (full disk, read-only file or folder); None for others."""
    if is_disk_full(err):
        return disk_full_error(where if path is None else f"warehouse {path} ({where})", err)
    if is_read_only(err):
        return read_only_error(path or _named_path(err), err)
    return None


def _named_path(err: BaseException) -> Path:
    """The database file a DuckDB error names (its .wal or .tmp stands for the database), else a placeholder."""
    quoted = re.search(r'"([^"]+)"', str(err)) or re.search(r"'([^']+)'", str(err))
    if quoted is None:
        return Path("(the warehouse file)")
    return Path(re.sub(r"\.(wal|tmp|lock)$", "", quoted.group(1)))


def not_a_database(path: Path) -> WarehouseError | None:
    """An error when ``path`` exists but cannot be a DuckDB database file (checked before any lock is taken)."""
    if not path.exists():
        return None
    if path.is_dir():
        return WarehouseError(
            f"warehouse {path} is a folder, not a DuckDB database file. Pass the database file inside it "
            f"(e.g. {path / 'warehouse.duckdb'}) as --warehouse or warehouse_path."
        )
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as err:
        if is_read_only(err):
            return WarehouseError(
                f"warehouse {path} cannot be read: {_cause(err)}. Make it readable by this user, "
                "or point --warehouse (or warehouse_path in the connection) at a readable copy."
            )
        raise
    if head[DUCKDB_MAGIC_AT : DUCKDB_MAGIC_AT + len(DUCKDB_MAGIC)] == DUCKDB_MAGIC:
        return None
    kind = next((name for magic, name in _KNOWN_FORMATS.items() if head.startswith(magic)), None)
    if not head:
        kind = "an empty file"
    what = kind or "a file of another format"
    hint = (
        " Load it into a table instead (e.g. `CREATE TABLE events AS SELECT * FROM 'file.parquet'` in a duckdb "
        "shell on the warehouse) and point `sources:` in pipeline.yaml at it."
        if kind and "Parquet" in kind
        else ""
    )
    return WarehouseError(
        f"warehouse {path} is {what}, not a DuckDB database: the file was left as it is. Pass the .duckdb "
        f"file of your warehouse as --warehouse (or warehouse_path), or create one with "
        f"`airflow-ml seed-demo --warehouse NEW.duckdb`.{hint}"
    )


def open_error(path: Path, err: duckdb.Error) -> WarehouseError | None:
    """The provider's error for DuckDB refusing to open ``path`` (not a database, corrupt, read-only)."""
    text = str(err)
    if "not a valid DuckDB database file" in text:
        return not_a_database(path) or WarehouseError(
            f"warehouse {path} is not a DuckDB database file ({_cause(err)}). Pass the .duckdb file of your "
            "warehouse as --warehouse (or warehouse_path)."
        )
    if "corrupt" in text.lower() or "checksum" in text.lower():
        return corrupt_error(path, err)
    if "Is a directory" in text:
        return not_a_database(path)
    return storage_error("opening it", path, err)


def corrupt_error(path: Path, err: BaseException) -> WarehouseError:
    return WarehouseError(
        f"warehouse {path} is corrupt: {_cause(err)}. DuckDB refuses to read it, and nothing was written to it. "
        "Restore the file from a backup (or a copy made before the damage), or rebuild it: load the sources "
        "again (`airflow-ml seed-demo --force` for the demo) and rerun `airflow-ml features` for the dates you need."
    )


def translate(where: str, path: Path | None, err: BaseException) -> WarehouseError | None:
    """The provider's error for any storage-level failure of a statement (full, read-only, corrupt); else None."""
    if isinstance(err, duckdb.Error) and ("corrupt database" in str(err).lower()) and path is not None:
        return corrupt_error(path, err)
    return storage_error(where, path, err)


def unmasked(err: BaseException) -> BaseException:
    """The error a failed ROLLBACK replaced (DuckDB has already aborted after a full disk), else ``err``."""
    seen = err
    while (
        isinstance(seen, duckdb.TransactionException)
        and "no transaction is active" in str(seen)
        and seen.__context__ is not None
    ):
        seen = seen.__context__
    return seen


_MISSING_COLUMN = re.compile(
    r'(?:Table "(?P<alias>[^"]+)" does not have a column named "(?P<col1>[^"]+)")'
    r'|(?:Referenced column "(?P<col2>[^"]+)" not found)'
)


def missing_column_error(
    source: str, err: BaseException, sql: str, con: duckdb.DuckDBPyConnection | None
) -> str | None:
    """For "column not found" in a table the query reads: a sentence naming the column, the table and
    ``source_columns`` (instead of DuckDB's alias and "fix the SQL"); None when the table is not found."""
    match = _MISSING_COLUMN.search(str(err))
    if match is None:
        return None
    column, alias = match.group("col1") or match.group("col2"), match.group("alias")
    try:
        tables = _tables_reading(sql, column, alias)
    except Exception:  # sqlglot cannot parse it: DuckDB's own message stays
        return None
    columns = _table_columns(con, tables)
    lacking = [t for t in tables if columns.get(t) is not None and column not in columns[t]]
    if not lacking:
        lacking = [t for t in tables if t not in columns] if columns else tables
    if len(lacking) != 1:
        return None
    table = lacking[0]
    has = columns.get(table)
    listed = f" (it has {', '.join(sorted(has))})" if has else ""
    return (
        f"{source}: DuckDB rejected the query: table {table} has no column {column}{listed}, and the query reads "
        f"{column} from it. If {table} is a source whose column has another name, map it in pipeline.yaml under "
        f"source_columns (`source_columns: {{{table}: {{{column}: your_column}}}}`, keyed by the role whose "
        f"`sources:` entry is {table}); if the column is missing, add it to {table}; if the query means another "
        "column, Fix the SQL. Then rerun."
    )


def _tables_reading(sql: str, column: str, alias: str | None) -> list[str]:
    """The base tables behind ``alias`` (or behind the FROM clauses that read ``column`` unqualified)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}

    def base(node: exp.Expression) -> list[str]:
        if isinstance(node, exp.Table):
            return [] if node.name in ctes else [node.name]
        return [t.name for t in node.find_all(exp.Table) if t.name not in ctes][:1]

    if alias is not None:
        found: list[str] = []
        for node in tree.find_all(exp.Table, exp.Subquery):
            if node.alias_or_name == alias and (isinstance(node, exp.Subquery) or node.alias or node.name == alias):
                found += base(node)
        return list(dict.fromkeys(found))
    found = []
    for col in tree.find_all(exp.Column):
        if col.name != column or col.table:
            continue
        select = col.find_ancestor(exp.Select)
        if select is None:
            continue
        sources = [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]
        for src in sources:
            if src is not None:
                found += base(src.this)
    return list(dict.fromkeys(found))


def _table_columns(con: duckdb.DuckDBPyConnection | None, tables: list[str]) -> dict[str, set[str]]:
    if con is None or not tables:
        return {}
    try:
        rows = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = current_schema() AND table_name IN "
            f"({', '.join('?' for _ in tables)})",
            tables,
        ).fetchall()
    except duckdb.Error:  # an aborted transaction: the tables' columns cannot be read now
        return {}
    out: dict[str, set[str]] = {}
    for table, name in rows:
        out.setdefault(table, set()).add(name)
    return out
