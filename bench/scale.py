"""A day at scale: wall, CPU, peak RSS and rows of every daily step for worlds of N users (issue 26).

For each size (``--sizes``, default 10k and 100k users) a demo world is seeded with items and
events scaled as in ``core/demo.py`` (items = users / 5, 0.35 events per user and day, the demo's
tastes and weekly rhythm), its feature history is built (untimed), then each step of one day runs
in a process of its own on the embedded default (DuckDB), calling the stage function the CLI and
the DAG call:

- ``preflight``: ``check_sources`` (the events checks and every step's would-be rows);
- ``user_features``, ``item_features``, ``candidates``, ``features``: ``publish_step`` of each
  contract step (its SQL, its data checks, the partition write);
- ``labels``: ``publish_step`` of the label step, for the newest date whose horizon has passed;
- ``training_export``: ``prepare_training_job(export=True)``;
- ``training``: the local trainer subprocess (``LocalTrainingRunner``) and ``register_trained_model``;
- ``batch_inference``: ``run_batch_inference`` of the day (the champion: the model just trained);
- ``drift``: ``run_drift_check`` of the day (the once-per-version reference build runs before, untimed);
- ``outcomes``: ``evaluate_outcomes`` of the newest served date whose horizon has passed.

Wall time is the step process's, start to exit (it includes a fixed ~1-2 s of interpreter and
imports: the ``startup`` row measures it); CPU (user + system) and peak RSS come from
``os.wait4`` of that process, which include its own children (the trainer). The growth
exponent between two sizes is log(t2 / t1) / log(n2 / n1): 1 is linear. JSON last.

The contract is dags/recsys/pipeline.yaml with shorter training windows (2 fit dates, 1
early-stopping date, 1 test date instead of 14 + 7 + 7) and ``--rounds`` boosting rounds, so the
history a size needs is built in minutes; a full contract reads 7x the training rows.

    .venv/bin/python bench/scale.py [--sizes 10000 100000] [--keep DIR] [--rounds 50] [--sample-users 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUN_DATE = dt.date(2026, 3, 31)
MODEL = "recsys"
STEPS = (
    "startup",
    "preflight",
    "user_features",
    "item_features",
    "candidates",
    "features",
    "labels",
    "training_export",
    "training",
    "batch_inference",
    "drift",
    "outcomes",
)
#: Steps that set the world up; timed too, but not part of the day.
SETUP = ("seed", "history", "after_training")


# --- one step, in its own process ----------------------------------------------------------------


def _spec(workdir: Path) -> Any:
    from airflow_ml_provider.core.contract.spec import load_spec

    return load_spec(workdir / "pipeline.yaml")


#: ``--memory-limit``: the ``duckdb_memory_limit`` of every step's warehouse (None: DuckDB's 80% of RAM).
MEMORY_LIMIT: str | None = None


def _wh(workdir: Path) -> Any:
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(workdir / "warehouse.duckdb", memory_limit=MEMORY_LIMIT)


def _count(wh: Any, table: str, column: str, day: dt.date) -> int:
    rows = wh.query(f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = @d", {"d": day}, source="bench rows")
    return int(rows.column("n")[0].as_py())


def _history_dates(spec: Any) -> tuple[list[dt.date], dt.date]:
    """The as-of dates training reads (they need labels) and the served date outcomes judge."""
    from airflow_ml_provider.core.evaluation.horizon import newest_ready_date

    train, test = spec.training_dates(RUN_DATE)
    return sorted({*train, *test}), newest_ready_date(RUN_DATE, spec.windows.label_horizon_days)


def run_step(name: str, workdir: Path, users: int) -> dict[str, Any]:
    """Run one step of the day (or of the set-up) in this process; what it produced."""
    from tests.paths import SQL_DIR

    if name == "startup":
        import airflow_ml_provider.core.features.build  # noqa: F401  (the imports every step pays)

        return {"rows": 0}
    if name == "seed":
        return _seed(workdir, users)
    spec, wh = _spec(workdir), _wh(workdir)
    labelled, served = _history_dates(spec)
    if name == "history":
        # The feature stage itself (one transaction per date), as `airflow-ml features` runs it.
        from airflow_ml_provider.core.features.build import build_features

        others = sorted({served, RUN_DATE - dt.timedelta(days=1)} - set(labelled))
        build_features(wh, spec, SQL_DIR, sorted(labelled), labels=True)
        build_features(wh, spec, SQL_DIR, others)
        return {"rows": sum(_count(wh, spec.feature_table, "as_of_date", d) for d in labelled)}
    if name == "preflight":
        from airflow_ml_provider.core.features.build import check_sources

        results = check_sources(wh, spec, RUN_DATE, sql_dirs=[SQL_DIR])
        return {"rows": len(results)}
    step = spec.find_step(name)
    if step is not None and name in {s.table for s in spec.steps}:
        from airflow_ml_provider.core.features.build import publish_step
        from airflow_ml_provider.core.features.render import render_sql

        sql = render_sql(step, SQL_DIR, RUN_DATE, spec)
        return {"rows": publish_step(wh, spec, name, RUN_DATE, sql, sql_source=str(SQL_DIR / step.sql)).rows}
    if name == "labels":
        from airflow_ml_provider.core.features.build import publish_step
        from airflow_ml_provider.core.features.render import render_sql

        day, label = labelled[-1], spec.label.step
        sql = render_sql(label, SQL_DIR, day, spec)
        return {"rows": publish_step(wh, spec, label.table, day, sql, sql_source=str(SQL_DIR / label.sql)).rows}
    if name in ("training_export", "training"):
        return _training(name, workdir, spec, wh)
    if name == "after_training":
        from airflow_ml_provider.core.drift.run import run_drift_check
        from airflow_ml_provider.core.inference.batch import run_batch_inference

        run_batch_inference(wh, spec, served, run_id="scale-served")
        run_drift_check(wh, spec, served, run_id="scale-first", fail_on="never")  # the per-version references
        return {"rows": _count(wh, "recommendations", "prediction_date", served)}
    if name == "batch_inference":
        from airflow_ml_provider.core.inference.batch import run_batch_inference

        run_batch_inference(wh, spec, RUN_DATE, run_id="scale-day")
        return {"rows": _count(wh, "recommendations", "prediction_date", RUN_DATE)}
    if name == "drift":
        from airflow_ml_provider.core.drift.run import run_drift_check

        run_drift_check(wh, spec, RUN_DATE, run_id="scale-day", fail_on="never")
        return {"rows": _count(wh, "drift_results", "logical_date", RUN_DATE)}
    if name == "outcomes":
        from airflow_ml_provider.core.evaluation.outcomes import evaluate_outcomes
        from airflow_ml_provider.core.features.render import render_sql_file

        sql = render_sql_file(SQL_DIR / "recsys" / "outcomes.sql", served, spec)
        result, _ = evaluate_outcomes(wh, spec, served, sql, run_id="scale-day", today=RUN_DATE, force_replace=True)
        return {"rows": result.rows}
    raise SystemExit(f"bench/scale.py: unknown step {name!r}; known: {', '.join((*SETUP, *STEPS))}")


def _training(name: str, workdir: Path, spec: Any, wh: Any) -> dict[str, Any]:
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.run import (
        prepare_training_job,
        read_trained_envelope,
        register_trained_model,
    )

    version = (workdir / "version.txt").read_text().strip()
    options = {"run_date": RUN_DATE, "version": version, "artifacts_root": (workdir / "artifacts").as_uri()}
    pipeline = workdir / "pipeline.yaml"
    if name == "training_export":
        job = prepare_training_job(wh, spec, pipeline, export=True, **options)
        import pyarrow.parquet as pq

        data = Path(job.data_uri.removeprefix("file://"))
        files = [data] if data.is_file() else sorted(data.parent.glob(data.name)) if "*" in data.name else []
        files = files or sorted(data.rglob("*.parquet"))
        return {"rows": sum(pq.ParquetFile(f).metadata.num_rows for f in files)}
    job = prepare_training_job(wh, spec, pipeline, export=False, **options)
    LocalTrainingRunner().run(job)
    envelope = read_trained_envelope(job)
    registry = ModelRegistry(wh)
    register_trained_model(registry, job, envelope)
    registry.promote(envelope.name, envelope.version, blessed_by="bench/scale.py", reason="the day's champion")
    return {"rows": envelope.data.train_rows + envelope.data.early_stopping_rows + envelope.data.validation_rows}


def _seed(workdir: Path, users: int) -> dict[str, Any]:
    from airflow_ml_provider.core.demo import DemoConfig, generate

    spec = _spec(workdir)
    labelled, _ = _history_dates(spec)
    days = (RUN_DATE - labelled[0]).days + spec.windows.feature_lookback_days + 1
    world = generate(DemoConfig(users=users, items=max(users // 5, 10), days=days, end_date=RUN_DATE))
    wh = _wh(workdir)
    for table in ("users", "items", "events"):
        wh.replace_table(table, getattr(world, table))
    return {"rows": world.events.num_rows, "items": world.items.num_rows, "days": days}


# --- the driver -----------------------------------------------------------------------------------


def write_contract(workdir: Path, rounds: int, sample_users: float, horizon: int | None = None) -> None:
    """dags/recsys/pipeline.yaml with short training windows, ``rounds`` rounds and its model.py beside it."""
    import yaml

    raw = yaml.safe_load((REPO / "dags" / "recsys" / "pipeline.yaml").read_text())
    raw["windows"].update(training_days=2, early_stopping_days=1, validation_days=1)
    if horizon:
        raw["windows"]["label_horizon_days"] = horizon
    raw["model"].update(num_boost_round=rounds, early_stopping_rounds=5, sample_users=sample_users)
    raw["evaluation"]["sample_users"] = sample_users  # the test window too: 1M users x 30 candidates a date
    raw["evaluation"]["min_lists"] = 1
    (workdir / "pipeline.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    if raw["model"].get("hooks"):
        shutil.copy(REPO / "dags" / "recsys" / raw["model"]["hooks"], workdir / raw["model"]["hooks"])


def timed(name: str, workdir: Path, users: int) -> dict[str, Any]:
    """Run ``name`` in a child process: its wall, CPU and peak RSS (children included) and its output."""
    out = workdir / f"step-{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--workdir", str(workdir)]
    cmd += ["--users", str(users), "--out", str(out)]
    if MEMORY_LIMIT:
        cmd += ["--memory-limit", MEMORY_LIMIT]
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW_ML_HOME": str(workdir / "home")}
    start = time.perf_counter()
    with open(workdir / f"step-{name}.log", "w") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (workdir / f"step-{name}.log").read_text()[-2000:]
        raise SystemExit(f"bench/scale.py: step {name} at {users:,} users failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(out.read_text())
    return {
        "step": name,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10), 1),
        **result,
    }


#: The day's feature steps, in order: each reads the day's partitions of those before it.
FEATURE_STEPS = ("user_features", "item_features", "candidates", "features")


def upstream_steps(wanted: tuple[str, ...], done: Any = ()) -> list[str]:
    """The day's feature steps before the last one ``wanted``, neither wanted nor run in this world before.

    ``--steps features`` alone reads the day's candidates and user and item features: on a
    fresh world they must be written first (as set-up), or the step finds no rows.
    """
    ran = {Path(p).stem.removeprefix("step-") for p in done}
    last = max((FEATURE_STEPS.index(s) for s in wanted if s in FEATURE_STEPS), default=-1)
    return [s for s in FEATURE_STEPS[:last] if s not in wanted and s not in ran]


#: The steps that need no feature history: the day's feature steps read only the events.
NO_HISTORY = ("startup", "preflight", "user_features", "item_features", "candidates", "features")


def run_size(
    users: int,
    root: Path,
    rounds: int,
    sample_users: float,
    steps_wanted: tuple[str, ...] = STEPS,
    horizon: int | None = None,
) -> dict[str, Any]:
    """Seed (or reuse) the world of ``users`` and time every step of its day (or ``steps_wanted``)."""
    workdir = root / f"users-{users}"
    workdir.mkdir(parents=True, exist_ok=True)
    write_contract(workdir, rounds, sample_users, horizon)
    (workdir / "version.txt").write_text(f"scale-{int(time.time())}\n")
    setup = []
    ready = workdir / "history.done"
    seeded = workdir / "seed.done"
    if not seeded.exists():
        setup.append(timed("seed", workdir, users))
        print(f"  {users:>9,} users  {_line(setup[-1])}", file=sys.stderr, flush=True)
        seeded.write_text("ok\n")
    if not ready.exists() and not set(steps_wanted) <= set(NO_HISTORY):
        setup.append(timed("history", workdir, users))
        print(f"  {users:>9,} users  {_line(setup[-1])}", file=sys.stderr, flush=True)
        ready.write_text("ok\n")
    for name in upstream_steps(steps_wanted, done=workdir.glob("step-*.json")):
        setup.append(timed(name, workdir, users))  # the day's partitions a step asked for reads
        print(f"  {users:>9,} users  {_line(setup[-1])} (untimed: read by a step asked for)", file=sys.stderr)
    steps = []
    for name in (s for s in STEPS if s in steps_wanted):
        steps.append(timed(name, workdir, users))
        print(f"  {users:>9,} users  {_line(steps[-1])}", file=sys.stderr, flush=True)
        if name == "training":
            setup.append(timed("after_training", workdir, users))
    return {"users": users, "setup": setup, "steps": steps}


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['step']:<16} {row['wall_s']:>8.1f} s wall {row['cpu_s']:>8.1f} s cpu "
        f"{row['peak_rss_mb']:>8.0f} MB  {row.get('rows', 0):>12,} rows"
    )


def exponents(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """log(t2 / t1) / log(n2 / n1) of wall, CPU, peak RSS and rows, per step, between consecutive sizes."""
    out = []
    for a, b in itertools.pairwise(sizes):
        ratio = math.log(b["users"] / a["users"])
        at_b = {r["step"]: r for r in b["steps"]}
        for sa in a["steps"]:
            sb = at_b.get(sa["step"])
            if sb is None:
                continue
            row: dict[str, Any] = {"step": sa["step"], "from": a["users"], "to": b["users"]}
            for key in ("wall_s", "cpu_s", "peak_rss_mb", "rows"):
                x, y = sa.get(key) or 0, sb.get(key) or 0
                row[key] = round(math.log(y / x) / ratio, 2) if x > 0 and y > 0 else None
            out.append(row)
    return out


def machine() -> dict[str, Any]:
    """Cores, memory and the load average when the run started and ended."""
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line), "0")
    return {"cores": os.cpu_count(), "memory_gib": round(int(mem) / 2**20, 1), "load_start": os.getloadavg()}


def table(result: dict[str, Any]) -> str:
    """The Markdown table of bench/README.md: each step per size, then its growth exponent."""
    sizes = [s["users"] for s in result["sizes"]]
    head = "| step | " + " | ".join(f"{n:,} users: wall s / cpu s / MB / rows" for n in sizes)
    grow = [f"{a:,} -> {b:,}" for a, b in itertools.pairwise(sizes)]
    head += "".join(f" | exponent {g} (wall / cpu / MB)" for g in grow) + " |"
    lines = [head, "|" + "---|" * (1 + len(sizes) + len(grow))]
    for name in STEPS:
        cells = []
        for s in result["sizes"]:
            r = next((x for x in s["steps"] if x["step"] == name), None)
            cells.append(
                "-" if r is None else f"{r['wall_s']:.1f} / {r['cpu_s']:.1f} / {r['peak_rss_mb']:.0f} / {r['rows']:,}"
            )
        for a, b in itertools.pairwise(sizes):
            e = next((x for x in result["exponents"] if x["step"] == name and x["from"] == a and x["to"] == b), None)
            keys = ("wall_s", "cpu_s", "peak_rss_mb")
            cells.append("-" if e is None else " / ".join("-" if e[k] is None else f"{e[k]:.2f}" for k in keys))
        if all(c == "-" for c in cells[: len(sizes)]):
            continue
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="users per world")
    parser.add_argument("--keep", type=Path, help="keep the worlds (and their history) here and reuse them")
    parser.add_argument("--rounds", type=int, default=50, help="boosting rounds of the bench's training")
    parser.add_argument(
        "--sample-users", type=float, default=1.0, help="model.sample_users and evaluation.sample_users of the contract"
    )
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="time only these steps")
    parser.add_argument(
        "--label-horizon",
        type=int,
        help="label_horizon_days of the bench's contract (default the reference's 7). It is also the purge gap "
        "the training export reads, so 1 builds 7 as-of dates of history instead of 12: how 1M users fit a session",
    )
    parser.add_argument(
        "--memory-limit", help="duckdb_memory_limit of every step, e.g. 6GB (default: DuckDB's, 80%% of RAM)"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global MEMORY_LIMIT
    MEMORY_LIMIT = args.memory_limit

    if args.step:  # a child: one step
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        args.out.write_text(json.dumps(run_step(args.step, args.workdir, args.users), default=str))
        return None

    info = machine()
    started = time.monotonic()
    root = args.keep or Path(tempfile.mkdtemp(prefix="aml-scale-"))
    try:
        sizes = [
            run_size(n, root, args.rounds, args.sample_users, tuple(args.steps), args.label_horizon)
            for n in sorted(args.sizes)
        ]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    info["load_end"] = os.getloadavg()
    result = {
        "machine": info,
        "run_date": RUN_DATE.isoformat(),
        "rounds": args.rounds,
        "sample_users": args.sample_users,
        "memory_limit": args.memory_limit,
        "label_horizon_days": args.label_horizon or 7,
        "sizes": sizes,
        "seconds": round(time.monotonic() - started, 1),
    }
    result["exponents"] = exponents(sizes)
    print(table(result))
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
