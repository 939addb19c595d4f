"""A date's feature steps are all-or-nothing: a failing later step leaves the earlier steps' partitions as they were."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.features.checks import DataCheckError
from airflow_ml_provider.exceptions import SQLTemplateError
from tests.integration.reliability.conftest import DAY, World, table_checksums
from tests.paths import SQL_DIR


def _fresh_events(w: World) -> None:
    """More events on DAY, a second apart, so every step WOULD write a different partition if it ran.

    A second apart: copies at one instant would repeat (user, item, time), which the contract's
    duplicate_events check refuses before any step runs.
    """
    later = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
    with DuckDBWarehouse(w.warehouse).connect() as con:
        con.execute(
            "INSERT INTO events SELECT * EXCLUDE (rn) REPLACE ($ts + TO_SECONDS(rn) AS event_ts) FROM "
            "(SELECT *, ROW_NUMBER() OVER (ORDER BY event_ts) AS rn FROM events ORDER BY event_ts LIMIT 400)",
            {"ts": later},
        )


def _sql_copy(w: World, broken: str, text: str) -> Path:
    folder = w.root / "sql_copy"
    import shutil

    shutil.copytree(SQL_DIR, folder)
    (folder / "recsys" / broken).write_text(text)
    return folder


def _step_tables(w: World) -> dict[str, tuple[int, int]]:
    return {t: v for t, v in table_checksums(w.warehouse).items() if t != "main.events"}


def test_sql_error_in_the_last_step_writes_no_step(case: World):
    sql_dir = _sql_copy(case, "features.sql", "SELECT user_id, item_id FROM {{ ref('candidates') }} WHER 1 = 1\n")
    _fresh_events(case)
    before = _step_tables(case)
    with pytest.raises(SQLTemplateError, match=r"features\.sql"):
        build_features(DuckDBWarehouse(case.warehouse), load_spec(case.pipeline), sql_dir, [DAY], preflight=True)
    assert _step_tables(case) == before


def test_error_check_in_the_last_step_writes_no_step(case: World):
    raw = yaml.safe_load(case.pipeline.read_text())
    raw["checks"]["tables"]["features"].append({"check": "range", "column": "candidate_rank", "max": 1})
    case.pipeline.write_text(yaml.safe_dump(raw, sort_keys=False))
    _fresh_events(case)
    before = _step_tables(case)
    with pytest.raises(DataCheckError, match=r"feature steps of 2026-03-31: .*\[range\(candidate_rank\)\]"):
        build_features(DuckDBWarehouse(case.warehouse), load_spec(case.pipeline), SQL_DIR, [DAY], preflight=True)
    assert _step_tables(case) == before


def test_the_check_sees_what_the_steps_then_write(case: World):
    """Control: without the fault the same build rewrites the steps' partitions (the test above can fail)."""
    _fresh_events(case)
    before = _step_tables(case)
    build_features(DuckDBWarehouse(case.warehouse), load_spec(case.pipeline), SQL_DIR, [DAY], preflight=True)
    after = _step_tables(case)
    changed = {t for t in before if before[t] != after[t]}
    assert {"main.user_features", "main.features"} <= changed


# --- kill -9 and a full disk: the date's steps commit together or not at all -------------------

STEP_TABLES = ("main.user_features", "main.item_features", "main.candidates", "main.features")


def _features_cli(w: World, warehouse: Path) -> list[str]:
    import sys

    cli = Path(sys.executable).parent / "airflow-ml"
    return [str(cli), "features", "--pipeline", str(w.pipeline), "--date", str(DAY), "--warehouse", str(warehouse)]


def _steps(path: Path) -> dict[str, tuple[int, int]]:
    sums = table_checksums(path)
    return {t: sums[t] for t in STEP_TABLES}


def test_kill_9_at_random_points_leaves_the_date_before_or_after(case: World, tmp_path: Path):
    """20 kills at random moments of `airflow-ml features`: each table is all old or all new, never a mix."""
    import random
    import shutil
    import signal
    import subprocess
    import time

    _fresh_events(case)
    before = _steps(case.warehouse)
    done = tmp_path / "done.duckdb"
    shutil.copy(case.warehouse, done)
    started = time.monotonic()
    subprocess.run(_features_cli(case, done), check=True, capture_output=True, timeout=300)
    duration = time.monotonic() - started
    after = _steps(done)
    assert all(after[t] != before[t] for t in ("main.user_features", "main.features")), "the control changed nothing"

    rng = random.Random(25)
    outcomes = []
    for attempt in range(20):
        target = tmp_path / f"kill{attempt}.duckdb"
        shutil.copy(case.warehouse, target)
        proc = subprocess.Popen(_features_cli(case, target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The interpreter's start-up is most of the run; aim the kills at the whole of it anyway.
        time.sleep(rng.uniform(0.3 * duration, 1.05 * duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        got = _steps(target)
        state = "before" if got == before else "after" if got == after else "mixed"
        assert state != "mixed", (attempt, {t: (before[t], got[t], after[t]) for t in STEP_TABLES})
        outcomes.append(state)
    assert len(outcomes) == 20


def _tmpfs(size_kb: int, folder: Path) -> bool:
    """Mount a tmpfs of ``size_kb`` at ``folder`` (root, or a user namespace); False when neither works."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0  # fmt: skip


def test_a_full_disk_leaves_the_date_as_it_was_and_says_so(case: World, tmp_path: Path):
    """The warehouse on a small tmpfs: with too little room the run fails naming the full disk, and no table moved."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and this project's dev container run as root)")
    _fresh_events(case)
    before = _steps(case.warehouse)
    size_kb = case.warehouse.stat().st_size // 1024
    results = []
    for spare_kb in (256, 1024, 4096):  # from failing at once to failing late, or not at all
        mount = tmp_path / f"disk{spare_kb}"
        if not _tmpfs(size_kb + spare_kb, mount):
            pytest.skip("could not mount a tmpfs here")
        try:
            target = mount / "warehouse.duckdb"
            shutil.copy(case.warehouse, target)
            run = subprocess.run(_features_cli(case, target), capture_output=True, text=True, timeout=300)
            copy = tmp_path / f"after{spare_kb}.duckdb"
            shutil.copy(target, copy)
            wal = target.with_name(target.name + ".wal")
            if wal.exists():
                shutil.copy(wal, copy.with_name(copy.name + ".wal"))
        finally:
            subprocess.run(["umount", str(mount)], check=False)
        got = _steps(copy)
        results.append((spare_kb, run.returncode, got == before))
        if run.returncode != 0:
            assert "No space left on device" in run.stderr or "disk" in run.stderr.lower(), run.stderr[-2000:]
            assert "Traceback" not in run.stderr, run.stderr[-2000:]
            assert got == before, {t: (before[t], got[t]) for t in STEP_TABLES}
        else:
            assert all(got[t] != before[t] for t in ("main.user_features", "main.features"))
    assert any(code != 0 for _, code, _ in results), f"no size was small enough to fill the disk: {results}"
