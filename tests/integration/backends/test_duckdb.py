"""DuckDBWarehouse on real DuckDB files: atomic, idempotent partition writes, locking, types and time zones."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.warehouse.interface import WriteResult
from airflow_ml_provider.exceptions import (
    EmptyResultError,
    IdentifierError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    WarehouseLockedError,
)

pytestmark = pytest.mark.integration

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
DAILY_SQL = (
    "SELECT user_id, COUNT(*) AS events, COUNTIF(event_type = 'purchase') AS purchases "
    "FROM events WHERE DATE(event_ts) = @as_of GROUP BY user_id"
)
SERIES_SQL = "SELECT x AS v, @tag AS tag FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x"


# --- helpers ------------------------------------------------------------------------------


def raw_query(wh: DuckDBWarehouse, sql: str, params: dict | None = None) -> list[tuple]:
    """Read the file with plain DuckDB (no transpiler, no lock): what is really stored."""
    con = duckdb.connect(str(wh.path), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def checksum(wh: DuckDBWarehouse, table: str, partition: dt.date | None = None) -> tuple[int, int | None]:
    """Row count and an order-independent hash of every row (of one partition, if given)."""
    where = "WHERE as_of_date = $p" if partition else ""
    return raw_query(
        wh, f"SELECT count(*), sum(hash(t)) FROM {table} AS t {where}", {"p": partition} if partition else None
    )[0]


def daily_expected(world, day: dt.date) -> dict[str, tuple[int, int]]:
    """DAILY_SQL computed in Python from the Arrow events: user -> (events, purchases)."""
    events, purchases = Counter(), Counter()
    for ts, user, kind in zip(
        world.events["event_ts"].to_pylist(),
        world.events["user_id"].to_pylist(),
        world.events["event_type"].to_pylist(),
        strict=True,
    ):
        if ts.astimezone(dt.UTC).date() == day:
            events[user] += 1
            purchases[user] += kind == "purchase"
    return {u: (events[u], purchases[u]) for u in events}


def run_child(script: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"child did not reach {path.name} within {timeout}s")
        time.sleep(0.02)


@contextlib.contextmanager
def killed_at_exit(proc: subprocess.Popen):
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


class _Interceptor:
    """Wraps a DuckDB connection; runs ``hook(sql)`` before each statement."""

    def __init__(self, con, hook):
        self._con, self._hook = con, hook

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        self._hook(sql)
        return self._con.execute(sql, *args, **kwargs)


# --- partition writes --------------------------------------------------------------------------


def test_replace_partition_from_sql(seeded_warehouse, demo_world):
    wh = seeded_warehouse
    result = wh.replace_partition(
        "user_daily",
        "as_of_date",
        D1,
        DAILY_SQL,
        {"as_of": D1, "unused": 1},
        sql_source="sql/x.sql",
        cluster_by=("user_id",),
    )
    expected = daily_expected(demo_world, D1)
    assert result == WriteResult(table="user_daily", partition="2026-03-01", rows=len(expected))
    assert result.as_dict() == {
        "table": "user_daily",
        "partition": "2026-03-01",
        "rows": len(expected),
        "bytes_processed": None,
    }
    assert wh.table_columns("user_daily") == {
        "as_of_date": "DATE",
        "user_id": "VARCHAR",
        "events": "BIGINT",
        "purchases": "BIGINT",
    }
    rows = raw_query(wh, "SELECT as_of_date, user_id, events, purchases FROM user_daily")
    assert {r[1]: (r[2], r[3]) for r in rows} == expected
    assert {r[0] for r in rows} == {D1}


def test_replace_partition_from_arrow(warehouse):
    data = pa.table({"user_id": ["u1", "u2", "u3"], "score": [0.5, 0.25, 1.0]})
    result = warehouse.replace_partition("scores", "as_of_date", D1, data)
    assert result.rows == 3
    assert raw_query(warehouse, "SELECT * FROM scores ORDER BY user_id") == [
        (D1, "u1", 0.5),
        (D1, "u2", 0.25),
        (D1, "u3", 1.0),
    ]
    # Rows that already carry the (right) partition column are written as they are.
    with_col = pa.table({"as_of_date": pa.array([D2, D2], pa.date32()), "user_id": ["u9", "u8"], "score": [2.0, 3.0]})
    assert warehouse.replace_partition("scores", "as_of_date", D2, with_col).rows == 2
    assert raw_query(warehouse, "SELECT as_of_date, count(*) FROM scores GROUP BY 1 ORDER BY 1") == [(D1, 3), (D2, 2)]


def test_arrow_rows_for_another_partition_are_rejected(warehouse):
    warehouse.replace_partition("scores", "as_of_date", D1, pa.table({"user_id": ["u1"], "score": [1.0]}))
    before = checksum(warehouse, "scores")
    wrong = pa.table({"as_of_date": pa.array([D2, D3], pa.date32()), "user_id": ["a", "b"], "score": [1.0, 2.0]})
    with pytest.raises(SchemaMismatchError) as info:
        warehouse.replace_partition("scores", "as_of_date", D2, wrong, sql_source="upload")
    assert "2026-03-03" in str(info.value) and str(info.value).startswith("upload:")
    assert checksum(warehouse, "scores") == before


def test_rerunning_a_write_leaves_identical_rows(seeded_warehouse):
    wh = seeded_warehouse
    wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    first = checksum(wh, "user_daily")
    assert first[0] > 0
    for _ in range(2):
        wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
        assert checksum(wh, "user_daily") == first


def test_replacing_a_partition_leaves_other_partitions_untouched(seeded_warehouse):
    wh = seeded_warehouse
    for day in (D1, D2, D3):
        wh.replace_partition("user_daily", "as_of_date", day, DAILY_SQL, {"as_of": day})
    d1, d3 = checksum(wh, "user_daily", D1), checksum(wh, "user_daily", D3)
    old_d2 = checksum(wh, "user_daily", D2)
    # Rewrite D2 with D3's rows: D2 changes, D1 and D3 do not.
    wh.replace_partition("user_daily", "as_of_date", D2, DAILY_SQL, {"as_of": D3})
    assert checksum(wh, "user_daily", D1) == d1
    assert checksum(wh, "user_daily", D3) == d3
    new_d2 = checksum(wh, "user_daily", D2)
    assert new_d2 != old_d2 and new_d2[0] == d3[0]
    assert checksum(wh, "user_daily")[0] == d1[0] + d3[0] + new_d2[0]


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        (
            "SELECT user_id, COUNT(*) AS events FROM events WHERE DATE(event_ts) = @as_of GROUP BY user_id",
            "purchases: table has BIGINT, rows have no such column",
        ),
        (
            "SELECT user_id, COUNT(*) AS events, COUNTIF(event_type = 'purchase') AS purchases, 'x' AS extra "
            "FROM events WHERE DATE(event_ts) = @as_of GROUP BY user_id",
            "extra: table has no such column, rows have VARCHAR",
        ),
        (
            "SELECT user_id, CAST(COUNT(*) AS STRING) AS events, COUNTIF(event_type = 'purchase') AS purchases "
            "FROM events WHERE DATE(event_ts) = @as_of GROUP BY user_id",
            "events: table has BIGINT, rows have VARCHAR",
        ),
    ],
    ids=["missing-column", "extra-column", "changed-type"],
)
def test_schema_mismatch_raises_and_changes_nothing(seeded_warehouse, sql, fragment):
    wh = seeded_warehouse
    wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    wh.replace_partition("user_daily", "as_of_date", D2, DAILY_SQL, {"as_of": D2})
    before = checksum(wh, "user_daily")
    with pytest.raises(SchemaMismatchError) as info:
        wh.replace_partition("user_daily", "as_of_date", D2, sql, {"as_of": D2}, sql_source="sql/recsys/daily.sql")
    msg = str(info.value)
    assert msg.startswith("sql/recsys/daily.sql:") and "main.user_daily" in msg
    assert fragment in msg
    assert checksum(wh, "user_daily") == before


def test_empty_result_raises_and_keeps_the_old_partition(seeded_warehouse):
    wh = seeded_warehouse
    wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    before = checksum(wh, "user_daily")
    future = dt.date(2030, 1, 1)
    with pytest.raises(EmptyResultError) as info:
        wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": future}, sql_source="sql/d.sql")
    msg = str(info.value)
    assert msg.startswith("sql/d.sql:") and "user_daily" in msg and "as_of_date=2026-03-01" in msg
    assert checksum(wh, "user_daily") == before


def test_allow_empty_writes_an_empty_partition(seeded_warehouse):
    wh = seeded_warehouse
    wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    wh.replace_partition("user_daily", "as_of_date", D2, DAILY_SQL, {"as_of": D2})
    d2 = checksum(wh, "user_daily", D2)
    result = wh.replace_partition(
        "user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": dt.date(2030, 1, 1)}, allow_empty=True
    )
    assert result.rows == 0
    assert checksum(wh, "user_daily", D1) == (0, None)
    assert checksum(wh, "user_daily", D2) == d2


def test_allow_empty_creates_the_table_on_first_write(warehouse):
    empty = pa.table({"user_id": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    with pytest.raises(EmptyResultError):
        warehouse.replace_partition("t", "as_of_date", D1, empty)
    assert not warehouse.table_exists("t")
    assert warehouse.replace_partition("t", "as_of_date", D1, empty, allow_empty=True).rows == 0
    assert warehouse.table_columns("t") == {"as_of_date": "DATE", "user_id": "VARCHAR", "n": "BIGINT"}


def test_runtime_error_in_the_query_leaves_the_old_partition(seeded_warehouse):
    wh = seeded_warehouse
    wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    before = checksum(wh, "user_daily")
    # Parses and binds; fails only when the row with user_id 'x' is reached.
    bad = (
        "SELECT user_id, CAST(IF(n = 3, 'x', CAST(n AS STRING)) AS INT64) AS events, 0 AS purchases "
        "FROM (SELECT user_id, ROW_NUMBER() OVER (ORDER BY user_id) AS n FROM events WHERE DATE(event_ts) = @as_of)"
    )
    with pytest.raises(SQLTemplateError, match=r"^sql/bad\.sql: DuckDB rejected the query"):
        wh.replace_partition("user_daily", "as_of_date", D1, bad, {"as_of": D1}, sql_source="sql/bad.sql")
    assert checksum(wh, "user_daily") == before


@pytest.mark.parametrize("failing", ["DELETE FROM", "INSERT INTO", "COMMIT"])
def test_failure_inside_the_transaction_leaves_the_old_partition(seeded_warehouse, monkeypatch, failing):
    wh = seeded_warehouse
    wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    wh.replace_partition("user_daily", "as_of_date", D2, DAILY_SQL, {"as_of": D2})
    before = checksum(wh, "user_daily")
    seen: list[str] = []

    def hook(sql: str) -> None:
        seen.append(sql.split()[0])
        if sql.startswith(failing):
            raise RuntimeError(f"simulated failure at {failing}")

    real_open = DuckDBWarehouse._open
    monkeypatch.setattr(DuckDBWarehouse, "_open", lambda self, *a: _Interceptor(real_open(self, *a), hook))
    with pytest.raises(RuntimeError, match="simulated failure"):
        wh.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D3})
    assert "BEGIN" in seen and seen[-1] == "ROLLBACK"
    monkeypatch.undo()
    assert checksum(wh, "user_daily") == before
    assert "__aml_stage" not in wh.list_tables()


_STALL_CHILD = """
    import datetime as dt, pathlib, sys, time
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    path, marker, stall_before = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]

    class Stalling:
        def __init__(self, con):
            self._con = con
        def __getattr__(self, name):
            return getattr(self._con, name)
        def execute(self, sql, *args, **kwargs):
            if sql.startswith(stall_before):
                marker.write_text("inside the transaction")
                time.sleep(120)
            return self._con.execute(sql, *args, **kwargs)

    real_open = DuckDBWarehouse._open
    DuckDBWarehouse._open = lambda self, *a: Stalling(real_open(self, *a))
    wh = DuckDBWarehouse(path, lock_timeout=30)
    wh.replace_partition("big", "as_of_date", dt.date(2026, 3, 2),
                         "SELECT x AS v, @tag AS tag FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x",
                         {"tag": "new", "n": 400000})
    print("finished")
"""


@pytest.mark.parametrize("stall_before", ["INSERT INTO", "COMMIT"])
def test_sigkill_mid_write_leaves_the_previous_partition(warehouse, tmp_path, stall_before):
    wh = warehouse
    wh.replace_partition("big", "as_of_date", D1, SERIES_SQL, {"tag": "keep", "n": 1000})
    wh.replace_partition("big", "as_of_date", D2, SERIES_SQL, {"tag": "old", "n": 300000})
    before = {D1: checksum(wh, "big", D1), D2: checksum(wh, "big", D2)}
    marker = tmp_path / "in-transaction"
    with killed_at_exit(run_child(_STALL_CHILD, str(wh.path), str(marker), stall_before)) as child:
        wait_for(marker, child)
        time.sleep(0.2)  # let the DELETE (and INSERT) land in DuckDB's buffers
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    # The file opens, and the killed transaction left no trace.
    assert {D1: checksum(wh, "big", D1), D2: checksum(wh, "big", D2)} == before
    assert raw_query(wh, "SELECT DISTINCT tag FROM big WHERE as_of_date = $p", {"p": D2}) == [("old",)]
    assert wh.query("SELECT COUNT(*) AS n FROM big").to_pylist() == [{"n": 301000}]
    # The lock died with the child: the next write goes through at once.
    quick = DuckDBWarehouse(wh.path, lock_timeout=5)
    assert quick.replace_partition("big", "as_of_date", D2, SERIES_SQL, {"tag": "after", "n": 10}).rows == 10
    assert checksum(wh, "big", D1) == before[D1]


# --- locking and concurrency -----------------------------------------------------------------------

_FILELOCK_HOLDER = """
    import pathlib, sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1] + ".lock")
    lock.acquire()
    pathlib.Path(sys.argv[2]).write_text("locked")
    time.sleep(120)
"""

_DUCKDB_HOLDER = """
    import pathlib, sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1])
    pathlib.Path(sys.argv[2]).write_text("open")
    time.sleep(120)
"""


@pytest.mark.parametrize("holder", [_FILELOCK_HOLDER, _DUCKDB_HOLDER], ids=["filelock", "duckdb-shell"])
def test_a_held_lock_raises_a_retryable_error_within_the_timeout(warehouse, tmp_path, holder):
    warehouse.replace_table("t", pa.table({"a": [1, 2]}))
    marker = tmp_path / "held"
    impatient = DuckDBWarehouse(warehouse.path, lock_timeout=1)
    with killed_at_exit(run_child(holder, str(warehouse.path), str(marker))) as child:
        wait_for(marker, child)
        for operation in (
            lambda: impatient.replace_partition("p", "as_of_date", D1, "SELECT 1 AS x"),
            lambda: impatient.query("SELECT * FROM t"),
        ):
            started = time.monotonic()
            with pytest.raises(WarehouseLockedError) as info:
                operation()
            elapsed = time.monotonic() - started
            assert 0.5 <= elapsed < 6, elapsed  # it waited (about) the bound, and not much longer
            assert info.value.retryable is True
            msg = str(info.value)
            assert str(warehouse.path) in msg and "lock_timeout_seconds" in msg and "1s" in msg
    # Once the holder is gone the warehouse works and nothing changed.
    assert warehouse.query("SELECT SUM(a) AS s FROM t").to_pylist() == [{"s": 3}]
    assert not warehouse.table_exists("p")


_WRITER = """
    import datetime as dt, json, pathlib, sys, time
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    path, ready, go, day, tag = sys.argv[1:]
    wh = DuckDBWarehouse(path, lock_timeout=60)
    pathlib.Path(ready).write_text("ready")
    while not pathlib.Path(go).exists():
        time.sleep(0.005)
    started = time.monotonic()
    result = wh.replace_partition("big", "as_of_date", dt.date.fromisoformat(day),
                                  "SELECT x AS v, @tag AS tag FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x",
                                  {"tag": tag, "n": 300000})
    print(json.dumps({**result.as_dict(), "started": started, "ended": time.monotonic()}))
"""


def test_concurrent_writers_of_different_partitions_both_succeed(warehouse, tmp_path):
    warehouse.replace_partition("big", "as_of_date", D3, SERIES_SQL, {"tag": "existing", "n": 5})
    go = tmp_path / "go"
    jobs = [(D1, "first"), (D2, "second")]
    children = [
        run_child(_WRITER, str(warehouse.path), str(tmp_path / f"ready-{tag}"), str(go), day.isoformat(), tag)
        for day, tag in jobs
    ]
    try:
        for child, (_, tag) in zip(children, jobs, strict=True):
            wait_for(tmp_path / f"ready-{tag}", child)
        go.write_text("go")
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert json.loads(out)["rows"] == 300000
    assert raw_query(warehouse, "SELECT as_of_date, tag, count(*), sum(v) FROM big GROUP BY 1, 2 ORDER BY 1") == [
        (D1, "first", 300000, 300000 * 300001 // 2),
        (D2, "second", 300000, 300000 * 300001 // 2),
        (D3, "existing", 5, 15),
    ]


# --- reads ---------------------------------------------------------------------------------------


def test_reads_on_a_missing_warehouse_do_not_create_it(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "none" / "warehouse.duckdb", lock_timeout=5)
    assert wh.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]
    assert wh.table_exists("events") is False
    assert wh.list_tables() == []
    with pytest.raises(TableNotFoundError):
        wh.table_columns("events")
    with pytest.raises(TableNotFoundError):
        wh.query("SELECT * FROM events", source="sql/q.sql")
    assert not wh.path.exists()


def test_missing_table_errors_name_the_source_and_the_table(seeded_warehouse):
    wh = seeded_warehouse
    with pytest.raises(TableNotFoundError) as info:
        wh.query("SELECT * FROM evnets", source="sql/recsys/typo.sql")
    assert str(info.value).startswith("sql/recsys/typo.sql:") and "evnets" in str(info.value)
    with pytest.raises(TableNotFoundError) as info:
        wh.replace_partition("out", "as_of_date", D1, "SELECT * FROM nope", sql_source="sql/recsys/out.sql")
    assert str(info.value).startswith("sql/recsys/out.sql:") and "nope" in str(info.value)
    assert not wh.table_exists("out")
    with pytest.raises(TableNotFoundError) as info:
        wh.table_columns("nope")
    assert "main.nope" in str(info.value) and str(wh.path) in str(info.value)


def test_table_listing_and_columns(seeded_warehouse):
    wh = seeded_warehouse
    assert wh.list_tables() == ["events", "items", "users"]
    assert wh.table_exists("events") and not wh.table_exists("evnets")
    assert wh.table_columns("events") == {
        "event_ts": "TIMESTAMP WITH TIME ZONE",
        "user_id": "VARCHAR",
        "item_id": "VARCHAR",
        "event_type": "VARCHAR",
    }
    with pytest.raises(IdentifierError):
        wh.table_exists("events; DROP TABLE events")


def test_query_returns_arrow_and_binds_params(seeded_warehouse, demo_world):
    out = seeded_warehouse.query(
        "SELECT COUNT(*) AS n FROM events WHERE event_type = @kind AND DATE(event_ts) <= @as_of",
        {"kind": "purchase", "as_of": demo_world.events["event_ts"][-1].as_py().date(), "extra": 1},
    )
    expected = demo_world.events["event_type"].to_pylist().count("purchase")
    assert out.to_pylist() == [{"n": expected}]
    df = seeded_warehouse.query_df("SELECT COUNT(DISTINCT user_id) AS u FROM users")
    assert df["u"].tolist() == [300]


def test_quote_laden_parameters_round_trip(seeded_warehouse):
    nasty = "O'Brien'; DROP TABLE events; --"
    assert seeded_warehouse.query("SELECT @who AS who", {"who": nasty}).to_pylist() == [{"who": nasty}]
    seeded_warehouse.replace_partition("names", "as_of_date", D1, "SELECT @who AS who", {"who": nasty})
    assert raw_query(seeded_warehouse, "SELECT who FROM names") == [(nasty,)]
    assert seeded_warehouse.table_exists("events")


def test_missing_query_param_is_named_before_touching_the_table(seeded_warehouse):
    with pytest.raises(SQLTemplateError, match="@as_of"):
        seeded_warehouse.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {}, sql_source="sql/d.sql")
    assert not seeded_warehouse.table_exists("user_daily")


@pytest.mark.parametrize(
    "kwargs",
    [{"table": "t; DROP TABLE events"}, {"partition_column": "d`"}, {"cluster_by": ("user_id", "x y")}],
)
def test_write_identifiers_are_validated(seeded_warehouse, kwargs):
    args = {"table": "t", "partition_column": "as_of_date", "partition": D1, "source": "SELECT 1 AS x", **kwargs}
    with pytest.raises(IdentifierError):
        seeded_warehouse.replace_partition(**args)
    assert seeded_warehouse.list_tables() == ["events", "items", "users"]


# --- types ----------------------------------------------------------------------------------------


def test_hugeint_aggregates_come_back_as_int64(seeded_warehouse, demo_world):
    # The reason for the cast: DuckDB's SUM over BIGINT is a 128-bit integer.
    assert duckdb.connect().execute("SELECT typeof(SUM(x)) FROM (SELECT 1::BIGINT AS x)").fetchone() == ("HUGEINT",)
    out = seeded_warehouse.query(
        "SELECT SUM(IF(event_type = 'view', 1, 0)) AS views, COUNTIF(event_type = 'purchase') AS purchases, "
        "COUNT(*) AS n FROM events"
    )
    assert out.schema == pa.schema([("views", pa.int64()), ("purchases", pa.int64()), ("n", pa.int64())])
    kinds = Counter(demo_world.events["event_type"].to_pylist())
    assert out.to_pylist() == [
        {"views": kinds["view"], "purchases": kinds["purchase"], "n": demo_world.events.num_rows}
    ]


def test_hugeint_aggregates_are_written_as_bigint(seeded_warehouse):
    sql = (
        "SELECT user_id, SUM(IF(event_type = 'view', 1, 0)) AS views, COUNTIF(event_type = 'purchase') AS purchases "
        "FROM events WHERE DATE(event_ts) <= @as_of GROUP BY user_id"
    )
    seeded_warehouse.replace_partition("agg", "as_of_date", D1, sql, {"as_of": D1})
    assert seeded_warehouse.table_columns("agg") == {
        "as_of_date": "DATE",
        "user_id": "VARCHAR",
        "views": "BIGINT",
        "purchases": "BIGINT",
    }
    # A rerun for another day matches the stored schema (no HUGEINT/BIGINT mismatch).
    seeded_warehouse.replace_partition("agg", "as_of_date", D2, sql, {"as_of": D2})
    assert seeded_warehouse.query("SELECT COUNT(DISTINCT as_of_date) AS d FROM agg").to_pylist() == [{"d": 2}]


def test_nested_columns_can_be_rewritten(seeded_warehouse):
    sql = (
        "SELECT user_id, ARRAY_AGG(item_id ORDER BY event_ts DESC LIMIT 3) AS recent, "
        "STRUCT(COUNT(*) AS n, MAX(event_ts) AS last) AS stats "
        "FROM events WHERE DATE(event_ts) = @as_of GROUP BY user_id"
    )
    seeded_warehouse.replace_partition("recent", "as_of_date", D1, sql, {"as_of": D1})
    first = checksum(seeded_warehouse, "recent")
    seeded_warehouse.replace_partition("recent", "as_of_date", D1, sql, {"as_of": D1})
    assert checksum(seeded_warehouse, "recent") == first
    lengths = raw_query(seeded_warehouse, "SELECT max(len(recent)), min(len(recent)) FROM recent")[0]
    assert lengths[0] == 3 and lengths[1] >= 1


_TOKYO_CHILD = """
    import datetime as dt, json, sys
    import duckdb, pyarrow as pa
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    utc = dt.timezone.utc
    control = duckdb.connect().execute("SELECT CAST(TIMESTAMPTZ '2026-03-01 23:30:00+00' AS DATE)").fetchone()[0]
    wh = DuckDBWarehouse(sys.argv[1])
    wh.replace_table("events", pa.table({
        "event_ts": pa.array([dt.datetime(2026, 3, 1, 23, 30, tzinfo=utc), dt.datetime(2026, 3, 1, 15, 30, tzinfo=utc)],
                             pa.timestamp("us", tz="UTC")),
        "user_id": ["late", "afternoon"],
    }))
    days = wh.query("SELECT user_id, DATE(event_ts) AS d FROM events ORDER BY user_id").to_pylist()
    day = dt.date(2026, 3, 1)
    written = wh.replace_partition(
        "daily", "as_of_date", day, "SELECT user_id FROM events WHERE DATE(event_ts) = @as_of", {"as_of": day}
    )
    days = [[r["user_id"], str(r["d"])] for r in days]
    print(json.dumps({"control": str(control), "days": days, "rows": written.rows}))
"""


def test_date_of_a_timestamp_is_the_utc_day_whatever_the_host_zone(tmp_path):
    child = run_child(_TOKYO_CHILD, str(tmp_path / "wh.duckdb"), env={"TZ": "Asia/Tokyo"})
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    got = json.loads(out)
    assert got["control"] == "2026-03-02", "TZ did not reach DuckDB: the test would prove nothing"
    assert got["days"] == [["afternoon", "2026-03-01"], ["late", "2026-03-01"]]
    assert got["rows"] == 2


# --- DDL, schemas, whole tables ----------------------------------------------------------------------


def test_ensure_table_runs_bigquery_ddl_idempotently(warehouse):
    ddl = (
        "CREATE TABLE IF NOT EXISTS drift_results (as_of_date DATE, feature STRING, psi FLOAT64, n INT64) "
        "PARTITION BY as_of_date CLUSTER BY feature OPTIONS (description = 'drift')"
    )
    warehouse.ensure_table(ddl, source="sql/ddl/drift_results.sql")
    warehouse.replace_partition("drift_results", "as_of_date", D1, pa.table({"feature": ["f"], "psi": [0.1], "n": [5]}))
    warehouse.ensure_table(ddl, source="sql/ddl/drift_results.sql")  # a rerun keeps the data
    assert raw_query(warehouse, "SELECT * FROM drift_results") == [(D1, "f", 0.1, 5)]
    with pytest.raises(SQLTemplateError, match=r"^sql/ddl/x\.sql:"):
        warehouse.ensure_table("CREATE TABLE x (a INT64)", source="sql/ddl/x.sql")
    assert not warehouse.table_exists("x")


def test_replace_table_replaces_the_whole_table(warehouse):
    assert warehouse.replace_table("items", pa.table({"item_id": ["a", "b", "c"]})) == 3
    assert warehouse.replace_table("items", pa.table({"item_id": ["z"], "price": [1.5]})) == 1
    assert raw_query(warehouse, "SELECT * FROM items") == [("z", 1.5)]


def test_a_named_schema_keeps_its_tables_apart(tmp_path, demo_world):
    path = tmp_path / "wh.duckdb"
    recsys = DuckDBWarehouse(path, schema="recsys", lock_timeout=5)
    main = DuckDBWarehouse(path, lock_timeout=5)
    recsys.replace_table("events", demo_world.events)
    recsys.replace_partition("user_daily", "as_of_date", D1, DAILY_SQL, {"as_of": D1})
    main.replace_table("other", pa.table({"a": [1]}))
    assert recsys.list_tables() == ["events", "user_daily"]
    assert main.list_tables() == ["other"]
    assert raw_query(recsys, "SELECT count(*) > 0 FROM recsys.user_daily") == [(True,)]
    with pytest.raises(IdentifierError):
        DuckDBWarehouse(path, schema="recsys; DROP")
