"""backends/file_lock.py across real processes: readers share, a writer is alone, FileLock is a writer."""

from __future__ import annotations

import multiprocessing as mp
import sys

import pytest
from filelock import FileLock

from airflow_ml_provider.backends import file_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock(2) readers-writer locks are POSIX")


def _hold(path: str, shared: bool, held, release) -> None:
    lock = file_lock.acquire(path, shared=shared, timeout=5)
    held.set()
    release.wait(10)
    lock.release()


@pytest.fixture
def other_process(tmp_path):
    """Start a process that holds the lock (shared or exclusive) until told to release it."""
    ctx = mp.get_context("spawn")
    started = []

    def start(shared: bool):
        held, release = ctx.Event(), ctx.Event()
        proc = ctx.Process(target=_hold, args=(str(tmp_path / "w.lock"), shared, held, release))
        proc.start()
        assert held.wait(30), "the other process never took the lock"
        started.append((proc, release))
        return release

    yield start
    for proc, release in started:
        release.set()
        proc.join(10)


def test_readers_share_the_lock_and_a_writer_waits_for_them(tmp_path, other_process):
    path = str(tmp_path / "w.lock")
    release = other_process(shared=True)
    file_lock.acquire(path, shared=True, timeout=0).release()  # a second reader gets in at once
    with pytest.raises(file_lock.LockTimeout):
        file_lock.acquire(path, shared=False, timeout=0.2)
    release.set()
    file_lock.acquire(path, shared=False, timeout=10).release()


def test_a_writer_keeps_readers_and_writers_out(tmp_path, other_process):
    path = str(tmp_path / "w.lock")
    release = other_process(shared=False)
    for shared in (True, False):
        with pytest.raises(file_lock.LockTimeout):
            file_lock.acquire(path, shared=shared, timeout=0.2)
    release.set()
    file_lock.acquire(path, shared=True, timeout=10).release()


def test_a_filelock_holder_counts_as_a_writer_and_release_is_idempotent(tmp_path):
    path = str(tmp_path / "w.lock")
    other = FileLock(path)
    other.acquire()
    try:
        with pytest.raises(file_lock.LockTimeout):
            file_lock.acquire(path, shared=True, timeout=0.1)
    finally:
        other.release()
    lock = file_lock.acquire(path, shared=True, timeout=1)
    lock.release()
    lock.release()
    file_lock.acquire(path, shared=False, timeout=1).release()
