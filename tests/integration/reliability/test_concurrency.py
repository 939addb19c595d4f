"""Tasks writing the local warehouse at the same time, in real OS processes: serialised, or a clear retryable error.

DuckDB allows one writing process per file; the provider serialises its own processes with
a file lock. Here real operators run in separate processes released together behind a
barrier (ready files, then one "go" file), as parallel Airflow workers would run them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from tests.integration.reliability.conftest import DAY, World, table_checksums
from tests.paths import SQL_DIR

pytestmark = pytest.mark.integration

#: A partition the world built for validation, next to DAY's.
EARLIER = DAY - dt.timedelta(days=7)

_TASK = """
    import json, pathlib, sys, time, types
    from airflow.sdk import DAG
    from airflow_ml_provider.exceptions import MLProviderError
    from airflow_ml_provider.operators.drift import DriftCheckOperator
    from airflow_ml_provider.operators.features import FeatureExtractOperator

    kind, pipeline, day, ready, go, sql_dir, max_tries = sys.argv[1:8]
    retry_gate = pathlib.Path(sys.argv[8]) if len(sys.argv) > 8 else None
    with DAG("concurrency", schedule=None, template_searchpath=[sql_dir]):
        if kind == "features":
            op = FeatureExtractOperator(task_id="features", table="features", pipeline=pipeline, partition_date=day)
        else:
            op = DriftCheckOperator(task_id="drift", pipeline=pipeline, partition_date=day, predictions_table=None)
    ti = types.SimpleNamespace(dag_id="concurrency", task_id=op.task_id, run_id=f"{kind}-{day}", try_number=1)
    ctx = {"ds": day, "logical_date": None, "ti": ti}
    pathlib.Path(ready).write_text("ready")
    while not pathlib.Path(go).exists():
        time.sleep(0.002)
    started, errors = time.monotonic(), []
    for attempt in range(1, int(max_tries) + 1):  # what Airflow's retries do with a retryable error
        try:
            if kind == "features":
                op.render_template_fields(ctx)
            result = op.execute(ctx)
            break
        except MLProviderError as err:
            errors.append(f"{type(err).__name__}: {err}")
            if not err.retryable or attempt == int(max_tries):
                raise
            pathlib.Path(ready + ".failed").write_text(str(attempt))
            while retry_gate is not None and not retry_gate.exists():  # the retry delay
                time.sleep(0.01)
    print(json.dumps({"kind": kind, "day": day, "started": started, "ended": time.monotonic(),
                      "tries": attempt, "errors": errors, "result": result}, default=str))
"""

_LOCK_HOLDER = """
    import pathlib, sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1] + ".lock")
    lock.acquire()
    pathlib.Path(sys.argv[2]).write_text("held")
    while not pathlib.Path(sys.argv[3]).exists():
        time.sleep(0.01)
    lock.release()
"""


def _spawn(tmp: Path, script: str, *args: str) -> subprocess.Popen:
    path = tmp / f"child-{abs(hash(args))}.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.Popen(
        [sys.executable, str(path), *args],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(marker: Path, child: subprocess.Popen, bound: float = 120) -> None:
    deadline = time.monotonic() + bound
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"child exited early: {child.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"{marker.name} never appeared"
        time.sleep(0.02)


def _tasks(case: World, tmp: Path, jobs: list[tuple[str, dt.date]], go: Path, max_tries: int = 1) -> list[dict]:
    """Start one process per job, release them together, return their JSON reports."""
    children = []
    try:
        for kind, day in jobs:
            ready = tmp / f"ready-{kind}-{day}"
            child = _spawn(
                tmp, _TASK, kind, str(case.pipeline), day.isoformat(), str(ready), str(go), str(SQL_DIR), str(max_tries)
            )
            children.append(child)
            _wait_for(ready, child)
        go.write_text("go")
        outputs = [child.communicate(timeout=300) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    reports = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-4000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def _consistent(path: Path) -> None:
    """The file opens read-write, passes DuckDB's checkpoint and every table reads back whole."""
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall():
            con.execute(f'SELECT count(*), sum(hash(t)) FROM "{schema}"."{table}" AS t').fetchone()
    finally:
        con.close()


def _partition(path: Path, table: str, column: str, day: dt.date) -> tuple[int, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            f"SELECT count(*), sum(hash(t)) FROM {table} AS t WHERE {column} = $d", {"d": day}
        ).fetchone()
    finally:
        con.close()


def test_parallel_feature_and_drift_writers_are_serialised_and_lose_nothing(case: World, tmp_path):
    before = table_checksums(case.warehouse)
    features_before = {day: _partition(case.warehouse, "features", "as_of_date", day) for day in (EARLIER, DAY)}
    jobs = [("features", EARLIER), ("features", DAY), ("drift", DAY)]

    reports = _tasks(case, tmp_path, jobs, tmp_path / "go")

    # They really overlapped: every process was running while the others were.
    assert max(r["started"] for r in reports) < min(r["ended"] for r in reports), reports
    assert all(r["tries"] == 1 and r["errors"] == [] for r in reports), reports  # the lock waited, nobody failed
    _consistent(case.warehouse)
    after = table_checksums(case.warehouse)
    # Feature SQL is deterministic: both rebuilt partitions are exactly the rows they were, no duplicates.
    for day in (EARLIER, DAY):
        assert _partition(case.warehouse, "features", "as_of_date", day) == features_before[day]
    con = duckdb.connect(str(case.warehouse), read_only=True)
    try:
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT as_of_date, user_id, item_id FROM features GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
        drift_rows = con.execute(
            "SELECT count(*), count(DISTINCT (model_name, feature, metric, segment)), any_value(run_id) "
            "FROM drift_results WHERE logical_date = $d",
            {"d": DAY},
        ).fetchone()
    finally:
        con.close()
    assert dupes == 0
    drift_report = next(r for r in reports if r["kind"] == "drift")
    assert drift_rows[0] == drift_rows[1] == drift_report["result"]["results"]["rows"] > 0
    assert drift_rows[2] == f"drift-{DAY}"
    unchanged = {t for t in before if t not in ("main.drift_results",)}
    assert {t: after[t] for t in unchanged} == {t: before[t] for t in unchanged}


def test_a_writer_blocked_past_its_lock_timeout_fails_retryably_and_its_retry_succeeds(
    case: World, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", case.connection(lock_timeout_seconds=1))
    before = _partition(case.warehouse, "features", "as_of_date", DAY)
    held, release, retry = tmp_path / "held", tmp_path / "release", tmp_path / "retry"
    holder = _spawn(tmp_path, _LOCK_HOLDER, str(case.warehouse), str(held), str(release))
    child = None
    try:
        _wait_for(held, holder)
        go = tmp_path / "go"
        ready = tmp_path / "ready"
        args = ("features", str(case.pipeline), DAY.isoformat(), str(ready), str(go), str(SQL_DIR), "2", str(retry))
        child = _spawn(tmp_path, _TASK, *args)
        _wait_for(ready, child)
        go.write_text("go")
        # The first try cannot get the lock within its timeout; then the other writer finishes and the retry runs.
        _wait_for(tmp_path / "ready.failed", child)
        release.write_text("release")
        assert holder.wait(timeout=60) == 0
        retry.write_text("retry")
        out, err = child.communicate(timeout=300)
    finally:
        release.write_text("release")
        retry.write_text("retry")
        for proc in (holder, child):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert child.returncode == 0, err[-4000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["tries"] == 2, report
    first = report["errors"][0]
    assert first.startswith("WarehouseLockedError: warehouse ") and str(case.warehouse) in first
    assert "lock_timeout_seconds" in first and "The task will be retried" in first
    _consistent(case.warehouse)
    assert _partition(case.warehouse, "features", "as_of_date", DAY) == before
