"""Handing memory the process has already freed back to the OS, where a peak would otherwise keep it."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from typing import Any


def release_free_memory() -> None:
    """Return freed memory to the OS, so the next allocations do not add to the peak.

    Freed blocks stay with their allocator: Arrow's pool (mimalloc or jemalloc), and glibc's
    heap for numpy and pandas (after a large free, glibc raises its mmap threshold, so later
    arrays of the same size come from the heap, which only shrinks at its top). Both give
    them back on request; it takes milliseconds.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, loaded once (the trainer calls this after every encoded column); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
        return ctypes.CDLL("libc.so.6").malloc_trim
    return None
