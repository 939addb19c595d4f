"""``airflow-ml features`` and ``train --build-features`` run the contract's events checks: bad events change no table.

Both used to skip ``checks.events``: on a copy with duplicated events, or for a date past the
newest event, ``airflow-ml check`` failed while ``features`` exited 0 and replaced partitions.
Every date of a range is checked before the first write, so a bad day anywhere changes nothing.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from airflow_ml_provider.cli import main
from tests.paths import PIPELINE, SQL_DIR

pytestmark = pytest.mark.integration

NEWEST_EVENT = dt.date(2026, 3, 31)  # the demo world's last day (training_warehouse_file)


def fingerprint(path: Path) -> dict[str, tuple[int, int]]:
    """Every table's row count and an order-independent hash of its rows."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {
            t: con.execute(f"SELECT COUNT(*), COALESCE(SUM(HASH(t::VARCHAR)::HUGEINT), 0) FROM {t} AS t").fetchone()
            for t in tables
        }
    finally:
        con.close()


@pytest.fixture
def warehouse(training_warehouse_file, tmp_path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(training_warehouse_file, path)
    return path


def run(warehouse: Path, *args: str) -> int:
    return main([*args, "--warehouse", str(warehouse), "--pipeline", str(PIPELINE), "--sql-dir", str(SQL_DIR)])


@pytest.mark.parametrize(
    "dates",
    [
        ["--date", str(NEWEST_EVENT + dt.timedelta(days=10))],
        # The first dates are fine: the last one stops the whole range before anything is written.
        ["--date", str(NEWEST_EVENT - dt.timedelta(days=1)), "--to", str(NEWEST_EVENT + dt.timedelta(days=2))],
    ],
    ids=["ten-days-past-the-events", "a-range-ending-past-them"],
)
def test_features_past_the_newest_event_fail_naming_the_check_and_change_nothing(warehouse, dates, capsys):
    before = fingerprint(warehouse)
    assert run(warehouse, "features", *dates) == 1
    err = capsys.readouterr().err
    assert "freshness" in err and "nothing was written" in err
    assert fingerprint(warehouse) == before


def duplicate_events(warehouse: Path, before: dt.date) -> None:
    """Repeat 10% of the events before ``before`` exactly (same user, item and time)."""
    con = duckdb.connect(str(warehouse))
    con.execute(
        "INSERT INTO events SELECT * FROM events WHERE event_ts < ? USING SAMPLE 10 PERCENT (bernoulli, 7)",
        [dt.datetime.combine(before, dt.time())],
    )
    con.close()


def test_features_with_duplicated_events_fail_naming_the_check(warehouse, capsys):
    day = NEWEST_EVENT - dt.timedelta(days=3)
    duplicate_events(warehouse, day + dt.timedelta(days=1))
    before = fingerprint(warehouse)
    assert run(warehouse, "features", "--date", str(day)) == 1
    assert "duplicate_events" in capsys.readouterr().err
    assert fingerprint(warehouse) == before


def test_train_build_features_checks_every_date_before_writing(warehouse, capsys):
    duplicate_events(warehouse, NEWEST_EVENT)
    before = fingerprint(warehouse)
    assert run(warehouse, "train", "--build-features", "--date", str(NEWEST_EVENT)) == 1
    assert "duplicate_events" in capsys.readouterr().err
    assert fingerprint(warehouse) == before
