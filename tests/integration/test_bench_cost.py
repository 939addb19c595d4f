"""``bench/cost.py`` at a tiny size: one daily run recorded on the local BigQuery and priced for two world sizes.

Runs the script as ``make bench`` does (its own process, JSON last), on a 120-user recorded world,
priced for 1,000 and 10,000 users, and checks what the table in docs/gcp.md relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.integration


def test_cost_bench_prices_every_query_job_of_a_day() -> None:
    done = subprocess.run(
        [sys.executable, "bench/cost.py", "--record-users", "120", "--users", "1000", "10000", "--history-days", "30"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    small, large = result["worlds"]["1000"], result["worlds"]["10000"]
    assert result["price_per_tib_usd"] == 6.25
    # Every stage of the day sent query jobs, and the same ones in both worlds.
    assert set(small["stages"]) == {"features", "inference", "drift", "outcomes"}
    assert small["jobs"] == large["jobs"] == sum(s["jobs"] for s in small["stages"].values())
    # At most 10 MB of minimum per job and table; the bill grows with the world, the minimums do not.
    assert large["bytes_processed"] > 5 * small["bytes_processed"]
    assert large["bytes_billed"] >= small["bytes_billed"] >= 10 * 2**20
    assert small["cost_usd"] == pytest.approx(small["bytes_billed"] / 2**40 * 6.25, abs=1e-4)
    assert "ONE DAILY RUN" in done.stdout
