"""SIGKILL each writing task once, mid-write, under the real scheduler; the automatic retry repairs it.

The injection (tests/e2e/faults/sitecustomize.py) stalls the first ``INSERT INTO <table>``
of the armed table -- for a partition write that is inside the transaction, after the old
partition's rows were deleted -- and the test SIGKILLs that task process. Killing the task
process (not its supervisor) models the OOM killer or a crashed interpreter: the
supervisor sees the child die, reports the try failed, and the scheduler retries it
(``retries=1``, 2 s delay by the test cluster policy). A killed supervisor would instead
be found by the heartbeat timeout minutes later; the recovery is the same retry.

One more test kills the whole Celery worker instead (every process of it at once): no
supervisor is left to report, the scheduler finds the try by its missing heartbeat, and
the retry runs on the restarted worker.

After each kill: the table is exactly as before (rows and checksum, read while the task
is dead), the retry succeeds as the next try, and nothing is duplicated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import time

import pytest

from tests.e2e.cluster import still_alive
from tests.e2e.conftest import RUN_DATE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


class Fault:
    """Arm a stall on one table, wait for a task to reach it, SIGKILL it."""

    def __init__(self, recsys, table: str, verb: str = "INSERT") -> None:
        self.recsys = recsys
        self.dir = recsys.stall_dir
        self.table = table
        for name in ("claimed", "stalled.json"):
            (self.dir / name).unlink(missing_ok=True)
        (self.dir / "stall.json").write_text(json.dumps({"table": table, "verb": verb}))

    def kill_when_stalled(self, dag_id: str, run_id: str, timeout: float = 420) -> dict:
        """Wait for the stall, SIGKILL the task process, wait until it is gone; returns the stall info."""
        info = self.wait_stalled(dag_id, run_id, timeout)
        os.kill(info["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while still_alive([info["pid"]]):
            assert time.monotonic() < deadline, f"task process {info['pid']} survived SIGKILL"
            time.sleep(0.05)
        return info

    def wait_stalled(self, dag_id: str, run_id: str, timeout: float = 420) -> dict:
        """Wait until a task of the run stalls in the armed write; returns ``{"pid", "sql"}``."""
        stalled = self.dir / "stalled.json"
        deadline = time.monotonic() + timeout
        while not stalled.exists():
            self.recsys.cluster.check_alive()
            run = self.recsys.client.dag_run(dag_id, run_id)
            assert run["state"] not in ("success", "failed"), (
                f"{dag_id} {run_id} ended {run['state']} without reaching the write into {self.table}:\n"
                + self.recsys.client.explain(dag_id, run_id)
            )
            assert time.monotonic() < deadline, f"no task reached the write into {self.table} in {timeout:g}s"
            time.sleep(0.5)
        return json.loads(stalled.read_text())

    def disarm(self) -> None:
        for name in ("stall.json", "claimed", "stalled.json"):
            (self.dir / name).unlink(missing_ok=True)


@pytest.fixture
def fault(recsys):
    armed: list[Fault] = []

    def arm(table: str, verb: str = "INSERT") -> Fault:
        recsys.settle()  # nothing else running may hit the armed write
        armed.append(Fault(recsys, table, verb))
        return armed[-1]

    yield arm
    for f in armed:
        f.disarm()
    with contextlib.suppress(AssertionError):
        recsys.settle()


def tries(recsys, dag_id: str, run_id: str, task_id: str) -> list[tuple[int, str]]:
    got = recsys.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    return sorted((t["try_number"], t["state"]) for t in got["task_instances"])


def assert_killed_then_retried(recsys, dag_id: str, run_id: str, task_id: str, first_try: int = 1) -> None:
    recsys.client.wait_for_run(dag_id, run_id, timeout=420)
    history = tries(recsys, dag_id, run_id, task_id)
    assert [n for n, _ in history][-2:] == [first_try, first_try + 1], history
    assert history[-1][1] == "success" and history[-2][1] != "success", history
    log = recsys.client.task_log(dag_id, run_id, task_id, first_try + 1)
    assert "Task failed with exception" not in log


def duplicates(recsys, table: str, key: str) -> int:
    return recsys.query(f"SELECT COUNT(*) AS n FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING COUNT(*) > 1) AS d")[
        0
    ]["n"]


def content(recsys, table: str, columns: str) -> tuple[int, int]:
    """Rows and checksum of the columns a rerun reproduces (not run ids or timestamps)."""
    row = recsys.query(f"SELECT COUNT(*) AS n, SUM(HASH({columns}) % 1000000007) AS h FROM {table}")[0]
    return int(row["n"]), int(row["h"] or 0)


def test_sigkill_mid_feature_write_keeps_the_partition_and_the_retry_rewrites_it(recsys, fault):
    day = dt.date(2026, 3, 24)  # in the feature history: the partition exists, the rerun replaces it
    before = recsys.checksum("features")
    assert recsys.query("SELECT COUNT(*) AS n FROM features WHERE as_of_date = @d", d=day)[0]["n"] > 0
    armed = fault("features")
    run_id = recsys.client.trigger("recsys_features", day)
    info = armed.kill_when_stalled("recsys_features", run_id)
    assert '"features"' in info["sql"]
    assert recsys.checksum("features") == before  # the deleted partition came back with the rollback
    assert_killed_then_retried(recsys, "recsys_features", run_id, "features")
    assert recsys.checksum("features") == before  # same SQL, same rows: replaced, not appended
    assert duplicates(recsys, "features", "as_of_date, user_id, item_id") == 0


def test_sigkilled_celery_worker_mid_feature_write_is_detected_and_retried_on_the_restarted_worker(recsys, fault):
    """The whole worker dies (OOM-killed container): main process, pool processes, the task.

    No process is left to report the try, so the scheduler finds it by its missing heartbeat
    (60 s in the test cluster, 5 min by default) and the retry waits for a worker; the worker
    is restarted as compose's ``restart: always`` would.
    """
    cluster, client = recsys.cluster, recsys.client
    day = dt.date(2026, 3, 16)  # in the feature history, and no other test runs it through Airflow
    before = recsys.checksum("features")
    assert recsys.query("SELECT COUNT(*) AS n FROM features WHERE as_of_date = @d", d=day)[0]["n"] > 0
    armed = fault("features")
    run_id = client.trigger("recsys_features", day)
    info = armed.wait_stalled("recsys_features", run_id)
    worker_pid = cluster.procs["celery-worker"].pid
    killed = cluster.crash_component("celery-worker")
    # The stalled task was the worker's: main process, its pool process (the supervisor), the task.
    assert {worker_pid, info["pid"]} <= set(killed) and len(killed) >= 3, (worker_pid, info, killed)
    assert recsys.checksum("features") == before  # the deleted partition came back with the rollback
    cluster.restart_component("celery-worker")

    client.wait_for_run("recsys_features", run_id, timeout=420)
    history = tries(recsys, "recsys_features", run_id, "features")
    assert [n for n, _ in history] == [1, 2] and history[0][1] != "success" and history[1][1] == "success", history
    detected = client.get(
        "/api/v2/eventLogs", dag_id="recsys_features", task_id="features", run_id=run_id, event="heartbeat timeout"
    )["event_logs"]
    assert [e["try_number"] for e in detected] == [1], detected  # the scheduler found the lost try
    assert still_alive(killed) == []  # so the retry ran on the restarted worker, the only one left
    assert recsys.checksum("features") == before  # same SQL, same rows: replaced, not appended
    assert duplicates(recsys, "features", "as_of_date, user_id, item_id") == 0


def test_sigkill_mid_batch_inference_keeps_yesterdays_lists_and_the_retry_replaces_them(recsys, fault):
    recsys.trained()
    run_id = recsys.run("recsys_batch_inference", RUN_DATE)
    recsys.settle()
    stable = "prediction_date, user_id, item_id, rank, score, model_version"
    before, before_content = recsys.checksum("recommendations"), content(recsys, "recommendations", stable)
    runs_before = recsys.query("SELECT try_number, status FROM recommendation_runs WHERE run_id = @r", r=run_id)
    first_try = recsys.client.task_instance("recsys_batch_inference", run_id, "publish")["try_number"] + 1
    armed = fault("recommendations")
    # Rerun the day: clear the shards and the publish, as an operator would after fixing an
    # upstream table. The publish is killed inside its transaction; its retry publishes the
    # same staged shards.
    recsys.client.request(
        "POST",
        "/api/v2/dags/recsys_batch_inference/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "task_ids": ["score_shard", "publish"], "only_failed": False},
    )
    armed.kill_when_stalled("recsys_batch_inference", run_id)
    assert recsys.checksum("recommendations") == before
    assert_killed_then_retried(recsys, "recsys_batch_inference", run_id, "publish", first_try)
    assert content(recsys, "recommendations", stable) == before_content
    assert duplicates(recsys, "recommendations", "prediction_date, user_id, item_id") == 0
    assert duplicates(recsys, "recommendations", "prediction_date, user_id, rank") == 0
    runs = recsys.query("SELECT try_number, status FROM recommendation_runs WHERE run_id = @r", r=run_id)
    # The killed try had recorded itself as running before scoring; the retry marked it lost
    # and recorded itself, once.
    expected = sorted([*(r["try_number"] for r in runs_before), first_try, first_try + 1])
    assert sorted(r["try_number"] for r in runs) == expected
    assert {"try_number": first_try, "status": "lost"} in runs
    assert {"try_number": first_try + 1, "status": "success"} in runs


def test_sigkill_mid_drift_results_write_keeps_the_results_and_the_retry_rewrites_them(recsys, fault):
    recsys.trained()
    recsys.run("recsys_batch_inference", RUN_DATE)  # its asset event runs recsys_drift for the day
    recsys.settle()
    assert recsys.query("SELECT COUNT(*) AS n FROM drift_results WHERE logical_date = @d", d=RUN_DATE)[0]["n"] > 0
    stable = "logical_date, model_version, table_name, segment, feature, metric, value, status"
    before, before_content = recsys.checksum("drift_results"), content(recsys, "drift_results", stable)
    armed = fault("drift_results")
    # A manual check of the same day (as `airflow dags test recsys_drift DATE` in make demo).
    run_id = recsys.client.trigger("recsys_drift", RUN_DATE)
    armed.kill_when_stalled("recsys_drift", run_id)
    assert recsys.checksum("drift_results") == before
    assert_killed_then_retried(recsys, "recsys_drift", run_id, "drift_check")
    assert content(recsys, "drift_results", stable) == before_content
    assert duplicates(recsys, "drift_results", "logical_date, table_name, segment, feature, metric") == 0


def test_sigkill_mid_model_registration_leaves_the_registry_and_the_retry_registers_once(recsys, fault):
    recsys.trained()
    recsys.settle()
    champion = recsys.query("SELECT version FROM ml_models WHERE status = 'champion'")[0]["version"]
    try:
        registration_fault(recsys, fault)
    finally:  # the session's later tests (UI, pipeline) look at the RUN_DATE champion
        from airflow_ml_provider.core.registry.models import ModelRegistry

        if recsys.query("SELECT version FROM ml_models WHERE status = 'champion'")[0]["version"] != champion:
            ModelRegistry(recsys.warehouse).promote("recsys", champion, "e2e", "restore the session's champion")


def registration_fault(recsys, fault) -> None:
    before = recsys.checksum("ml_models")
    profiles_before = recsys.checksum("drift_profiles")
    versions_before = {r["version"] for r in recsys.query("SELECT version FROM ml_models")}
    armed = fault("ml_models")
    day = dt.date(2026, 3, 30)
    run_id = recsys.client.trigger("recsys_training", day)
    info = armed.kill_when_stalled("recsys_training", run_id, timeout=600)
    assert "ml_models" in info["sql"]
    assert recsys.checksum("ml_models") == before
    assert recsys.checksum("drift_profiles") == profiles_before
    assert_killed_then_retried(recsys, "recsys_training", run_id, "train")
    models = recsys.query("SELECT version, status FROM ml_models WHERE model_name = 'recsys'")
    new = [m for m in models if m["version"] not in versions_before]
    assert len(new) == 1 and new[0]["version"].startswith("20260330-"), models
    assert duplicates(recsys, "ml_models", "model_name, version") == 0
    assert sum(m["status"] == "champion" for m in models) == 1
    assert (
        duplicates(recsys, "drift_profiles", "model_name, model_version, scope, column_name, segment_by, segment") == 0
    )
    assert recsys.query("SELECT COUNT(*) AS n FROM drift_profiles WHERE model_version = @v", v=new[0]["version"])[0][
        "n"
    ]
