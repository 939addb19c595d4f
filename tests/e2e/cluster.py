"""A real Airflow 3 on this machine, for end-to-end tests: start it, talk to it, always stop it.

``AirflowCluster`` runs ``airflow db migrate`` in a throwaway home, then starts the chosen
components (api-server, scheduler, dag-processor, triggerer; LocalExecutor on SQLite), each
with ``start_new_session=True`` so it leads its own session and process group, logging to
``<home>/logs/<component>.log``. ``start()`` returns once ``/api/v2/monitor/health``
reports every started component healthy. ``stop()`` (also run by ``__exit__``, the pytest
fixtures and ``atexit``) sends SIGTERM to each group, waits, then SIGKILLs every process
still in one of the sessions -- that includes task processes, which Airflow moves into
their own process groups but which stay in the scheduler's session. ``alive()`` lists
what is left (empty after ``stop()``).

Auth is Airflow's SimpleAuthManager with one admin user whose random password lives in a
0600 file in the temp home; ``AirflowClient`` trades it for a JWT (``POST /auth/token``)
and wraps the REST API v2 calls the tests need.

Usage (another test can start only the api-server)::

    with AirflowCluster(tmp_path / "af", components=("api-server",)) as cluster:
        client = cluster.client()
        client.get("/api/v2/version")
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.paths import DAGS_DIR, REPO

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Health keys of ``/api/v2/monitor/health`` per component (the api-server answers itself).
_HEALTH_KEY = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
ADMIN = "admin"
TERMINAL = {"success", "failed"}
#: Test-only cluster policy: see ``airflow_local_settings.py`` next to this file.
LOCAL_SETTINGS = Path(__file__).with_name("airflow_local_settings.py")

_RUNNING: set[AirflowCluster] = set()


@atexit.register
def _stop_all() -> None:  # a crashed or interrupted session still leaves no Airflow behind
    for cluster in list(_RUNNING):
        cluster.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _log_line(event: Any) -> str:
    """One structured task-log event as a line, with the exception type and message if any."""
    if not isinstance(event, dict):
        return str(event)
    line = " ".join(str(event.get(k, "")) for k in ("timestamp", "level", "event"))
    for err in event.get("error_detail") or []:
        line += f" | {err.get('exc_type')}: {err.get('exc_value')}"
    return line


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
        self.password = secrets.token_urlsafe(18)
        self.passwords_file = self.home / "simple_auth_manager_passwords.json"
        config_dir = self.airflow_home / "config"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        self.env.update(
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW_ML_HOME=str(self.home / "ml"),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM=str(parallelism),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.passwords_file),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.airflow_home / 'airflow.db'}",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="airflow_local_settings.SQLITE_CONNECT_ARGS",
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
        self.airflow("db", "migrate")
        _RUNNING.add(self)
        try:
            for name in self.components:
                self.start_component(name)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def start_component(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop())
        self._log_files.append(log)
        args = [name, "--port", str(self.port)] if name == "api-server" else [name]
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

    @contextlib.contextmanager
    def paused_component(self, name: str, grace: float = 60.0) -> Iterator[None]:
        """Stop one component (SIGTERM, it finishes its running tasks), run the body, start it again."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        try:
            yield
        finally:
            self.start_component(name)
            self.wait_healthy()

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.start_timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{self.log_tail(name)}")
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

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every component's group, then SIGKILL whatever is left in their sessions."""
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
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for log in self._log_files:
            log.close()
        self._log_files.clear()
        _RUNNING.discard(self)

    def alive(self) -> list[int]:
        """Live processes (components, executor workers, task processes) in this cluster's sessions."""
        return processes_in_sessions(self._sids)

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


class AirflowClient:
    """A small REST API v2 client: a JWT from ``POST /auth/token`` and the calls tests need."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        liveness: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        #: Raises when a component died, so waits fail at once with its log instead of at the bound.
        self.check_alive = liveness or (lambda: None)
        token = httpx.post(f"{url}/auth/token", json={"username": username, "password": password}, timeout=timeout)
        token.raise_for_status()
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=timeout
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.http.request(method, path, **kwargs)
        if resp.is_error:
            raise AssertionError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    # --- DAGs and runs ------------------------------------------------------------------

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed and serialised every DAG; fail on import errors."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while True:
            errors = self.get("/api/v2/importErrors")["import_errors"]
            assert not errors, f"DAG import errors: {errors}"
            dags = {d["dag_id"] for d in self.get("/api/v2/dags", limit=100)["dags"]}
            if wanted <= dags:
                return
            assert time.monotonic() < deadline, f"DAGs {sorted(wanted - dags)} not parsed after {timeout:g}s"
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, logical_date: dt.date | dt.datetime, run_id: str | None = None) -> str:
        when = logical_date if isinstance(logical_date, dt.datetime) else dt.datetime.combine(logical_date, dt.time())
        when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when
        body: dict[str, Any] = {"logical_date": when.isoformat()}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", limit=100, order_by="logical_date")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log for one try, as text (one line per structured event)."""
        resp = self.http.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        if resp.is_error:
            return f"(no log: {resp.status_code} {resp.text[:200]})"
        content = resp.json().get("content")
        if isinstance(content, list):
            return "\n".join(_log_line(e) for e in content)
        return str(content)

    def explain(self, dag_id: str, run_id: str, log_lines: int = 25) -> str:
        """Task states, and the tail of the log of every task that did not succeed."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            idx = ti.get("map_index", -1)
            lines.append(f"{ti['task_id']}[{idx}]: {ti['state']} (try {ti['try_number']})")
            if ti["state"] not in ("success", "skipped", None) and ti["try_number"]:
                tail = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], idx).splitlines()
                lines.extend("    " + line for line in tail[-log_lines:])
        return "\n".join(lines)

    def wait_for_run(
        self, dag_id: str, run_id: str, state: str = "success", timeout: float = 300, poll: float = 2
    ) -> dict[str, Any]:
        """Wait until the run is terminal; fail with task states and log tails unless it is ``state``."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id} {run_id} still {run['state']} after {timeout:g}s:\n{self.explain(dag_id, run_id)}"
                )
            time.sleep(poll)
        if run["state"] != state:
            raise AssertionError(
                f"{dag_id} {run_id} ended {run['state']}, expected {state}:\n{self.explain(dag_id, run_id)}"
            )
        return run

    def run_dag(self, dag_id: str, logical_date: dt.date, timeout: float = 300) -> str:
        """Trigger one run and wait for its success; returns the run id."""
        run_id = self.trigger(dag_id, logical_date)
        self.wait_for_run(dag_id, run_id, timeout=timeout)
        return run_id

    def backfill(self, dag_id: str, start: dt.date, end: dt.date, max_active_runs: int) -> dict[str, Any]:
        """``POST /api/v2/backfills`` for the days ``start``..``end`` (inclusive), rerunning completed runs."""
        body = {
            "dag_id": dag_id,
            "from_date": dt.datetime.combine(start, dt.time(), dt.UTC).isoformat(),
            # The end of the last day, so a DAG scheduled later in the day (06:00) gets it too.
            "to_date": dt.datetime.combine(end, dt.time(23, 59, 59), dt.UTC).isoformat(),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": "completed",
        }
        # On SQLite the API answers 503 when the metadata DB stayed locked (the scheduler writes
        # all the time); creation is one transaction, so asking again is safe.
        for attempt in range(6):
            resp = self.http.post("/api/v2/backfills", json=body)
            if resp.status_code != 503 or attempt == 5:
                break
            time.sleep(2 + 2 * attempt)
        if resp.is_error:
            raise AssertionError(f"POST /api/v2/backfills -> {resp.status_code}: {resp.text[:2000]}")
        return resp.json()
