"""Memory benchmark: batch inference's peak RSS as candidate rows grow with a fixed number of users.

One set-up (batch_inference.py's: demo world, model, champion), then for each ``--rows``
count: rewrite the candidate partition with that many rows spread round-robin over
``--users`` users, and run the stage's ``recommend_day`` (what the task runs) in a fresh process, keeping
its peak RSS. The compiled model is cached before the first measured run, so no run pays
LLVM's compile memory. With the users fixed, the output (users x k lists) is the same at
every row count, so any growth is overhead: the goal is no growth from 5M to 50M rows and
at most 1 GiB.

Each run's peak is split into: the baseline of an empty run (the worker's imports: Airflow,
LightGBM, DuckDB, pandas, lleaves; then the champion loaded), measured once in a fresh
process; the output, the Arrow size of the kept lists (users x k rows of user_id, item_id,
score, rank), which grows with users, not rows; and the overhead, the rest: DuckDB's read,
the batches in flight, the running top-k and the allocators' slack.

The last line of output is JSON (see bench/README.md).

    .venv/bin/python bench/memory.py [--rows 5000000,20000000,50000000] [--users 100000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PIPELINE = HERE.parent / "dags" / "recsys" / "pipeline.yaml"
GOAL_MB = 1024

log = logging.getLogger("bench.memory")


def _child(*args: str) -> dict[str, Any]:
    """batch_inference.py as a worker in a fresh interpreter; its last stdout line is its JSON result."""
    cmd = [sys.executable, str(HERE / "batch_inference.py"), *args]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench worker {args[1]} failed (exit {out.returncode}); see its log above.")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up once, then measure the operator at each row count."""
    load = os.getloadavg()[0]
    counts = [int(float(r)) for r in args.rows.split(",") if r]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        os.environ.setdefault("AIRFLOW_HOME", str(Path(tmp) / "airflow"))
        common = ["--workdir", tmp, "--pipeline", str(args.pipeline)]
        setup = ["--rows", str(counts[0]), "--users", str(args.users), "--demo-users", str(args.demo_users)]
        _child("--worker", "setup", *common, *setup, "--rounds", str(args.rounds))
        _child("--worker", "compile", *common)
        baseline = _child("--worker", "baseline", *common)
        log.info(
            "empty run: %.0f MB after imports, %.0f MB with the model loaded",
            baseline["peak_rss_mb_imports"],
            baseline["peak_rss_mb_model"],
        )
        for i, rows in enumerate(counts):
            if i:
                started = time.monotonic()
                _child("--worker", "candidates", *common, "--rows", str(rows), "--users", str(args.users))
                log.info("wrote %d candidate rows in %.0fs", rows, time.monotonic() - started)
            r = _child("--worker", "operator", *common)
            keys = ("candidates", "users", "rows_written", "engine", "peak_rss_mb", "output_mb")
            runs.append({k: r[k] for k in keys})
            runs[-1]["overhead_mb"] = round(r["peak_rss_mb"] - baseline["peak_rss_mb_model"] - r["output_mb"], 1)
            runs[-1]["seconds"] = round(r["seconds"], 1)
            log.info("%d rows, %d users: peak RSS %.0f MB in %.1fs", rows, r["users"], r["peak_rss_mb"], r["seconds"])
    peaks = [r["peak_rss_mb"] for r in runs]
    return {
        "users": args.users,
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "load_avg_1m": round(load, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "peak_rss_mb_imports": baseline["peak_rss_mb_imports"],
        "peak_rss_mb_model_loaded": baseline["peak_rss_mb_model"],
        "runs": runs,
        "peak_rss_mb_max": max(peaks),
        "growth_mb_first_to_last": round(peaks[-1] - peaks[0], 1),
        "overhead_growth_mb_first_to_last": round(runs[-1]["overhead_mb"] - runs[0]["overhead_mb"], 1),
        "within_goal": max(peaks) <= GOAL_MB,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="5000000,20000000,50000000", help="comma-separated row counts, ascending")
    p.add_argument("--users", type=int, default=100_000, help="fixed users (default: %(default)s)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS (default: unset)")
    p.add_argument("--demo-users", type=int, default=1000, help="demo users to train on (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=60, help="boosting rounds of the model (default: %(default)s)")
    p.add_argument("--pipeline", type=Path, default=PIPELINE, help="the contract (default: the reference one)")
    args = p.parse_args(argv)
    args.pipeline = args.pipeline.resolve()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    r = run(args)
    print(f"\nMemory benchmark, {r['users']:,} fixed users, load {r['load_avg_1m']} -> {r['load_avg_1m_after']}:")
    print(
        f"  empty run: {r['peak_rss_mb_imports']:.0f} MB after imports, "
        f"{r['peak_rss_mb_model_loaded']:.0f} MB with the model loaded (the baseline)"
    )
    for x in r["runs"]:
        print(
            f"  {x['candidates']:>12,} rows: peak RSS {x['peak_rss_mb']:>7.0f} MB = baseline + output "
            f"{x['output_mb']:.0f} MB ({x['rows_written']:,} rows) + overhead {x['overhead_mb']:.0f} MB, "
            f"{x['seconds']:>7.1f}s [{x['engine']}]"
        )
    print(f"  max {r['peak_rss_mb_max']:.0f} MB (goal <= {GOAL_MB}), growth {r['growth_mb_first_to_last']:+.0f} MB")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
