"""``duckdb_memory_limit``: every warehouse connection runs under it, a streaming read does not leak its own.

At a million users the candidates step held 16 GB under DuckDB's default limit (80% of RAM); with
the limit set, DuckDB spills joins, aggregates and sorts beside the file instead (bench/scale.py,
bench/README.md). Real DuckDB, small data: the bench measures the large case.
"""

from __future__ import annotations

import pydantic
import pytest

from airflow_ml_provider.backends import get_warehouse
from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.exceptions import WarehouseError

SETTING = "SELECT current_setting('memory_limit') AS limit_"


def _limit(wh: DuckDBWarehouse) -> str:
    return wh.query(SETTING).to_pylist()[0]["limit_"]


def test_every_connection_runs_under_the_configured_limit(tmp_path):
    wh = get_warehouse(PlatformConfig(warehouse_path=str(tmp_path / "w.duckdb"), duckdb_memory_limit="300MB"))
    wh.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert _limit(wh) == "286.1 MiB"  # DuckDB reports 300 MB in MiB
    with wh.transaction():
        wh.execute("INSERT INTO t VALUES (2)")
        assert _limit(wh) == "286.1 MiB"


def test_without_the_extra_duckdb_keeps_its_own_default(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert _limit(wh) != "286.1 MiB"


def test_a_streaming_read_inside_a_transaction_gives_the_connection_its_limit_back(tmp_path):
    # query_batches lowers the limit to what its scan pins; on the transaction's shared connection
    # the block's later statements (the next feature step of the date) must get the full limit back.
    wh = DuckDBWarehouse(tmp_path / "w.duckdb", memory_limit="300MB", stream_memory_limit="128MB")
    wh.execute("CREATE TABLE t AS SELECT * FROM range(1000) AS r(x)")
    with wh.transaction():
        with wh.query_batches("SELECT x FROM t", batch_rows=100) as batches:
            assert sum(b.num_rows for b in batches) == 1000
            assert _limit(wh) == "122.0 MiB"
        assert _limit(wh) == "286.1 MiB"


def test_a_limit_that_is_no_size_is_refused_before_any_connection(tmp_path):
    with pytest.raises(pydantic.ValidationError, match="duckdb_memory_limit"):
        PlatformConfig(duckdb_memory_limit="80%")
    with pytest.raises(WarehouseError, match="is not a size such as"):
        DuckDBWarehouse(tmp_path / "w.duckdb", memory_limit="6GB; DROP TABLE t")
    assert not (tmp_path / "w.duckdb").exists()
