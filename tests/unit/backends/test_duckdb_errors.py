"""backends/duckdb_errors.py: the embedded warehouse's storage failures name the path, the cause and the fix."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_ml_provider.backends import duckdb_errors
from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.exceptions import SQLTemplateError, WarehouseError


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.duckdb"
    DuckDBWarehouse(path).execute("CREATE TABLE events AS SELECT 'u1' AS user_id, 'i1' AS item_id")
    Path(f"{path}.lock").unlink()
    return path


def _sqlite(path: Path) -> None:
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.commit()


@pytest.mark.parametrize(
    ("name", "write", "said"),
    [
        ("events.parquet", lambda p: pq.write_table(pa.table({"a": [1]}), p), "is a Parquet file"),
        ("w.sqlite", _sqlite, "is a SQLite database"),
        ("w.csv", lambda p: p.write_text("a,b\n1,2\n" * 10), "is a file of another format"),
        ("w.duckdb", lambda p: p.write_bytes(b""), "is an empty file"),
        ("w.duckdb", lambda p: p.mkdir(), "is a folder, not a DuckDB database file"),
    ],
)
@pytest.mark.parametrize("read_only", [True, False])
def test_a_file_that_is_no_database_is_named_and_gets_no_lock_file(tmp_path, name, write, said, read_only):
    path = tmp_path / name
    write(path)
    before = sorted(tmp_path.iterdir())
    expected = rf"warehouse {path} {said}.*(--warehouse|warehouse_path)"
    with pytest.raises(WarehouseError, match=expected), DuckDBWarehouse(path).connect(read_only=read_only):
        pass
    assert sorted(tmp_path.iterdir()) == before


def test_a_corrupt_catalog_block_is_named_with_the_fix_and_leaves_no_lock(good):
    with good.open("r+b") as f:
        f.seek(3 * 4096)
        f.write(b"\xab" * 4096)
    with pytest.raises(WarehouseError, match=rf"warehouse {good} is corrupt: .*Restore the file from a backup"):
        DuckDBWarehouse(good).list_tables()
    assert not Path(f"{good}.lock").exists()


def _freeze(path: Path, on: bool) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)
    else:
        path.chmod(0o555 if on else 0o755)


def test_a_read_only_folder_is_named_for_writes_and_still_read(good):
    folder = good.parent
    _freeze(folder, True)
    try:
        with pytest.raises(WarehouseError, match=rf"warehouse {good} cannot be written: .*Make both writable"):
            DuckDBWarehouse(good).execute("CREATE TABLE x AS SELECT 1 AS a")
        # Nobody can write a warehouse there, so a reader needs no lock file.
        assert DuckDBWarehouse(good).query("SELECT COUNT(*) AS n FROM events").to_pylist() == [{"n": 1}]
    finally:
        _freeze(folder, False)
    assert not Path(f"{good}.lock").exists()


def test_a_rollback_that_fails_does_not_hide_the_cause():
    con = duckdb.connect()
    try:
        con.execute("SELECT * FROM no_such_table")
    except duckdb.Error as cause:
        try:
            con.execute("ROLLBACK")  # no transaction is active
        except duckdb.TransactionException as masked:
            assert duckdb_errors.unmasked(masked) is cause
            return
    pytest.fail("DuckDB did not refuse the rollback")


@pytest.mark.parametrize(
    "err",
    [
        OSError(28, "No space left on device"),
        duckdb.TransactionException(
            'TransactionContext Error: Failed to commit: Could not write file "/x/w.duckdb.wal": '
            "No space left on device"
        ),
        duckdb.IOException('IO Error: Could not write file "/x/w.duckdb": No space left on device'),
    ],
)
def test_a_full_disk_names_its_cause_and_the_fix(err):
    error = duckdb_errors.translate("write of recommendations", None, err)
    assert error is not None
    assert "write of recommendations: the disk is full (" in str(error)
    assert "No space left on device" in str(error) and "Free space on that disk" in str(error)


def test_a_read_only_wal_names_the_database_file():
    err = duckdb.TransactionException(
        'TransactionContext Error: Failed to commit: Cannot open file "/x/w.duckdb.wal": Permission denied'
    )
    assert str(duckdb_errors.translate("write of t", None, err)).startswith("warehouse /x/w.duckdb cannot be written")


def test_a_missing_source_column_names_the_table_and_source_columns(good):
    wh = DuckDBWarehouse(good)
    sql = "SELECT e.user_id, DATE(e.event_ts) AS d FROM events AS e"
    with pytest.raises(SQLTemplateError) as info:
        wh.query(sql, source="steps/candidates.sql")
    message = str(info.value)
    assert message.startswith(
        "steps/candidates.sql: DuckDB rejected the query: table events has no column event_ts (it has item_id, user_id)"
    )
    assert "`source_columns: {events: {event_ts: your_column}}`" in message
    # Unqualified, and behind a subquery (what `{{ source('events') }}` renders with source_columns).
    with pytest.raises(SQLTemplateError, match=r"table events has no column event_ts"):
        wh.query("SELECT MAX(event_ts) AS m FROM (SELECT * FROM events) AS x")


def test_a_missing_column_of_an_unknown_shape_keeps_duckdbs_message(good):
    with pytest.raises(SQLTemplateError, match=r"DuckDB rejected the query: .*Fix the SQL"):
        DuckDBWarehouse(good).query("SELECT nope FROM (SELECT 1 AS a) AS s")


def test_a_full_tmpfs_raises_the_cause_and_keeps_the_partition(tmp_path):
    """A real full disk (a 1 MB tmpfs, where this process may mount one): the cause, and the partition as it was."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); cases_guards.py injects it")
    try:
        wh = DuckDBWarehouse(mount / "w.duckdb")
        wh.execute(
            "CREATE TABLE t AS SELECT DATE '2026-01-01' AS d, 'u' || range AS user_id, random() AS v FROM range(5000)"
        )
        checksum = "SELECT COUNT(*) AS n, CAST(SUM(HASH(t)) AS DOUBLE) AS h FROM t"
        before = wh.query(checksum).to_pylist()
        (mount / "pad").write_bytes(b"x" * _free_bytes(mount, keep=16_000))
        with pytest.raises(WarehouseError, match=r"the disk is full \(.*No space left on device\)"):
            wh.replace_partition(
                "t", "d", dt.date(2026, 1, 1), "SELECT 'u' || range AS user_id, random() AS v FROM range(5000)"
            )
        (mount / "pad").unlink()
        assert wh.query(checksum).to_pylist() == before
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def _free_bytes(path: Path, keep: int) -> int:
    stat = os.statvfs(path)
    return max(0, stat.f_bavail * stat.f_frsize - keep)
