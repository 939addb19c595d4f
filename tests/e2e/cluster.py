"""A real Airflow 3 on this machine, for end-to-end tests: start it, talk to it, always stop it.

The layout is docker-compose.yaml's, run natively: a throwaway PostgreSQL cluster as the
metadata DB and Celery result backend, ``redis-server`` as the Celery broker
(tests/e2e/backing.py), ``airflow db migrate`` and the ML pool (``airflow pools set``, as
the compose file's init does), then the chosen components -- api-server, scheduler,
dag-processor, triggerer and a Celery worker (``airflow celery worker``) -- with the
executor and pool from ``airflow-layout.env``, the file compose reads too
(tests/e2e/layout.py). Each process leads its own session and process group, logging to
``<home>/logs/<component>.log``. ``start()`` returns once ``/api/v2/monitor/health``
reports every started component healthy and the worker is ready. ``stop()`` (also run by
``__exit__``, the pytest fixtures and ``atexit``) sends SIGTERM to each group, waits, then
SIGKILLs every process still in one of the sessions -- that includes task processes, which
Airflow moves into their own process groups but which stay in the worker's session -- and
then stops Redis and PostgreSQL. ``alive()`` lists what is left (empty after ``stop()``).

Auth is Airflow's SimpleAuthManager with one admin user whose random password lives in a
0600 file in the temp home; ``AirflowClient`` (tests/e2e/client.py) trades it for a JWT.

Usage (another test can start only the api-server)::

    with AirflowCluster(tmp_path / "af", components=("api-server",)) as cluster:
        client = cluster.client()
        client.get("/api/v2/version")
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.backing import PostgresServer, RedisServer, free_port
from tests.e2e.client import AirflowClient
from tests.e2e.layout import WORKER_CONCURRENCY, pool, read_layout
from tests.paths import DAGS_DIR, REPO

__all__ = ["ADMIN", "COMPONENTS", "AirflowClient", "AirflowCluster", "still_alive"]

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")
#: The CLI command of each component (``airflow <args>``).
_COMMAND = {"celery-worker": ("celery", "worker")}
#: Health keys of ``/api/v2/monitor/health`` per component (the api-server answers itself).
_HEALTH_KEY = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
ADMIN = "admin"
#: What the Celery worker logs once it consumes tasks.
_WORKER_READY = re.compile(rb"celery@\S+ ready\.")
#: Test-only cluster policy: see ``airflow_local_settings.py`` next to this file.
LOCAL_SETTINGS = Path(__file__).with_name("airflow_local_settings.py")

_RUNNING: set[AirflowCluster] = set()


def component_command(name: str) -> tuple[str, ...]:
    """The ``airflow`` CLI arguments that run a component (compose's ``command:`` of its service)."""
    return _COMMAND.get(name, (name,))


@atexit.register
def _stop_all() -> None:  # a crashed or interrupted session still leaves no Airflow behind
    for cluster in list(_RUNNING):
        cluster.stop()


def _proc_stat(pid: str) -> tuple[str, int, int] | None:
    """(state, pgid, session id) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2]), int(fields[3])


def processes_in_sessions(sids: Iterable[int]) -> list[int]:
    """PIDs of live (non-zombie) processes whose session id is one of ``sids``."""
    wanted = set(sids)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(entry)
        if stat and stat[2] in wanted and stat[0] != "Z":
            found.append(int(entry))
    return found


def still_alive(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that are still running (zombies count as gone)."""
    return [pid for pid in pids if (stat := _proc_stat(str(pid))) and stat[0] != "Z"]


def _sigkill(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` (one already gone, or not ours, is skipped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class AirflowCluster:
    """A real Airflow: metadata DB migrated in ``home``, components started and health-checked."""

    def __init__(
        self,
        home: Path,
        components: Iterable[str] = COMPONENTS,
        env: Mapping[str, str] | None = None,
        *,
        dags_folder: Path = DAGS_DIR,
        parallelism: int = 4,
        start_timeout: float = 180.0,
        pythonpath: Iterable[Path] = (),
    ) -> None:
        self.components = tuple(components)
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown Airflow component(s) {sorted(unknown)}; choose from {COMPONENTS}")
        self.home = Path(home)
        self.airflow_home = self.home / "airflow"
        self.log_dir = self.home / "logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self._sids: set[int] = set()
        self._log_files: list[Any] = []
        self._worker_log_from = 0
        self.password = secrets.token_urlsafe(18)
        self.passwords_file = self.home / "simple_auth_manager_passwords.json"
        config_dir = self.airflow_home / "config"
        self.postgres = PostgresServer()
        self.redis = RedisServer(self.home / "redis")
        self.layout = read_layout()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        self.env.update(self.layout)  # executor and ML pool: the same file docker-compose.yaml reads
        self.env.update(
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW_ML_HOME=str(self.home / "ml"),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__PARALLELISM=str(parallelism),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.passwords_file),
            # docker-compose.yaml's URLs, with this machine's hosts, ports and credentials.
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.postgres.url,
            # psycopg2 named: SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3.
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+{self.postgres.url}",
            AIRFLOW__CELERY__BROKER_URL=self.redis.url,
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(WORKER_CONCURRENCY),
            # Free ports: other clusters (and other people's) may run on this machine.
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(24),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.log_dir / "tasks"),
            # Fast loops, so tests wait on work rather than on timers.
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="10",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL="600",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
            AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC="2",
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            # A task whose worker died (no heartbeat) is failed, and retried, after a minute, not 5.
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="60",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
            PYTHONPATH=os.pathsep.join([*(str(p) for p in pythonpath), str(config_dir), str(REPO)]),
        )
        self.env.update(env or {})

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> AirflowCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def airflow(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command against this cluster's home."""
        out = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-4000:]}")
        return out

    def start(self) -> AirflowCluster:
        for d in (self.airflow_home / "config", self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        (self.airflow_home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS.read_text())
        self.passwords_file.write_text(json.dumps({ADMIN: self.password}))
        self.passwords_file.chmod(0o600)
        _RUNNING.add(self)
        try:
            self.postgres.start()
            self.redis.start()
            self.airflow("db", "migrate")
            # The pool, as docker-compose.yaml's airflow-init creates it (in the background: the
            # components do not need it to start, only the first ML task does).
            pools = self.airflow_popen("pools", "set", *self.pool_args()) if pool(self.layout) else None
            for name in self.components:
                self.start_component(name)
            self.wait_healthy()
            if pools is not None:
                out, _ = pools.communicate(timeout=self.start_timeout)
                if pools.returncode != 0:
                    raise RuntimeError(f"airflow pools set failed ({pools.returncode}):\n{out[-3000:]}")
        except BaseException:
            self.stop()
            raise
        return self

    def pool_args(self) -> list[str]:
        """``airflow pools set`` arguments for the layout's ML pool (name, slots, description)."""
        declared = pool(self.layout)
        assert declared, "airflow-layout.env declares no ML pool"
        return [declared[0], str(declared[1]), "airflow-ml-provider tasks (one DuckDB writer in local mode)"]

    def airflow_popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def start_component(self, name: str) -> None:
        path = self.log_dir / f"{name}.log"
        if name == "celery-worker":  # readiness is read from what this start logs
            self._worker_log_from = path.stat().st_size if path.exists() else 0
        log = open(path, "ab")  # noqa: SIM115 (closed in stop())
        self._log_files.append(log)
        args = [*component_command(name), *(("--port", str(self.port)) if name == "api-server" else ())]
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.home,
        )
        self.procs[name] = proc
        self._sids.add(proc.pid)  # a session leader's session id is its pid

    def crash_component(self, name: str) -> list[int]:
        """SIGKILL every process of one component's session at once (a killed container or machine).

        For the Celery worker that is its main process, its pool processes (each supervising a
        task) and the task processes. Returns the killed pids once all are gone.
        """
        sid = self.procs[name].pid
        pids = processes_in_sessions([sid])
        _sigkill(pids)
        self.procs[name].wait(timeout=30)
        deadline = time.monotonic() + 30
        while still_alive(pids):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: processes {still_alive(pids)} survived SIGKILL")
            time.sleep(0.05)
        return pids

    def restart_component(self, name: str) -> None:
        """Start a component again (after ``crash_component``) and wait until it is healthy."""
        self.start_component(name)
        self.wait_healthy()

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.start_timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if "celery-worker" in self.procs and not self.worker_ready():
                time.sleep(1)
                continue
            if "api-server" not in self.components:
                return {}
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            except (httpx.HTTPError, ValueError) as err:
                last = err
            else:
                last = health
                wanted = [_HEALTH_KEY[c] for c in self.components if c in _HEALTH_KEY]
                if health.get("metadatabase", {}).get("status") == "healthy" and all(
                    (health.get(key) or {}).get("status") == "healthy" for key in wanted
                ):
                    return health
            time.sleep(1)
        tails = "\n".join(f"--- {n} ---\n{self.log_tail(n)}" for n in self.procs)
        raise TimeoutError(f"Airflow not healthy after {self.start_timeout:g}s (last: {last!r})\n{tails}")

    def worker_ready(self) -> bool:
        """The Celery worker logged ``celery@host ready.`` since it was last started."""
        path = self.log_dir / "celery-worker.log"
        return path.exists() and bool(_WORKER_READY.search(path.read_bytes()[self._worker_log_from :]))

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every component's group, then SIGKILL whatever is left in their sessions; then the DB and broker."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for _ in range(50):
            left = self.alive()
            if not left:
                break
            _sigkill(left)
            time.sleep(0.1)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for log in self._log_files:
            log.close()
        self._log_files.clear()
        self.redis.stop()
        self.postgres.stop()
        _RUNNING.discard(self)

    def alive(self) -> list[int]:
        """Live processes (components, Celery worker and its task processes, PostgreSQL, Redis) of this cluster."""
        backing = {sid for sid in (self.postgres.sid, self.redis.sid) if sid}
        return processes_in_sessions(self._sids | backing)

    # --- inspection ---------------------------------------------------------------------

    def log_tail(self, component: str, lines: int = 60) -> str:
        path = self.log_dir / f"{component}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def client(self, timeout: float = 60.0) -> AirflowClient:
        return AirflowClient(self.url, ADMIN, self.password, timeout=timeout, liveness=self.check_alive)

    def check_alive(self) -> None:
        """Fail with the log tail of any component that has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{self.log_tail(name, 80)}")
