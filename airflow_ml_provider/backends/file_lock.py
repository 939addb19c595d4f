"""An inter-process readers-writer lock on a file: any number of readers, or one writer.

The embedded warehouse's tasks run in separate processes. DuckDB lets many processes open a
file read-only at once, but only one open it for writing, and never both; so readers take
the lock shared and writers exclusive (``flock(2)``), and sharded inference's shards read their
candidates in parallel. Where ``flock`` does not exist (Windows) every holder is exclusive,
as with one ``filelock.FileLock``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from filelock import FileLock
from filelock import Timeout as _FileLockTimeout

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Polling interval bounds while waiting: short first (locks are held for milliseconds), then capped.
_FIRST_WAIT, _MAX_WAIT = 0.002, 0.1


class LockTimeout(TimeoutError):
    """The lock stayed held by another process past the timeout."""


class HeldLock:
    """A lock held on a file; ``release`` lets it go (once)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def acquire(path: str, *, shared: bool, timeout: float) -> HeldLock:
    """Take ``path``'s lock, shared (a reader) or exclusive (a writer); ``LockTimeout`` after ``timeout`` seconds.

    Compatible with ``filelock.FileLock`` on the same path, which takes ``flock`` exclusively.
    """
    if fcntl is None:  # pragma: no cover - Windows
        lock = FileLock(path)
        try:
            lock.acquire(timeout=timeout)
        except _FileLockTimeout as err:
            raise LockTimeout(path) from err
        return HeldLock(lock.release)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, wait = time.monotonic() + timeout, _FIRST_WAIT
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return HeldLock(lambda: os.close(fd))  # closing the descriptor releases the flock
        except BlockingIOError:
            if time.monotonic() + wait > deadline:
                os.close(fd)
                raise LockTimeout(path) from None
            time.sleep(wait)
            wait = min(2 * wait, _MAX_WAIT)
        except BaseException:
            os.close(fd)
            raise
