"""Drift benchmark: our one-scan check on DuckDB vs Evidently's DataDriftPreset on the same rows.

Generates a reference and a current dataset (``--rows`` each, 20 features by default: 70%
numeric, the rest categorical with 30 to 120 categories, a few columns shifted), builds our
reference profile from the reference once (as training does; timed apart), loads the
current rows as one partition of a DuckDB ``features`` table, then runs each path in its
own fresh process so that peak RSS is per path:

- ours: ``core.drift.scan``: one SQL scan counts every column into the stored bins, then the
  metrics from the bins. Also run on half the rows, to show peak RSS does not grow.
- evidently: read both Parquet files into pandas and run ``Report([DataDriftPreset()])``, in
  ``bench/.venv-evidently`` (created here with uv from bench/requirements-evidently.txt;
  Evidently is never a dependency of the provider). When it cannot be installed, a labelled
  pandas re-binning baseline stands in.
- numpy: the straightforward reference (``numpy_counts`` + ``numpy_metrics`` on the raw
  current values); the JSON reports the largest PSI / JS / L-inf difference from ours.

The last line of output is JSON (see bench/README.md).

    .venv/bin/python bench/drift.py [--rows 1000000] [--features 20] [--repeat 1] [--baseline evidently|pandas]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EVIDENTLY_VENV = BENCH / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = BENCH / "requirements-evidently.txt"
DAY = "2026-03-31"
CHUNK = 1_000_000
EPSILON = 1e-4


def _peak_rss_mb() -> float:
    """Peak RSS of this process, in MB (macOS reports bytes, Linux KiB)."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)


def _columns(features: int) -> tuple[list[str], list[str]]:
    """Numeric and categorical column names: 70% numeric."""
    numeric = max(1, round(features * 0.7))
    return [f"x{i:02d}" for i in range(numeric)], [f"c{i:02d}" for i in range(features - numeric)]


# --- workers (each in its own process) ------------------------------------------------------------


def worker_setup(workdir: Path, rows: int, features: int) -> dict[str, Any]:
    """Write reference and current Parquet, the reference profile, and DuckDB tables of all and of half the rows."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.training.profile import build_profile

    numeric, categorical = _columns(features)

    def chunk(seed: int, n: int, drifted: bool) -> pa.Table:
        rng = np.random.default_rng(seed)
        cols: dict[str, Any] = {}
        for i, name in enumerate(numeric):
            kind = i % 3
            shift = drifted and i % 5 == 0  # every fifth numeric column moves
            if kind == 0:
                x = rng.normal(0.3 if shift else 0.0, 1.0, n)
            elif kind == 1:
                x = rng.lognormal(0.0, 1.3 if shift else 1.0, n)
            else:
                x = rng.poisson(4.5 if shift else 3.0, n).astype(np.float64)
            x[rng.random(n) < 0.01] = np.nan  # 1% nulls
            cols[name] = pa.array(x, from_pandas=True)
        for j, name in enumerate(categorical):
            k = 30 + 30 * (j % 4)  # 30 .. 120 categories: some beyond the profile's top 50
            weights = 1 / np.arange(1, k + 1) ** (0.6 if drifted and j % 3 == 0 else 1.0)
            codes = rng.choice(k, n, p=weights / weights.sum())
            cols[name] = pa.DictionaryArray.from_arrays(codes.astype(np.int32), [f"{name}_v{v}" for v in range(k)])
        return pa.table(cols)

    def write(path: Path, seed: int, n: int, drifted: bool) -> None:
        writer = None
        for start in range(0, n, CHUNK):
            table = chunk(seed + start, min(CHUNK, n - start), drifted)
            table = table.cast(
                pa.schema([(f.name, pa.string() if f.name in categorical else f.type) for f in table.schema])
            )
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()

    started = time.monotonic()
    write(workdir / "reference.parquet", 1, rows, drifted=False)
    write(workdir / "current.parquet", 2, rows, drifted=True)
    seconds_data = time.monotonic() - started

    started = time.monotonic()
    ref = pd.read_parquet(workdir / "reference.parquet")
    for name in categorical:
        ref[name] = ref[name].astype("category")
    types = {c: "FLOAT64" for c in numeric} | {c: "STRING" for c in categorical}
    profile = build_profile(ref, types)
    seconds_profile = time.monotonic() - started
    (workdir / "profile.json").write_text(json.dumps(profile))
    del ref

    for name, fraction in (("full", 1), ("half", 2)):
        wh = DuckDBWarehouse(workdir / f"{name}.duckdb")
        with wh.connect() as con:
            con.execute(
                f"CREATE TABLE features AS SELECT DATE '{DAY}' AS as_of_date, * "
                f"FROM read_parquet('{workdir / 'current.parquet'}') LIMIT {rows // fraction}"
            )
    return {"seconds_data": seconds_data, "seconds_profile": seconds_profile, "peak_rss_mb": _peak_rss_mb()}


def _limit_duckdb_memory(memory_limit: str) -> None:
    """Give every DuckDB connection ``memory_limit``, so its buffer cache cannot grow with the rows scanned.

    DuckDB keeps the blocks a scan read in its buffer cache, inside this process, up to
    ``memory_limit`` (default: 80% of RAM). DuckDBWarehouse has no setting for it yet, so the
    benchmark sets it here; BigQuery scans outside the process and needs none.
    """
    import duckdb

    connect = duckdb.connect

    def limited(database: str = ":memory:", read_only: bool = False, config: dict | None = None) -> Any:
        return connect(database, read_only=read_only, config={**(config or {}), "memory_limit": memory_limit})

    duckdb.connect = limited  # type: ignore[assignment]


def worker_ours(workdir: Path, database: str, memory_limit: str = "") -> dict[str, Any]:
    """Our check: one scan into the stored bins, metrics from the bins; the metrics go to a file for the numpy check."""
    import datetime as dt

    if memory_limit:
        _limit_duckdb_memory(memory_limit)

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.contract.spec import DriftSpec
    from airflow_ml_provider.core.drift.bins import profile_bins
    from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS, Scan, run_scan
    from airflow_ml_provider.core.drift.verdict import compare

    started = time.monotonic()
    warehouse = DuckDBWarehouse(workdir / database)
    bins = profile_bins(json.loads((workdir / "profile.json").read_text()))
    counts = run_scan(warehouse, Scan("features", "as_of_date", tuple(bins.values())), dt.date.fromisoformat(DAY))
    results = compare(bins, counts, DriftSpec(min_rows=1), table="features")
    seconds = time.monotonic() - started
    metrics = {r.column: r.metrics for r in results if r.segment == ALL_SEGMENTS}
    (workdir / f"ours-{database}.json").write_text(json.dumps(metrics))
    return {
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rows": int(counts[ALL_SEGMENTS][next(iter(bins))].sum()),
        "drifted": sorted(r.column for r in results if r.severity == "drift"),
    }


def worker_numpy(workdir: Path) -> dict[str, Any]:
    """Largest |ours - numpy reference| over PSI, JS distance and L-inf of every column."""
    import numpy as np
    import pyarrow.parquet as pq

    from airflow_ml_provider.core.drift.bins import numpy_counts, profile_bins
    from airflow_ml_provider.core.drift.metrics import numpy_metrics

    ours = json.loads((workdir / "ours-full.duckdb.json").read_text())
    bins = profile_bins(json.loads((workdir / "profile.json").read_text()))
    current = pq.read_table(workdir / "current.parquet")
    diff = 0.0
    for name, b in bins.items():
        reference = numpy_metrics(np.asarray(b.reference), numpy_counts(b, current[name].to_pylist()), EPSILON)
        diff = max(diff, *(abs(reference[m] - ours[name][m]) for m in ("psi", "js_distance", "l_inf")))
    return {"max_abs_diff": diff}


def worker_evidently(workdir: Path, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """Evidently's DataDriftPreset on both datasets read into pandas (runs in bench/.venv-evidently)."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    started = time.monotonic()
    ref = pd.read_parquet(workdir / "reference.parquet")
    cur = pd.read_parquet(workdir / "current.parquet")
    seconds_read = time.monotonic() - started
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    seconds = time.monotonic() - started
    drifted = snapshot.dict()["metrics"][0]["value"]["count"]
    import evidently

    return {
        "seconds": seconds,
        "seconds_read": seconds_read,
        "peak_rss_mb": _peak_rss_mb(),
        "drifted": int(drifted),
        "baseline": f"evidently {evidently.__version__} DataDriftPreset",
    }


def worker_pandas(workdir: Path, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """Fallback baseline: pull every row into pandas and re-bin the reference on each run, as row-based tools do."""
    import numpy as np
    import pandas as pd

    started = time.monotonic()
    ref = pd.read_parquet(workdir / "reference.parquet")
    cur = pd.read_parquet(workdir / "current.parquet")
    drifted = 0
    for name in numeric:
        r, c = ref[name].dropna().to_numpy(), cur[name].dropna().to_numpy()
        edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
        p = np.bincount(np.searchsorted(edges, r), minlength=len(edges) + 1) / len(r)
        q = np.bincount(np.searchsorted(edges, c), minlength=len(edges) + 1) / len(c)
        p, q = np.where(p > 0, p, EPSILON), np.where(q > 0, q, EPSILON)
        drifted += float(np.sum((q - p) * np.log(q / p))) >= 0.25
    for name in categorical:
        p, q = ref[name].value_counts(normalize=True).align(cur[name].value_counts(normalize=True), fill_value=0)
        p, q = np.where(p > 0, p, EPSILON), np.where(q > 0, q, EPSILON)
        drifted += float(np.sum((q - p) * np.log(q / p))) >= 0.25
    return {
        "seconds": time.monotonic() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "drifted": drifted,
        "baseline": "pandas re-binning",
    }


# --- the parent: small, starts one process per path ---------------------------------------------------


def _child(python: Path | str, *args: str) -> dict[str, Any]:
    """Run this file as a worker in a fresh process; its last stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([str(python), __file__, *args], stdout=subprocess.PIPE, text=True, check=False, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args[:1])} failed with exit code {out.returncode}; see its stderr above")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_evidently() -> Path | None:
    """bench/.venv-evidently's python, created with uv when missing; None when it cannot be installed."""
    python = EVIDENTLY_VENV / "bin" / "python"
    check = [str(python), "-c", "import evidently, pandas, pyarrow"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not on PATH, so Evidently cannot be installed; using the pandas baseline", file=sys.stderr)
        return None
    print(f"==> installing Evidently into {EVIDENTLY_VENV} (bench only)", file=sys.stderr)
    env = {**os.environ, "VIRTUAL_ENV": str(EVIDENTLY_VENV)}
    steps = [
        [uv, "venv", "-q", "--python", sys.executable, str(EVIDENTLY_VENV)],
        [uv, "pip", "install", "-q", "-r", str(EVIDENTLY_REQUIREMENTS)],
    ]
    for step in steps:
        if subprocess.run(step, env=env, check=False).returncode != 0:
            print("Evidently could not be installed; using the pandas baseline", file=sys.stderr)
            return None
    return python if subprocess.run(check, capture_output=True, check=False).returncode == 0 else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up once, time every path in its own process, and collect the numbers."""
    numeric, categorical = _columns(args.features)
    cols = [",".join(numeric), ",".join(categorical)]
    evidently = ensure_evidently() if args.baseline == "evidently" else None
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        workdir = Path(tmp)
        print(
            f"==> generating {args.rows:,} reference + {args.rows:,} current rows x {args.features} features",
            file=sys.stderr,
        )
        setup = _child(sys.executable, "setup", str(workdir), str(args.rows), str(args.features))
        # DuckDB pins about one 256 KB block per column and thread while scanning: leave room for that.
        limit = args.duckdb_memory_limit or f"{max(64, args.features * (os.cpu_count() or 1))}MB"
        runs = [_child(sys.executable, "ours", str(workdir), "full.duckdb", limit) for _ in range(args.repeat)]
        ours = min(runs, key=lambda r: r["seconds"])
        half = _child(sys.executable, "ours", str(workdir), "half.duckdb", limit)
        unlimited = _child(sys.executable, "ours", str(workdir), "full.duckdb", "")
        agreement = _child(sys.executable, "numpy", str(workdir))
        if evidently is not None:
            base = _child(evidently, "evidently", str(workdir), *cols)
        else:
            base = _child(sys.executable, "pandas", str(workdir), *cols)
            why = "chosen with --baseline pandas" if args.baseline == "pandas" else "Evidently could not be installed"
            base["baseline"] += f" (fallback: {why})"
    return {
        "rows": args.rows,
        "features": args.features,
        "baseline": base["baseline"],
        "seconds_ours": round(ours["seconds"], 3),
        "seconds_evidently": round(base["seconds"], 3),
        "seconds_evidently_read": round(base.get("seconds_read", 0.0), 3),
        "speedup_vs_evidently": round(base["seconds"] / ours["seconds"], 1),
        "peak_rss_mb": ours["peak_rss_mb"],
        "peak_rss_mb_half_rows": half["peak_rss_mb"],
        "peak_rss_mb_no_memory_limit": unlimited["peak_rss_mb"],
        "duckdb_memory_limit": limit,
        "peak_rss_mb_evidently": base["peak_rss_mb"],
        "rss_ratio_vs_evidently": round(base["peak_rss_mb"] / ours["peak_rss_mb"], 1),
        "max_abs_diff_vs_numpy": agreement["max_abs_diff"],
        "drifted_ours": len(ours["drifted"]),
        "drifted_evidently": base["drifted"],
        "seconds_profile_build": round(setup["seconds_profile"], 3),
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    """Parse the flags, or act as a worker when called by the parent."""
    if len(sys.argv) > 1 and sys.argv[1] in WORKERS:
        name, workdir, *rest = sys.argv[1:]
        print(json.dumps(WORKERS[name](Path(workdir), *rest)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=1_000_000, help="rows per dataset (e.g. 10e6)")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="runs of our check; the fastest counts")
    parser.add_argument("--baseline", choices=["evidently", "pandas"], default="evidently")
    parser.add_argument(
        "--duckdb-memory-limit",
        default="",
        help="DuckDB memory_limit for our check, bounding its buffer cache (default: 64MB, or features x CPUs MB)",
    )
    result = run(parser.parse_args())
    print(f"{'path':<44} {'seconds':>9} {'peak RSS MB':>12}")
    print(f"{'ours (DuckDB, one scan)':<44} {result['seconds_ours']:>9.2f} {result['peak_rss_mb']:>12.0f}")
    print(f"{'ours on half the rows':<44} {'':>9} {result['peak_rss_mb_half_rows']:>12.0f}")
    print(f"{'ours, DuckDB without memory_limit':<44} {'':>9} {result['peak_rss_mb_no_memory_limit']:>12.0f}")
    print(f"{result['baseline'][:44]:<44} {result['seconds_evidently']:>9.2f} {result['peak_rss_mb_evidently']:>12.0f}")
    print(
        f"speedup {result['speedup_vs_evidently']}x, peak RSS {result['rss_ratio_vs_evidently']}x smaller; "
        f"max |ours - numpy| {result['max_abs_diff_vs_numpy']:.2e}; drifted columns: ours "
        f"{result['drifted_ours']}, baseline {result['drifted_evidently']}"
    )
    print(json.dumps(result))


WORKERS: dict[str, Any] = {
    "setup": lambda w, rows, features: worker_setup(w, int(rows), int(features)),
    "ours": lambda w, database, limit: worker_ours(w, database, limit),
    "numpy": worker_numpy,
    "evidently": lambda w, num, cat: worker_evidently(w, num.split(","), [c for c in cat.split(",") if c]),
    "pandas": lambda w, num, cat: worker_pandas(w, num.split(","), [c for c in cat.split(",") if c]),
}

if __name__ == "__main__":
    main()
