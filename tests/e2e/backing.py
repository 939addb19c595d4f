"""The backing services of docker-compose.yaml, run natively for the e2e cluster: PostgreSQL and Redis.

``PostgresServer`` makes a throwaway cluster with Debian's ``initdb`` in a temp directory
and runs ``postgres`` on a free port of 127.0.0.1; ``RedisServer`` runs ``redis-server``
the same way. Both run in a session of their own, so ``stop()`` can always find and end
every process. ``initdb`` and ``postgres`` refuse to run as root, so as root (CI) they run
as the ``postgres`` system user that Debian's package creates, in a directory it owns.

``missing()`` says which binary is absent and how to install it, for a skip reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install it with scripts/install-system-deps.sh (make system-deps)"
_PG_ROOT = Path("/usr/lib/postgresql")
_INITDB = ("--auth=scram-sha-256", "--no-sync", "--encoding=UTF8", "--locale=C.UTF-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path | None:
    """Debian's PostgreSQL server binaries (the newest major installed), else ``initdb`` on PATH."""
    majors = sorted(
        (int(p.name), p / "bin") for p in (_PG_ROOT.iterdir() if _PG_ROOT.is_dir() else ()) if p.name.isdigit()
    )
    for _, bindir in reversed(majors):
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def redis_binary() -> str | None:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


#: Python packages of the layout (requirements/constraints.txt pins them; the dev extra installs them).
PYTHON_PACKAGES = {
    "airflow.providers.celery": "apache-airflow-providers-celery",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "redis": "redis",
}


def missing() -> str | None:
    """Why the production layout cannot start here, or None."""
    absent = [dist for module, dist in PYTHON_PACKAGES.items() if not _importable(module)]
    if absent:
        return f"Python packages {absent} are not installed: make install (the dev extra, pinned in constraints.txt)"
    if pg_bindir() is None:
        return f"PostgreSQL server (Debian package `postgresql`, initdb/postgres) is not installed: {INSTALL_HINT}"
    if redis_binary() is None:
        return f"redis-server (Debian package `redis-server`) is not installed: {INSTALL_HINT}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return (
                "running as root but there is no `postgres` system user to run initdb/postgres as "
                "(Debian's postgresql package creates it)"
            )
    return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class _Server:
    """A child server process leading its own session, stopped by signal to the whole session."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.log_path: Path | None = None

    def _spawn(self, args: list[str], log_path: Path, **kwargs) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
            )

    @property
    def sid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not listening on {self.port} after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, self.stop_signal)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster: ``initdb`` in a temp dir, ``postgres`` on 127.0.0.1:<free port>."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: rolls back open transactions, does not wait for clients

    def __init__(self, user: str = "airflow", database: str = "airflow") -> None:
        super().__init__()
        self.user, self.database = user, database
        self.password = secrets.token_hex(16)
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        """The metadata DB as docker-compose.yaml writes it (``postgresql+psycopg2://...``)."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> dict:
        """Run as the ``postgres`` user when we are root (initdb and postgres refuse root)."""
        return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}

    def start(self, timeout: float = 60.0) -> PostgresServer:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError(missing())
        # Not under pytest's tmp dir: that is 0700 root, which the postgres user cannot enter.
        self.dir = Path(tempfile.mkdtemp(prefix="aml-e2e-pg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        pwfile.chmod(0o600)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        out = subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.dir / "data"), "-U", self.user, f"--pwfile={pwfile}", *_INITDB],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.dir,
            check=False,
            **self._as_owner(),
        )
        pwfile.unlink()
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        # Durability settings off: a throwaway DB; what the tests check (locking, transactions) is unchanged.
        settings = ["listen_addresses=127.0.0.1", f"port={self.port}", f"unix_socket_directories={self.dir}"]
        settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"]
        args = [str(bindir / "postgres"), "-D", str(self.dir / "data")]
        for setting in settings:
            args += ["-c", setting]
        log = self.dir / "postgres.log"
        if os.geteuid() == 0:
            log.touch()
            os.chown(log, pwd.getpwnam("postgres").pw_uid, -1)
        self._spawn(args, log, env=env, cwd=self.dir, **self._as_owner())
        self._wait_ready(timeout)
        self._create_database()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
            if re.search(r"ready to accept connections", self.log_tail(50)):
                self._wait_port(timeout=max(1.0, deadline - time.monotonic()))
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres not ready after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _create_database(self) -> None:
        import psycopg2

        con = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres"
        )
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            con.close()

    def stop(self, grace: float = 15.0) -> None:
        super().stop(grace)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class RedisServer(_Server):
    """``redis-server`` on 127.0.0.1:<free port>, nothing persisted (the Celery broker)."""

    name = "redis"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir

    @property
    def url(self) -> str:
        """The broker as docker-compose.yaml writes it (``redis://:@host:port/0``)."""
        return f"redis://:@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError(missing())
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--daemonize", "no", "--protected-mode", "yes"]
        self._spawn(args, self.workdir / "redis.log", cwd=self.workdir)
        self._wait_port(timeout)
        return self
