"""Fixtures for the real-Airflow e2e tests; the harness itself is ``tests/e2e/cluster.py``.

One cluster serves the whole session: ``recsys`` (below) starts PostgreSQL, Redis and every
Airflow component once, and its teardown (``stop_and_check``) asserts that stopping leaves
no Airflow, PostgreSQL or Redis process and no PostgreSQL data directory behind, and that
the API no longer answers; a leftover fails the run as a teardown error.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.e2e import backing
from tests.e2e.cluster import AirflowCluster, still_alive
from tests.paths import SQL_DIR
from tests.small_world import small_world_dags

#: The test-only cluster policy (tests/e2e/airflow_local_settings.py): a calendar that
#: ends in spring 2026 (no run for the machine's "today"), one quick retry, fast sensors.
FAST_POLICY = {
    "AML_E2E_SCHEDULE_END": "2026-04-30",
    "AML_E2E_RETRIES": "1",
    "AML_E2E_RETRY_DELAY_SECONDS": "2",
    "AML_E2E_POKE_SECONDS": "3",
}


def skip_without_the_layout() -> None:
    """Skip, naming what to install, when PostgreSQL, Redis or the Celery/driver packages are missing."""
    why = backing.missing()
    if why:
        pytest.skip(f"the production layout (PostgreSQL + CeleryExecutor + Redis) cannot start: {why}")


def stop_and_check(cluster: AirflowCluster) -> None:
    """Stop the cluster, then assert that nothing of it is left: processes, data directory, API."""
    pids = cluster.alive()
    pg_dir = cluster.postgres.dir
    cluster.stop()
    assert cluster.alive() == [], f"processes of the Airflow cluster still alive after teardown: {cluster.alive()}"
    assert still_alive(pids) == [], f"processes gone from the cluster's sessions but still running: {still_alive(pids)}"
    assert pg_dir is None or not pg_dir.exists(), f"the throwaway PostgreSQL cluster {pg_dir} was not deleted"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{cluster.url}/api/v2/version", timeout=2)


# --- the recsys world: one real Airflow for the pipeline, backfill and fault tests -----------

FAULTS_DIR = Path(__file__).with_name("faults")
RECSYS_DAGS = ("recsys_features", "recsys_training", "recsys_batch_inference", "recsys_drift")
#: The demo world: small, but big enough to train, gate and check drift (min_rows 1000).
WORLD_ARGS = ("--users", "200", "--items", "80", "--days", "74", "--end-date", "2026-03-31", "-q")
#: The day the pipeline test runs end to end; training for it looks at as-of
#: dates 02-13..03-24 (fit, early stopping, test), for 03-30 (a fault test) at 02-12..03-23.
RUN_DATE = dt.date(2026, 3, 31)
#: User shards of recsys_batch_inference in the e2e cluster (the contract's default is 1).
SHARDS = 3
HISTORY = (dt.date(2026, 2, 12), dt.date(2026, 3, 24))


class RecsysWorld:
    """A seeded warehouse, feature history up to ``HISTORY[1]``, and a running Airflow.

    ``run(dag_id, date)`` triggers a run through the REST API and waits for its success,
    once per (dag, date) per session, so each test can state what it builds on without
    depending on test order.
    """

    def __init__(self, cluster: AirflowCluster, stall_dir: Path) -> None:
        from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

        self.cluster = cluster
        self.client = cluster.client()
        self.stall_dir = stall_dir
        self.warehouse = DuckDBWarehouse(Path(cluster.env["AIRFLOW_ML_HOME"]) / "warehouse.duckdb", lock_timeout=60)
        self._started: dict[tuple[str, dt.date], str] = {}
        self._done: dict[tuple[str, dt.date], str] = {}

    def run(self, dag_id: str, day: dt.date, timeout: float = 420) -> str:
        key = (dag_id, day)
        if key not in self._done:
            # Remembered before waiting: if a loaded machine makes one test's wait time out, the
            # next test waits on the same run instead of triggering the date again (a 409).
            if key not in self._started:
                self._started[key] = self.client.trigger(dag_id, day)
            self.client.wait_for_run(dag_id, self._started[key], timeout=timeout)
            self._done[key] = self._started[key]
        return self._done[key]

    def drift_runs(self) -> list[dict]:
        return self.client.dag_runs("recsys_drift")

    def trained(self) -> None:
        """Features and a champion for RUN_DATE (what the pipeline test also builds)."""
        self.run("recsys_features", RUN_DATE)
        self.run("recsys_training", RUN_DATE, timeout=600)

    def settle(self, timeout: float = 300) -> None:
        """Wait until no DAG run is queued or running (asset-triggered ones included)."""
        deadline = time.monotonic() + timeout
        while True:
            self.cluster.check_alive()
            busy = self.client.get("/api/v2/dags/~/dagRuns", state=["queued", "running"], limit=50)["dag_runs"]
            if not busy:
                return
            assert time.monotonic() < deadline, f"DAG runs still busy after {timeout:g}s: " + ", ".join(
                f"{r['dag_id']} {r['dag_run_id']} {r['state']}" for r in busy
            )
            time.sleep(2)

    def query(self, sql: str, **params) -> list[dict]:
        return self.warehouse.query(sql, params).to_pylist()

    def checksum(self, table: str) -> tuple[int, int]:
        """(rows, order-independent checksum of all rows) of a table; a duplicated row changes both."""
        row = self.query(f"SELECT COUNT(*) AS n, SUM(HASH(x) % 1000000007) AS h FROM (SELECT * FROM {table}) AS x")[0]
        return int(row["n"]), int(row["h"] or 0)


def _prepare_warehouse(env: Mapping[str, str]) -> subprocess.Popen:
    """Seed the demo world, then build the feature history, in the background."""
    bin_dir = Path(sys.executable).parent
    script = (
        f"{bin_dir / 'airflow-ml'} seed-demo {' '.join(WORLD_ARGS)} && "
        f"{bin_dir / 'airflow-ml'} features --date {HISTORY[0]} --to {HISTORY[1]} -q"
    )
    return subprocess.Popen(
        ["bash", "-c", script], env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture(scope="session")
def recsys(tmp_path_factory) -> Iterator[RecsysWorld]:
    skip_without_the_layout()
    home = tmp_path_factory.mktemp("e2e-recsys")
    stall_dir = home / "faults"
    stall_dir.mkdir()
    cluster = AirflowCluster(
        home / "cluster",
        # Batch inference runs sharded: three mapped shard tasks, then one publish.
        env={
            **FAST_POLICY,
            "AML_E2E_STALL_DIR": str(stall_dir),
            "AIRFLOW_VAR_RECSYS_INFERENCE_SHARDS": str(SHARDS),
            "AIRFLOW_ML_SQL_DIR": str(SQL_DIR),
        },
        # The reference DAGs with the small-world gate: this world has 200 users (tests/small_world.py).
        dags_folder=small_world_dags(home / "dags"),
        pythonpath=[FAULTS_DIR],
    )
    # The warehouse is prepared while Airflow starts (the DAGs only read it when triggered).
    prepare = _prepare_warehouse({k: v for k, v in cluster.env.items() if k != "AML_E2E_STALL_DIR"})
    try:
        cluster.start()
        out, _ = prepare.communicate(timeout=900)
        assert prepare.returncode == 0, out[-3000:]
        world = RecsysWorld(cluster, stall_dir)
        world.client.wait_for_dags(RECSYS_DAGS)
        for dag_id in RECSYS_DAGS:
            world.client.unpause(dag_id)
        yield world
    finally:
        if prepare.poll() is None:
            prepare.kill()
        stop_and_check(cluster)
