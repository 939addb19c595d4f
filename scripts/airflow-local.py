"""Start `airflow standalone` for local use: checked port, bounded start-up, no orphans.

Usage (from the repo, no activated venv needed):  .venv/bin/python scripts/airflow-local.py
`make airflow` runs the same. Environment: AIRFLOW_PORT (default 8080), AIRFLOW_START_TIMEOUT
(seconds the api-server has to answer, default 300), AIRFLOW_HOME / AIRFLOW_ML_HOME (default
.airflow and .ml in the repo), AIRFLOW_LOCAL_BIN (the folder put first on PATH; default the
bin folder of the Python running this, i.e. the venv's).

Why a launcher: standalone starts each component as `airflow <component>` found on PATH, so
without the venv's bin there every component dies (FileNotFoundError) while standalone stays
up; it carries on without a UI when the api-server's port is taken; and it does not handle
SIGTERM, which leaves the scheduler, api-server and triggerer running. Here standalone runs
in its own process group; start-up ends (and everything is stopped) when a component dies or
the api-server does not answer in time, with the component named and its last lines; Ctrl-C
or SIGTERM stops the whole group.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")
HEALTH_PATH = "/api/v2/monitor/health"
STOP_GRACE_SECONDS = 20


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def port_holder(port: int) -> str | None:
    """Who listens on ``port`` (``pid 123: cmdline``), if it can be told."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                with contextlib.suppress(psutil.Error):
                    cmd = " ".join(psutil.Process(conn.pid).cmdline()) or psutil.Process(conn.pid).name()
                    return f"pid {conn.pid}: {cmd[:200]}"
                return f"pid {conn.pid}"
    except Exception:  # psutil missing or not allowed to list sockets: say less, never fail here
        return None
    return None


def port_in_use(port: int) -> bool:
    """Whether binding ``port`` as the api-server does (all interfaces, SO_REUSEADDR) would fail."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def answers(port: int) -> bool:
    """Whether the api-server answers its health endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def environment(port: int) -> dict[str, str]:
    """The environment `make airflow` sets, with the venv's bin first on PATH."""
    env = dict(os.environ)
    bin_dir = os.environ.get("AIRFLOW_LOCAL_BIN") or str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]])
    env.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
    env.setdefault("AIRFLOW_ML_HOME", str(REPO / ".ml"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    env["AIRFLOW__API__PORT"] = str(port)
    return env


class Standalone:
    """`airflow standalone` in its own process group, its output echoed and its tail kept."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=400)
        self.names: dict[int, str] = {}  # component processes by pid, learnt while they run
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("a", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(
            ["airflow", "standalone"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: one signal reaches every component
        )
        self.pgid = self.proc.pid
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.tail.append(line)
            self.log.write(line + "\n")
            self.log.flush()
            print(line, flush=True)

    def components(self) -> dict[str, str]:
        """Each component's state: ``running``, ``exited`` or ``not started``."""
        import psutil

        state = dict.fromkeys(COMPONENTS, "not started")
        # A thread whose `airflow <component>` could not even start (FileNotFoundError) has no process.
        for line in list(self.tail):
            for name in COMPONENTS:
                if line.startswith(f"Exception in thread {name}"):
                    state[name] = "exited"
        zombies = 0
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children():
                with contextlib.suppress(psutil.Error):
                    if child.status() == psutil.STATUS_ZOMBIE:  # standalone never reaps a component that died
                        if child.pid in self.names:
                            state[self.names[child.pid]] = "exited"
                        else:
                            zombies += 1
                        continue
                    if child.pid not in self.names:
                        args = child.cmdline()
                        name = next((a for a in args[1:] if a in COMPONENTS), None)
                        if name is not None:
                            self.names[child.pid] = name
                    if child.pid in self.names and state[self.names[child.pid]] != "exited":
                        state[self.names[child.pid]] = "running"
        if zombies:
            # Died before we read its command line (a zombie has none): the components not seen running.
            unseen = [n for n, s in state.items() if s == "not started"]
            for name in unseen if len(unseen) == zombies else []:
                state[name] = "exited"
            if len(unseen) != zombies:
                state["a component"] = "exited"
        return state

    def dead(self) -> list[str]:
        return [name for name, s in self.components().items() if s == "exited"]

    def lines_of(self, names: list[str], count: int = 30) -> list[str]:
        """The last lines of ``names`` (standalone prefixes each with its component), else of everything."""
        picked = [ln for ln in self.tail if any(ln.startswith(f"{n:10} |") or f"thread {n}" in ln for n in names)]
        return (picked or list(self.tail))[-count:]

    def stop(self) -> None:
        """SIGTERM the whole group (and any descendant that left it), then SIGKILL what is left."""
        import psutil

        procs: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            procs = psutil.Process(self.proc.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGTERM)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        _, alive = psutil.wait_procs(procs, timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.reader.join(timeout=2)
        self.log.close()


class Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def main() -> int:
    port = int(os.environ.get("AIRFLOW_PORT") or 8080)
    timeout = float(os.environ.get("AIRFLOW_START_TIMEOUT") or 300)
    if port_in_use(port):
        holder = port_holder(port)
        say(
            f"port {port} is already in use{f' ({holder})' if holder else ''}, so the api-server could not "
            f"serve the UI there. Stop that process, or pick another port: AIRFLOW_PORT={port + 1} make airflow "
            f"(or AIRFLOW_PORT={port + 1} .venv/bin/python scripts/airflow-local.py)."
        )
        return 2
    env = environment(port)
    if shutil.which("airflow", path=env["PATH"]) is None:
        say(f"no `airflow` executable in {env['PATH'].split(os.pathsep)[0]}: run `make install` first.")
        return 2
    airflow_home = Path(env["AIRFLOW_HOME"])
    log_path = airflow_home / "standalone.log"
    say(f"starting airflow standalone (AIRFLOW_HOME={airflow_home}; log: {log_path})")
    say(
        f"Airflow UI on http://localhost:{port} (user admin; password in "
        f"{airflow_home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops every component"
    )

    def on_signal(signum: int, _frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    standalone: Standalone | None = None
    try:
        standalone = Standalone(env, log_path)
        started = time.monotonic()
        ready = False
        while True:
            time.sleep(1)
            if standalone.proc.poll() is not None:
                say(f"airflow standalone exited with code {standalone.proc.returncode}; its last lines:")
                print("\n".join(standalone.lines_of([])), file=sys.stderr)
                return 1
            dead = standalone.dead()
            if dead:
                say(
                    f"{', '.join(dead)} died{' during start-up' if not ready else ''}; stopping every component. "
                    f"Last lines of {', '.join(dead)} (whole log: {log_path}):"
                )
                print("\n".join(standalone.lines_of(dead)), file=sys.stderr)
                return 1
            if not ready and answers(port):
                ready = True
                say(f"the api-server answers on http://localhost:{port} ({time.monotonic() - started:.0f} s)")
            if not ready and time.monotonic() - started > timeout:
                say(
                    f"the api-server did not answer on port {port} within {timeout:.0f} s "
                    f"(AIRFLOW_START_TIMEOUT); stopping every component. Components: {standalone.components()}. "
                    f"Last lines (whole log: {log_path}):"
                )
                print("\n".join(standalone.lines_of(["api-server"])), file=sys.stderr)
                return 1
    except Stop as stop:
        say(f"{stop}: stopping every component")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if standalone is not None:
            standalone.stop()
            say("stopped")


if __name__ == "__main__":
    sys.exit(main())
