"""DuckDBWarehouse.transaction(): a date's writes commit together, and later writes read the earlier ones.

The second test pins a DuckDB 2.0.0 behaviour the transaction must work around: rows inserted
into a table created by CTAS in the same transaction cannot be read back on that connection
once they pass one row group (122,880 rows). A fresh warehouse's first date hits it: the
features step read an empty candidates table at 10k users.
"""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

DAY = dt.date(2026, 3, 31)
BIG = 200_000  # more than one DuckDB row group (122,880 rows)


def _first(wh: DuckDBWarehouse, rows: int) -> None:
    wh.replace_partition(
        "first",
        "as_of_date",
        DAY,
        "SELECT x AS id, CONCAT('u', CAST(x AS STRING)) AS user_id FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x",
        {"n": rows},
    )


def _second(wh: DuckDBWarehouse) -> None:
    wh.replace_partition(
        "second", "as_of_date", DAY, "SELECT user_id, id * 2 AS twice FROM first WHERE as_of_date = @d", {"d": DAY}
    )


@pytest.mark.parametrize("rows", [1_000, BIG])
def test_a_later_write_reads_an_earlier_one_of_the_same_transaction_on_a_fresh_warehouse(tmp_path, rows):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    with wh.transaction():
        _first(wh, rows)
        _second(wh)
        inside = wh.query("SELECT COUNT(*) AS n, MIN(user_id) AS lo FROM second").to_pylist()[0]
    assert inside == {"n": rows, "lo": "u1"}
    assert wh.query("SELECT COUNT(*) AS n FROM second").to_pylist()[0]["n"] == rows


def test_an_error_in_the_block_leaves_every_table_as_it_was(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    with wh.transaction():
        _first(wh, 10)
    with pytest.raises(RuntimeError, match="boom"), wh.transaction():
        _first(wh, BIG)
        raise RuntimeError("boom")
    assert wh.query("SELECT COUNT(*) AS n FROM first").to_pylist()[0]["n"] == 10
    assert not wh.table_exists("second")
