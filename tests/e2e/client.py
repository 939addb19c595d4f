"""REST API v2 client of the e2e tests: a JWT from ``POST /auth/token`` and the calls tests need."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

TERMINAL = {"success", "failed"}


def _log_line(event: Any) -> str:
    """One structured task-log event as a line, with the exception type and message if any."""
    if not isinstance(event, dict):
        return str(event)
    line = " ".join(str(event.get(k, "")) for k in ("timestamp", "level", "event"))
    for err in event.get("error_detail") or []:
        line += f" | {err.get('exc_type')}: {err.get('exc_value')}"
    return line


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
        return self.request("POST", "/api/v2/backfills", json=body)
