"""Memory benchmark: BatchRecommendOperator's peak RSS as candidate rows grow with a fixed number of users.

For each ``--rows`` count it runs ``batch_inference.py --users N --paths operator`` (a fresh
set-up and a fresh measured process each time) and keeps the operator's peak RSS. With the
users fixed, the output (users x k lists) is the same size at every row count, so any growth
is overhead: the goal is no growth from 5M to 50M rows and at most 1 GiB.

The last line of output is JSON (see bench/README.md).

    .venv/bin/python bench/memory.py [--rows 5000000,20000000,50000000] [--users 100000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GOAL_MB = 1024


def measure(rows: int, users: int, extra: list[str]) -> dict[str, Any]:
    """One batch_inference.py run at ``rows`` candidate rows; its JSON report."""
    cmd = [sys.executable, str(HERE / "batch_inference.py"), "--rows", str(rows), "--users", str(users)]
    out = subprocess.run([*cmd, "--paths", "operator", *extra], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"batch_inference.py --rows {rows} failed (exit {out.returncode}); see its log above.")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="5000000,20000000,50000000", help="comma-separated row counts")
    p.add_argument("--users", type=int, default=100_000, help="fixed users (default: %(default)s)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS (default: unset)")
    p.add_argument("--demo-users", type=int, default=1000, help="demo users to train on (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=60, help="boosting rounds of the model (default: %(default)s)")
    args = p.parse_args(argv)
    extra = ["--demo-users", str(args.demo_users), "--rounds", str(args.rounds)]
    extra += ["--threads", str(args.threads)] if args.threads else []
    load = os.getloadavg()[0]
    runs = []
    for rows in (int(r) for r in args.rows.split(",") if r):
        r = measure(rows, args.users, extra)
        runs.append(
            {
                "rows": r["rows"],
                "users": r["users"],
                "engine": r["engine_operator"],
                "seconds": r["seconds_operator"],
                "peak_rss_mb": r["peak_rss_mb_operator"],
            }
        )
        print(
            f"  {r['rows']:>12,} rows, {r['users']:,} users: peak RSS {r['peak_rss_mb_operator']:.0f} MB "
            f"in {r['seconds_operator']:.1f}s",
            flush=True,
        )
    peaks = [r["peak_rss_mb"] for r in runs]
    report = {
        "users": args.users,
        "load_avg_1m": round(load, 2),
        "runs": runs,
        "peak_rss_mb_max": max(peaks),
        "growth_mb_first_to_last": round(peaks[-1] - peaks[0], 1),
        "within_goal": max(peaks) <= GOAL_MB,
    }
    print(f"\nMemory benchmark: peak RSS {', '.join(f'{p:.0f}' for p in peaks)} MB (goal <= {GOAL_MB} MB, flat)")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
