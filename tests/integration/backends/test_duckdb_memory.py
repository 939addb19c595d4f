"""The DuckDB read stream's memory limit (issue 15: flat memory at any candidate count)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.exceptions import WarehouseError


def _stream_setting(wh: DuckDBWarehouse) -> str:
    with wh.query_batches("SELECT current_setting('memory_limit') AS m") as batches:
        return pa.Table.from_batches(list(batches)).column("m")[0].as_py()


def test_streaming_reads_run_under_the_configured_memory_limit(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", stream_memory_limit="300MB")
    wh.replace_table("t", pa.table({"x": [1]}))
    assert _stream_setting(wh).startswith("286")  # DuckDB reports 300MB as 286.1 MiB
    # Other reads keep DuckDB's default (a short connection each; nothing to bound).
    assert wh.query("SELECT current_setting('memory_limit') AS m").column("m")[0].as_py() != _stream_setting(wh)


def test_by_default_the_limit_is_what_the_scan_pins_not_the_table(tmp_path):
    """1MB per column and DuckDB thread, at least 128MB: a fixed 512MB let the cache grow with the table."""
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.replace_table("t", pa.table({f"c{i}": [i] for i in range(100)}))
    with wh.connect(read_only=True) as con:
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])

    def limit(sql: str) -> str:
        with wh.query_batches(sql) as batches:
            return pa.Table.from_batches(list(batches)).column("m")[0].as_py()

    assert limit("SELECT current_setting('memory_limit') AS m") == "122.0 MiB"  # one column: the floor
    wide = ", ".join(f"c{i}" for i in range(99))
    expected = max(128, 100 * threads) * 10**6 / 2**20
    assert limit(f"SELECT current_setting('memory_limit') AS m, {wide} FROM t") == f"{expected:.1f} MiB"


def test_a_malformed_memory_limit_is_refused_before_it_reaches_sql(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", stream_memory_limit="1GB'; DROP TABLE t; --")
    with pytest.raises(WarehouseError, match="not a size such as '512MB'"), wh.query_batches("SELECT 1 AS x") as b:
        list(b)


def test_a_partition_written_from_arrow_reads_back_row_for_row(tmp_path):
    """The Arrow rows are inserted through a view over the registered table, not a temp copy."""
    import datetime as dt

    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    day = dt.date(2026, 4, 1)
    rows = pa.table({"user_id": ["a", "b", "c"], "score": [0.5, 0.25, 0.125]})
    assert wh.replace_partition("recs", "d", day, rows).rows == 3
    assert wh.replace_partition("recs", "d", day, rows.slice(0, 2)).rows == 2  # replaced, not appended
    got = wh.query("SELECT d, user_id, score FROM recs ORDER BY user_id")
    assert got.to_pylist() == [{"d": day, "user_id": "a", "score": 0.5}, {"d": day, "user_id": "b", "score": 0.25}]
    with wh.connect(read_only=True) as con:  # nothing staged survives the connection
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = '__aml_stage'").fetchone() == (0,)


def test_the_limit_comes_from_the_connection_extras(tmp_path):
    from pydantic import ValidationError

    from airflow_ml_provider.backends import get_warehouse
    from airflow_ml_provider.core.contract.config import PlatformConfig

    extras = {"warehouse_path": str(tmp_path / "w.duckdb"), "duckdb_stream_memory_limit": "1GiB"}
    wh = get_warehouse(PlatformConfig(**extras))
    assert isinstance(wh, DuckDBWarehouse) and wh.stream_memory_limit == "1GiB"
    with pytest.raises(ValidationError, match="duckdb_stream_memory_limit"):
        PlatformConfig(**{**extras, "duckdb_stream_memory_limit": "lots"})
