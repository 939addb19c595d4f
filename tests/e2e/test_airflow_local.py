"""`make airflow`'s launcher on a real `airflow standalone`: starts without the venv on PATH, SIGTERM leaves nothing.

The cheap cases (a taken port, a component that dies, the start-up bound) run against a fake
`airflow` in tests/integration/test_airflow_local.py; this is the one real start (about 30 s
on two cores), with an empty DAGs folder so only the components' own start-up is timed.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.paths import REPO

pytestmark = pytest.mark.integration


def test_real_standalone_starts_without_the_venv_on_path_and_sigterm_leaves_no_orphan(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "dags").mkdir()
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",  # no activated venv
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_ML_HOME": str(tmp_path / "ml"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW_PORT": str(port),
        "AIRFLOW_START_TIMEOUT": "300",
    }
    err = tmp_path / "launcher.err"
    with err.open("w") as err_file:
        launcher = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "airflow-local.py")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            start_new_session=True,
        )
    started: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 330
        while "the api-server answers" not in err.read_text():
            assert launcher.poll() is None, err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(1)
        for p in psutil.Process(launcher.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                started[p.pid] = p.create_time()
        # The api-server renames its process (it answered, which is what counts); the others keep their argv.
        names = {a for p in map(psutil.Process, started) for a in p.cmdline()[2:3]}
        assert {"standalone", "scheduler", "dag-processor", "triggerer"} <= names and len(started) >= 5, names

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 0, err.read_text()
        assert left(started) == [], err.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            launcher.kill()
        for pid in left(started):  # only processes this test started
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def left(started: dict[int, float]) -> list[int]:
    """The processes of ``started`` still running (same pid and start time, not a zombie)."""
    alive = []
    for pid, created in started.items():
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
    return alive
