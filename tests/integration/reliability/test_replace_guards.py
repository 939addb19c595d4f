"""The guards against replacing good partitions with worse refuse only what they should, and yield to a force.

The refusals themselves (wording, nothing changed) are cases of the bad-input table
(cases_sources.py); these are the controls that make those cases able to fail.
"""

from __future__ import annotations

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from tests.integration.reliability.bad_input import CLIFailed, cli, sql
from tests.integration.reliability.conftest import DAY, World, table_checksums
from tests.paths import SQL_DIR

STEPS = ("main.user_features", "main.item_features", "main.candidates", "main.features")


def _features(w: World, *extra: str) -> None:
    cli(w, "features", "--pipeline", str(w.pipeline), "--date", str(DAY), "--sql-dir", str(SQL_DIR), *extra)


def _steps(w: World) -> dict[str, tuple[int, int]]:
    sums = table_checksums(w.warehouse)
    return {t: sums[t] for t in STEPS}


def test_a_pruned_history_is_refused_then_forced(case: World):
    sql("DELETE FROM events WHERE event_ts < TIMESTAMP '2026-03-20 00:00:00+00'")(case)
    before = _steps(case)
    with pytest.raises(CLIFailed, match=r"\[history\]"):
        _features(case)
    assert _steps(case) == before
    _features(case, "--force-replace")
    after = _steps(case)
    assert after["main.user_features"] != before["main.user_features"]


def test_a_date_without_partitions_builds_from_a_partial_history(case: World):
    """The first weeks of data: the history starts inside the lookback, and nothing is there to replace."""
    statements = [f"DELETE FROM {t.split('.')[1]} WHERE as_of_date = DATE '{DAY}'" for t in STEPS]
    sql(*statements, "DELETE FROM events WHERE event_ts < TIMESTAMP '2026-03-20 00:00:00+00'")(case)
    _features(case)
    rows = (
        DuckDBWarehouse(case.warehouse)
        .query("SELECT COUNT(*) AS n FROM features WHERE as_of_date = @d", {"d": DAY})
        .to_pylist()
    )
    assert rows[0]["n"] > 0


def test_far_fewer_users_is_refused_then_forced(case: World):
    sql("DELETE FROM events WHERE hash(user_id) % 10 < 7")(case)
    before = _steps(case)
    with pytest.raises(CLIFailed, match=r"\[partition_shrink\] user_features"):
        _features(case)
    assert _steps(case) == before
    _features(case, "--force-replace")
    users = (
        DuckDBWarehouse(case.warehouse)
        .query("SELECT COUNT(DISTINCT user_id) AS n FROM candidates WHERE as_of_date = @d", {"d": DAY})
        .to_pylist()[0]["n"]
    )
    assert _steps(case)["main.candidates"] != before["main.candidates"] and users > 0


def test_a_small_drop_in_users_is_not_refused(case: World):
    """Control for the shrink guard: losing a tenth of the users is a real change, not a degenerate one."""
    sql("DELETE FROM events WHERE hash(user_id) % 10 = 0")(case)
    before = _steps(case)
    _features(case)
    assert _steps(case)["main.user_features"] != before["main.user_features"]
