"""scripts/airflow-local.py (`make airflow`): PATH, a taken port, a component that dies, and no orphans on stop.

A fake `airflow` executable stands in for `airflow standalone`: a real start migrates a
database and boots four components (a minute or more on two cores), while what is tested
here is the launcher's handling of processes. The fake behaves like standalone where that
matters: it starts each component as `airflow <component>` looked up on PATH, from a thread
(so a missing executable is a thread exception and standalone stays up), never reaps a
component that died, and does not handle SIGTERM (its components outlive it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.paths import REPO

SCRIPT = REPO / "scripts" / "airflow-local.py"

FAKE_AIRFLOW = """#!{python}
import http.server, os, subprocess, sys, threading, time

cmd = sys.argv[1]
die = os.environ.get("FAKE_DIE")
if cmd == "standalone":
    open(os.path.join(os.environ["AIRFLOW_HOME"], "standalone-started"), "w").close()
    procs = []
    def start(name):
        procs.append(subprocess.Popen(["airflow", name]))  # like standalone: PATH lookup, never reaped
    for name in ("scheduler", "dag-processor", "api-server", "triggerer"):
        threading.Thread(target=start, args=(name,), name=name).start()
    while True:
        time.sleep(1)
elif cmd == die:
    print(f"{{cmd:10}} | boom: the {{cmd}} broke", flush=True)
    sys.exit(1)
elif cmd == "api-server" and not os.environ.get("FAKE_API_SILENT"):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/api/v2/monitor/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("0.0.0.0", int(os.environ["AIRFLOW__API__PORT"])), Health).serve_forever()
else:
    while True:
        time.sleep(1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours(marker: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose command line names ``marker`` (the fake's folder)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if p.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
    return found


class Launch:
    """The launcher under test, its stderr collected line by line."""

    def __init__(self, tmp_path: Path, port: int, **env: str) -> None:
        self.bin = tmp_path / "fakebin"
        self.bin.mkdir(exist_ok=True)
        fake = self.bin / "airflow"
        fake.write_text(FAKE_AIRFLOW.format(python=sys.executable))
        fake.chmod(0o755)
        self.home = tmp_path / "home"
        full = {
            "PATH": "/usr/bin:/bin",  # no venv: the launcher must put the bin folder first itself
            "AIRFLOW_LOCAL_BIN": str(self.bin),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW_ML_HOME": str(tmp_path / "ml"),
            "AIRFLOW_PORT": str(port),
            **env,
        }
        self.err: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.proc.poll() is None or text in self.stderr, self.stderr
            assert time.monotonic() < deadline, f"no {text!r} in {timeout} s:\n{self.stderr}"
            time.sleep(0.2)

    def finish(self, timeout: float = 40) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def cleanup(self) -> None:
        """Whatever a failed test left: only processes this test started (the fake's folder in their command)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for p in ours(str(self.bin)):
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@pytest.fixture
def launch(tmp_path):
    started: list[Launch] = []

    def start(port: int, **env: str) -> Launch:
        started.append(Launch(tmp_path, port, **env))
        return started[-1]

    yield start
    for one in started:
        one.cleanup()


def test_a_taken_port_stops_before_starting_and_names_the_holder_and_AIRFLOW_PORT(launch):
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        run = launch(port)
        assert run.finish() == 2
    assert f"port {port} is already in use (pid {os.getpid()}" in run.stderr
    assert f"AIRFLOW_PORT={port + 1}" in run.stderr
    assert not (run.home / "standalone-started").exists()


def test_starts_without_the_venv_on_path_and_sigterm_leaves_no_component_running(launch):
    run = launch(free_port())
    run.wait_for("the api-server answers on")
    assert len(ours(str(run.bin))) == 5  # standalone and its four components
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 0
    assert "SIGTERM: stopping every component" in run.stderr
    assert ours(str(run.bin)) == []


def test_a_component_that_dies_stops_everything_and_is_named_with_its_last_lines(launch):
    run = launch(free_port(), FAKE_DIE="scheduler")
    assert run.finish() == 1
    assert "scheduler died during start-up; stopping every component" in run.stderr
    assert "boom: the scheduler broke" in run.stderr
    assert ours(str(run.bin)) == []


def test_an_api_server_that_never_answers_ends_start_up_at_the_bound(launch):
    port = free_port()
    run = launch(port, FAKE_API_SILENT="1", AIRFLOW_START_TIMEOUT="3")
    assert run.finish() == 1
    assert f"the api-server did not answer on port {port} within 3 s (AIRFLOW_START_TIMEOUT)" in run.stderr
    assert ours(str(run.bin)) == []
