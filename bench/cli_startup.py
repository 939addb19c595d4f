"""CLI start-up benchmark: wall time of the read-only ``airflow-ml`` commands on the demo warehouse.

Each command runs ``--runs`` times (default 5) as a fresh process (``python -m
airflow_ml_provider.cli``: what the ``airflow-ml`` console script imports and calls), from the
repository root (so the contract lookup finds ``dags/recsys``), on a
copy of the warehouse in a temp dir (a running demo's writer lock is never in the way). It
reports the median wall time and the median user + system CPU seconds per command, the
modules that cost the most to import in one ``-X importtime`` run of each command, and the
load average before and after. Each command is timed twice: as this environment runs it, and
with a bytecode cache in the temp dir (``PYTHONPYCACHEPREFIX``), as an install runs after its
first command; with ``PYTHONDONTWRITEBYTECODE`` set (as on this VM), every run compiles the
modules that have no ``.pyc`` yet (sqlglot's, duckdb's Python part, the provider's own).

The last line of output is JSON (see bench/README.md).

    .venv/bin/python bench/cli_startup.py [--runs 5] [--warehouse .ml/warehouse.duckdb] [--target 1.5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DAY = "2026-03-31"

#: The read-only commands issue 28 names, by label: arguments after ``airflow-ml``.
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "check --help": ["check", "--help"],
    "tables": ["tables", "--warehouse", "{wh}"],
    "models list": ["models", "list", "--warehouse", "{wh}"],
    "recommendations": ["recommendations", "--date", DAY, "--warehouse", "{wh}"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, float, int]:
    """Wall and CPU seconds of one run of ``argv`` in ``cwd``, and its exit code."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(f"  {' '.join(argv[1:])} exited {done.returncode}: {done.stderr.strip()[-300:]}", file=sys.stderr)
    return wall, _children_cpu() - cpu, done.returncode


def _top_imports(args: list[str], env: dict[str, str], cwd: Path = REPO, n: int = 4) -> list[tuple[str, float]]:
    """The ``n`` top-level imports with the largest cumulative time in one ``-X importtime`` run, in seconds."""
    argv = [sys.executable, "-P", "-X", "importtime", "-m", "airflow_ml_provider.cli", *args]
    err = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # a module imported by the program, not by another module
            rows.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command; the median counts (default 5)")
    parser.add_argument(
        "--warehouse",
        type=Path,
        help="the demo warehouse to copy (default: $AIRFLOW_ML_HOME/warehouse.duckdb, else .ml/)",
    )
    parser.add_argument("--target", type=float, default=1.5, help="goal for the median wall seconds (default 1.5)")
    parser.add_argument(
        "--source",
        type=Path,
        help="run the airflow_ml_provider package in this folder instead of the installed one (e.g. "
        "`git archive OLD airflow_ml_provider sql dags | tar -x -C /tmp/old`), to compare commits on one "
        "machine; commands run in that folder when it has a dags/",
    )
    args = parser.parse_args()
    if args.warehouse is None:
        args.warehouse = Path(os.environ.get("AIRFLOW_ML_HOME", REPO / ".ml")) / "warehouse.duckdb"
        if not args.warehouse.is_file():  # `make bench` on a machine without the demo: the other benches still count
            print(f"No demo warehouse at {args.warehouse}: run `make demo` first. Skipped.")
            print(json.dumps({"skipped": f"no warehouse at {args.warehouse}"}))
            return 0
    if not args.warehouse.is_file():
        parser.error(f"--warehouse {args.warehouse}: no such file. Run `make demo` first, or pass one.")
    if args.source and not (args.source / "airflow_ml_provider" / "cli.py").is_file():
        parser.error(f"--source {args.source}: no airflow_ml_provider/cli.py there.")
    # What the console script runs (`from airflow_ml_provider.cli import main`), so --source can swap the package.
    script = [sys.executable, "-P", "-m", "airflow_ml_provider.cli"]  # -P: not the cwd first on sys.path
    # Commands find the contract from the current folder: the source's own dags/ when it has one.
    cwd = args.source.resolve() if args.source and (args.source / "dags").is_dir() else REPO

    load_before = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        wh = Path(tmp) / "warehouse.duckdb"
        shutil.copyfile(args.warehouse, wh)
        env = {**os.environ, "AIRFLOW_ML_HOME": tmp}
        if args.source:
            paths = [str(args.source.resolve()), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        # As on an install whose bytecode is cached (the usual case after the first run): a fresh
        # cache in the temp dir, filled by the warm-up run, so the venv is left as it is.
        cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        results: dict[str, dict[str, object]] = {}
        for label, template in COMMANDS.items():
            cli_args = [a.format(wh=wh) for a in template]
            result: dict[str, object] = {}
            for suffix, run_env in (("", env), ("_bytecode_cached", cached)):
                _run([*script, *cli_args], run_env, cwd)  # warm the page cache (and the bytecode); not counted
                walls, cpus_used, codes = [], [], set()
                for _ in range(args.runs):
                    wall, cpu, code = _run([*script, *cli_args], run_env, cwd)
                    walls.append(wall)
                    cpus_used.append(cpu)
                    codes.add(code)
                result |= {
                    f"median_s{suffix}": round(statistics.median(walls), 3),
                    f"min_s{suffix}": round(min(walls), 3),
                    f"max_s{suffix}": round(max(walls), 3),
                    f"median_cpu_s{suffix}": round(statistics.median(cpus_used), 3),
                    f"exit_codes{suffix}": sorted(codes),
                }
            result["top_imports"] = [(m, round(s, 3)) for m, s in _top_imports(cli_args, env, cwd)]
            results[label] = result
    load_after = os.getloadavg()[0]

    print(f"airflow-ml start-up, median of {args.runs} runs (target: under {args.target:g} s wall)")
    print(f"  {'':<16}{'as run here':>28}  {'bytecode cached':>16}")
    header = f"{'wall s':>8}{'min':>7}{'max':>7}{'CPU s':>7}"
    print(f"  {'command':<16}{header}  {'wall s':>8}{'CPU s':>7}  slowest imports (cumulative s)")
    for label, r in results.items():
        imports = ", ".join(f"{m} {s:.2f}" for m, s in r["top_imports"])  # type: ignore[attr-defined]
        times = f"{r['median_s']:>8.2f}{r['min_s']:>7.2f}{r['max_s']:>7.2f}{r['median_cpu_s']:>7.2f}"
        cached_times = f"{r['median_s_bytecode_cached']:>8.2f}{r['median_cpu_s_bytecode_cached']:>7.2f}"
        print(f"  {label:<16}{times}  {cached_times}  {imports}")
    no_pyc = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    print(f"  load average (1 min) {load_before:.2f} before, {load_after:.2f} after, on {cpus} CPUs")
    if load_before > cpus / 2:
        print("  warning: the machine is busy; wall times measure the other processes too (compare CPU s)")
    if no_pyc:
        print("  note: PYTHONDONTWRITEBYTECODE is set, so modules without a .pyc are compiled on every run")
    slowest = max(r["median_s"] for r in results.values())  # type: ignore[type-var]
    slowest_cached = max(r["median_s_bytecode_cached"] for r in results.values())  # type: ignore[type-var]
    summary = {
        "runs": args.runs,
        "commands": results,
        "slowest_median_s": slowest,
        "target_s": args.target,
        "slowest_median_s_bytecode_cached": slowest_cached,
        "meets_target": slowest < args.target,  # type: ignore[operator]
        "meets_target_bytecode_cached": slowest_cached < args.target,  # type: ignore[operator]
        "load_avg_1m": round(load_before, 2),
        "load_avg_1m_after": round(load_after, 2),
        "cpus": cpus,
        "pythondontwritebytecode": no_pyc,
        "source": str(args.source) if args.source else None,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
