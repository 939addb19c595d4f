"""Query results as rows: the same values as pyarrow's to_pylist, without importing pandas."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import duckdb

from airflow_ml_provider.core.warehouse.rows import to_rows


def test_zoned_timestamps_are_the_same_instants_as_to_pylist():
    con = duckdb.connect()
    table = con.sql(
        "SELECT 'a' AS v, TIMESTAMPTZ '2026-03-31 12:34:56.789+00' AS at, NULL::TIMESTAMPTZ AS never, "
        "TIMESTAMP '2026-01-01 00:00:00' AS naive"
    ).to_arrow_table()
    got, want = to_rows(table), table.to_pylist()
    assert got == want
    assert got[0]["at"].utcoffset() == dt.timedelta(0)
    assert got[0]["never"] is None and got[0]["naive"].tzinfo is None


def test_other_zones_keep_their_zone():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Europe/Paris'")
    table = con.sql("SELECT TIMESTAMPTZ '2026-03-31 12:00:00+00' AS at").to_arrow_table()
    (row,) = to_rows(table)
    assert row["at"] == dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)
    assert row["at"].tzinfo == ZoneInfo("Europe/Paris")


def test_reading_rows_does_not_import_pandas():
    """pyarrow's to_pylist imports pandas (about 0.25 s) for any zoned timestamp: CLI reads must not pay it."""
    script = (
        "import sys, duckdb\n"
        "from airflow_ml_provider.core.warehouse.rows import to_rows\n"
        "to_rows(duckdb.connect().sql(\"SELECT TIMESTAMPTZ '2026-03-31 00:00:00+00' AS at\").to_arrow_table())\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
