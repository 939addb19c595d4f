"""The trainer's phase log line: what bench/training.py reads to say where a run's time and memory go."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# In a fresh interpreter: the peak so far of a test process depends on the tests before it.
PHASES = """
import json
from airflow_ml_provider.core.trainer import _Phases
phases = _Phases()
sum(i * i for i in range(200_000))
phases.mark("read")
block = bytearray(64 * 2**20)
block[::4096] = b"x" * len(block[::4096])
phases.mark("grow")
print(phases.summary(rounds=3, best=2))
"""


def test_phases_report_wall_cpu_and_the_peak_memory_so_far():
    out = subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, check=True)
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(line["wall"]) == ["read", "grow"]
    assert list(line["cpu"]) == ["before", "read", "grow"] and line["cpu"]["read"] > 0
    assert (line["rounds"], line["best"]) == (3, 2)
    peaks = line["peak_rss_mb"]
    assert list(peaks) == ["before", "read", "grow"]
    if sys.platform != "linux":
        pytest.skip("peak memory checked on Linux only")
    assert peaks["grow"] >= peaks["read"] + 60  # the 64 MB are counted in the phase that took them
