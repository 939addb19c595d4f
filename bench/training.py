"""Training benchmark: the TrainModelOperator local path vs bare ``lightgbm.train`` on the same rows.

Seeds the demo world into a DuckDB file in a temp dir, builds features and labels for the
training and validation as-of dates of pipeline.yaml (run date 2026-03-31), then times, each
in its own child process so peak RSS is per path:

- operator: the export to Parquet + ``LocalTrainingRunner().run(job)``, i.e. the trainer
  subprocess (read, checks, encoding, training with early stopping on the validation
  window, metrics, drift profile, envelope), as TrainModelOperator runs it locally.
- lean: the operator path again, on a copy of the contract with its optional costs off
  (no early stopping, num_boost_round fixed to the full run's best iteration, no bootstrap CI):
  the same trees and test metrics; the difference is what those options cost.
- raw: ``lightgbm.train`` on the training rows already in memory as a float matrix, with the
  envelope's params, group sizes and num_boost_round fixed to the model's best_iteration,
  so all paths train the same trees.

The last line of output is JSON (see bench/README.md).

    .venv/bin/python bench/training.py [--users 3000] [--days 60] [--repeat 1] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "dags" / "recsys" / "pipeline.yaml"
SQL_DIR = REPO / "sql"
RUN_DATE = dt.date(2026, 3, 31)
DRIFT_FROM = dt.date(2026, 3, 29)  # as in `make demo`

from _common import peak_rss_mb as _peak_rss_mb  # noqa: E402
from _common import warehouse as _warehouse  # noqa: E402

log = logging.getLogger("bench.training")


def _hooks_path(spec: Any, pipeline: Path) -> Path | None:
    return pipeline.parent / spec.model.hooks if spec.model.hooks else None


# --- set-up (a child process too, so the parent stays small; see _child) ----------------------


def prepare(workdir: Path, pipeline: Path, users: int, days: int) -> dict[str, Any]:
    """Seed the demo world, build features + labels, export the training data and save its matrix."""
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.training.job import training_data_sql, training_params

    spec = load_spec(pipeline)
    warehouse = _warehouse(workdir)
    started = time.monotonic()
    world = generate(DemoConfig(users=users, days=days, end_date=RUN_DATE, drift_from=DRIFT_FROM))
    for name in ("users", "items", "events"):
        warehouse.replace_table(name, getattr(world, name))
    log.info("seeded %d users, %d events in %.1fs", users, world.events.num_rows, time.monotonic() - started)

    started = time.monotonic()
    train_dates, valid_dates = spec.training_dates(RUN_DATE)
    build_features(warehouse, spec, SQL_DIR, [*train_dates, *valid_dates], labels=True)
    log.info(
        "built features and labels for %d as-of dates in %.1fs",
        len(train_dates) + len(valid_dates),
        time.monotonic() - started,
    )

    data_uri = warehouse.export_parquet(
        training_data_sql(spec), training_params(spec, RUN_DATE), storage.to_uri(workdir / "export"), source="bench"
    )
    matrix_dir = prepare_matrix(workdir, pipeline, data_uri, valid_dates[0])
    return {
        "validation_from": valid_dates[0].isoformat(),
        "matrix_dir": str(matrix_dir),
        "feature_names": [f.name for f in spec.features],
        "categorical": [f.name for f in spec.features if f.type == "STRING"],
    }


def prepare_matrix(workdir: Path, pipeline: Path, data_uri: str, validation_from: dt.date) -> Path:
    """The training rows as the trainer sees them (sorted, transformed, encoded), saved as .npy files."""
    import numpy as np

    from airflow_ml_provider.core.contract.model_hooks import load_hooks
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.training.data import LABEL, read_training_data, split_windows
    from airflow_ml_provider.core.training.encoding import encode, fit_categories

    spec = load_spec(pipeline)
    hooks = load_hooks(_hooks_path(spec, pipeline))
    user = spec.entities.user
    df = read_training_data(data_uri)
    df = df.sort_values(["as_of_date", user, spec.entities.item], kind="stable").reset_index(drop=True)
    # The fit window, as the trainer splits it: not the early-stopping window, not the purge gap.
    # (Everything before validation_from, as this used to take, is more rows: a different model.)
    train_df = split_windows(df, spec, validation_from)[0]
    train_df = hooks.transform(train_df.copy())
    x = encode(train_df, spec.features, fit_categories(train_df, spec.features)).matrix
    out = workdir / "matrix"
    out.mkdir()
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", train_df[LABEL].to_numpy(dtype=np.float64))
    np.save(out / "group.npy", train_df.groupby(["as_of_date", user], sort=False).size().to_numpy())
    return out


# --- the two measured paths (each in its own child process) ---------------------------------


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process (all its threads) or of its waited-for children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def lean_contract(workdir: Path, pipeline: Path, rounds: int) -> Path:
    """The contract with its optional training costs off, growing ``rounds`` trees (a copy in ``workdir``).

    ``model.early_stopping_rounds: 0`` (no early-stopping window read, binned or scored every
    round, and no patience rounds past the best) with ``num_boost_round`` set to the full run's
    best iteration, so it trains the same trees; ``evaluation.bootstrap_samples: 0`` (no CI of
    the lift). Everything else is the same contract.
    """
    import shutil

    import yaml

    raw = yaml.safe_load(pipeline.read_text())
    raw["model"].update(early_stopping_rounds=0, num_boost_round=rounds)
    raw.setdefault("evaluation", {})["bootstrap_samples"] = 0
    folder = workdir / "lean"
    folder.mkdir(exist_ok=True)
    hooks = raw["model"].get("hooks")
    if hooks:
        shutil.copy(pipeline.parent / hooks, folder / hooks)
    out = folder / "pipeline.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def worker_operator(
    workdir: Path, pipeline: Path, validation_from: dt.date, lean_rounds: int | None = None
) -> dict[str, Any]:
    """The training stage's export (``prepare_training_job``) + the local runner, as TrainModelOperator runs it.

    Registering is left out. ``lean_rounds``: run the lean contract (``lean_contract``) instead of ``pipeline``.
    """
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.training.run import prepare_training_job

    if lean_rounds:
        pipeline = lean_contract(workdir, pipeline, lean_rounds)
    spec = load_spec(pipeline)
    warehouse = _TimedExports(_warehouse(workdir))
    started, cpu_self, cpu_children = time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    # The stage exports the training rows and the truth (every positive of the horizons: end-to-end
    # metrics) and stages the contract and model.py beside the run, as the operator does.
    job = prepare_training_job(
        warehouse,  # type: ignore[arg-type]
        spec,
        pipeline,
        run_date=RUN_DATE,
        version=f"bench-{time.time_ns()}",
        artifacts_root=storage.to_uri(workdir / "artifacts"),
    )
    assert job.validation_from == validation_from
    exported, cpu_exported = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    phases: dict[str, Any] = {}

    class _Phases(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "Trainer phases: " in text:
                phases.update(json.loads(text.split("Trainer phases: ", 1)[1]))

    runner_log = logging.getLogger("airflow_ml_provider.backends.local_trainer")
    runner_log.setLevel(logging.INFO)
    runner_log.propagate = False  # the trainer's lines are read here, not printed
    runner_log.addHandler(_Phases())
    LocalTrainingRunner().run(job)
    seconds = time.perf_counter() - started
    cpu_trainer = _cpu(resource.RUSAGE_CHILDREN) - cpu_children
    out = {
        "seconds": seconds,
        "seconds_export": exported - started,
        "cpu_seconds": _cpu(resource.RUSAGE_SELF) - cpu_self + cpu_trainer,
        "cpu_seconds_export": cpu_exported - cpu_self,
        "cpu_seconds_export_truth": warehouse.cpu.get("evaluation truth export", 0.0),
        "cpu_seconds_trainer": cpu_trainer,
        "phases": phases,
        "peak_rss_mb_export": _peak_rss_mb(children=False),
        # ru_maxrss of a child starts at its parent's RSS at fork (here: after the export), so the
        # trainer's own peak is the VmHWM its phase log reports, where the OS has one.
        "peak_rss_mb_trainer": max(phases.get("peak_rss_mb", {}).values(), default=0) or _peak_rss_mb(own=False),
        "model_dir": job.model_dir,
    }
    out["peak_rss_mb"] = max(out["peak_rss_mb_export"], out["peak_rss_mb_trainer"])
    return out


class _TimedExports:
    """The warehouse, with the CPU seconds of each ``export_parquet`` call recorded by its source."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse
        self.cpu: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.warehouse, name)

    def export_parquet(self, *args: Any, source: str = "<sql>", **kwargs: Any) -> str:
        before = _cpu(resource.RUSAGE_SELF)
        try:
            return str(self.warehouse.export_parquet(*args, source=source, **kwargs))
        finally:
            self.cpu[source] = self.cpu.get(source, 0.0) + _cpu(resource.RUSAGE_SELF) - before


def worker_raw(matrix_dir: Path, params_file: Path) -> dict[str, Any]:
    """Bare lightgbm.train on the in-memory float matrix, the same params and number of trees."""
    import lightgbm as lgb
    import numpy as np

    spec = json.loads(params_file.read_text())
    x, y, group = (np.load(matrix_dir / f"{n}.npy") for n in ("x", "y", "group"))
    started, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    dtrain = lgb.Dataset(x, y, group=group, feature_name=spec["feature_names"], categorical_feature=spec["categorical"])
    booster = lgb.train(spec["params"], dtrain, num_boost_round=spec["num_boost_round"])
    seconds, cpu = time.perf_counter() - started, _cpu(resource.RUSAGE_SELF) - cpu
    (matrix_dir / "raw_model.txt").write_text(booster.model_to_string())
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": _peak_rss_mb(), "trees": booster.current_iteration()}


def _child(*args: str) -> dict[str, Any]:
    """Run this script as a worker in a fresh interpreter; its last stdout line is its JSON result.

    Linux counts the parent's RSS at fork+exec into a child's ru_maxrss, so the parent that
    starts the measured workers must stay small: it never imports pandas, DuckDB or LightGBM.
    """
    out = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=None, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench worker {args[1]} failed (exit {out.returncode}); see its log above.")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _trees(model_text: str) -> str:
    """The tree section of a LightGBM model text (parameters and iteration counts differ by design)."""
    start, end = model_text.find("Tree=0"), model_text.find("end of trees")
    return model_text[start:end]


# --- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, then measure each path ``--repeat`` times in fresh processes and keep the fastest."""
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        log.warning(
            "The machine is busy (load %.1f on %d CPUs): OpenMP threads contend, so timings are noisy. "
            "Prefer an idle machine, --repeat 3 or --threads 1.",
            load,
            os.cpu_count(),
        )
    with contextlib.ExitStack() as stack:
        if args.keep:  # one world per size, reused by the next run with the same --keep
            workdir = args.keep.resolve() / f"users{args.users}-days{args.days}"
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-training-")))
        common = ["--workdir", str(workdir), "--pipeline", str(args.pipeline)]
        setup_file = workdir / "setup.json"
        if setup_file.exists():  # --keep: the seeded world and features of an earlier run
            setup = json.loads(setup_file.read_text())
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            setup = _child("--worker", "setup", *common, "--users", str(args.users), "--days", str(args.days))
            setup_file.write_text(json.dumps(setup))

        for stale in workdir.glob("matrix/raw_model.txt"):
            stale.unlink()
        ops = []
        for i in range(args.repeat):
            log.info("measuring the operator path (export + trainer subprocess), run %d/%d", i + 1, args.repeat)
            ops.append(_child("--worker", "operator", *common, "--validation-from", setup["validation_from"]))
        op = min(ops, key=lambda r: r["seconds"])
        model_dir = Path(op["model_dir"].removeprefix("file://"))
        envelope = json.loads((model_dir / "envelope.json").read_text())
        leans = []
        for i in range(args.repeat):
            log.info("measuring the lean operator path (optional costs off), run %d/%d", i + 1, args.repeat)
            leans.append(
                _child(
                    "--worker",
                    "operator",
                    *common,
                    "--validation-from",
                    setup["validation_from"],
                    "--lean-rounds",
                    str(envelope["best_iteration"]),
                )
            )
        lean = min(leans, key=lambda r: r["seconds"])
        lean_dir = Path(lean["model_dir"].removeprefix("file://"))
        lean_envelope = json.loads((lean_dir / "envelope.json").read_text())
        params_file = workdir / "raw_params.json"
        raw_spec = {"params": envelope["params"], "num_boost_round": envelope["best_iteration"]}
        params_file.write_text(json.dumps({**raw_spec, **{k: setup[k] for k in ("feature_names", "categorical")}}))

        raws = []
        for i in range(args.repeat):
            log.info(
                "measuring bare lightgbm.train (%d rounds), run %d/%d", raw_spec["num_boost_round"], i + 1, args.repeat
            )
            raws.append(
                _child("--worker", "raw", "--matrix-dir", setup["matrix_dir"], "--params-file", str(params_file))
            )
        raw = min(raws, key=lambda r: r["seconds"])
        cpu_op, cpu_lean, cpu_raw = (min(runs, key=lambda r: r["cpu_seconds"]) for runs in (ops, leans, raws))
        matrix_dir = Path(setup["matrix_dir"])
        trees = _trees((model_dir / "model.txt").read_text())
        same = trees == _trees((matrix_dir / "raw_model.txt").read_text())
        same_lean = trees == _trees((lean_dir / "model.txt").read_text())

    data = envelope["data"]
    rss_raw = max(r["peak_rss_mb"] for r in raws)
    return {
        "rows": data["train_rows"],
        "validation_rows": data["validation_rows"],
        "early_stopping_rows": data["early_stopping_rows"],
        "trees": envelope["best_iteration"],
        # Rounds the full run grew (early stopping grows early_stopping_rounds past the best).
        "rounds_grown": op["phases"].get("rounds"),
        "same_model": same,
        "same_model_lean": same_lean,
        "same_metrics_lean": _gate_metrics(envelope) == _gate_metrics(lean_envelope),
        "repeat": args.repeat,
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "load_avg_1m": round(load, 2),
        "seconds_export": round(op["seconds_export"], 2),
        "seconds_operator": round(op["seconds"], 2),
        "seconds_raw_lightgbm": round(raw["seconds"], 2),
        # CPU seconds (user + system, every thread; the operator's include the trainer subprocess):
        # unlike wall time, they hardly move when other processes compete for the cores.
        "cpu_seconds_operator": round(cpu_op["cpu_seconds"], 2),
        "cpu_seconds_export": round(cpu_op["cpu_seconds_export"], 2),
        "cpu_seconds_export_truth": round(cpu_op["cpu_seconds_export_truth"], 2),
        "cpu_seconds_trainer": round(cpu_op["cpu_seconds_trainer"], 2),
        "cpu_seconds_raw_lightgbm": round(cpu_raw["cpu_seconds"], 2),
        # Inside the trainer subprocess; the rest of seconds_operator is the export and process start-up.
        "trainer_phases": op["phases"],
        "ratio_vs_raw_lightgbm": round(op["seconds"] / raw["seconds"], 2),
        "ratio_cpu_vs_raw_lightgbm": round(cpu_op["cpu_seconds"] / cpu_raw["cpu_seconds"], 2),
        "peak_rss_mb_export": max(r["peak_rss_mb_export"] for r in ops),
        "peak_rss_mb_trainer": max(r["peak_rss_mb_trainer"] for r in ops),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ops),
        "peak_rss_mb_raw": max(r["peak_rss_mb"] for r in raws),
        "ratio_peak_rss_vs_raw_lightgbm": round(max(r["peak_rss_mb"] for r in ops) / rss_raw, 2),
        "ratio_peak_rss_trainer_vs_raw_lightgbm": round(max(r["peak_rss_mb_trainer"] for r in ops) / rss_raw, 2),
        # The lean run: the same contract with its optional costs off (see lean_contract).
        "seconds_operator_lean": round(lean["seconds"], 2),
        "cpu_seconds_operator_lean": round(cpu_lean["cpu_seconds"], 2),
        "cpu_seconds_export_lean": round(cpu_lean["cpu_seconds_export"], 2),
        "cpu_seconds_trainer_lean": round(cpu_lean["cpu_seconds_trainer"], 2),
        "trainer_phases_lean": lean["phases"],
        "peak_rss_mb_export_lean": max(r["peak_rss_mb_export"] for r in leans),
        "peak_rss_mb_trainer_lean": max(r["peak_rss_mb_trainer"] for r in leans),
        "peak_rss_mb_lean": max(r["peak_rss_mb"] for r in leans),
        "ratio_lean_vs_raw_lightgbm": round(lean["seconds"] / raw["seconds"], 2),
        "ratio_cpu_lean_vs_raw_lightgbm": round(cpu_lean["cpu_seconds"] / cpu_raw["cpu_seconds"], 2),
        "ratio_peak_rss_lean_vs_raw_lightgbm": round(max(r["peak_rss_mb"] for r in leans) / rss_raw, 2),
        "ratio_peak_rss_trainer_lean_vs_raw_lightgbm": round(max(r["peak_rss_mb_trainer"] for r in leans) / rss_raw, 2),
    }


def _gate_metrics(envelope: dict[str, Any]) -> Any:
    """What the gate reads: every scope's metrics of every ranker (the lift CI is the lean run's saving)."""
    return envelope["metrics"]["scopes"]


def print_report(r: dict[str, Any]) -> None:
    """A short table, what the full contract's extra cost buys, then the JSON line (always last)."""
    print(
        f"\nTraining benchmark: {r['rows']:,} training rows ({r['validation_rows']:,} validation), "
        f"{r['trees']} trees, threads {r['threads']}, load {r['load_avg_1m']}, fastest of {r['repeat']}"
    )
    print(f"  {'path':<50} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    rows = [
        ("TrainModelOperator local, full contract", "operator", r["peak_rss_mb"]),
        ("  the Parquet exports (training data, truth)", "export", r["peak_rss_mb_export"]),
        ("    of which the truth (end-to-end metrics)", "export_truth", None),
        ("  the trainer subprocess", "trainer", r["peak_rss_mb_trainer"]),
        ("TrainModelOperator local, lean (optional costs off)", "operator_lean", r["peak_rss_mb_lean"]),
        ("  the Parquet exports (training data, truth)", "export_lean", r["peak_rss_mb_export_lean"]),
        ("  the trainer subprocess", "trainer_lean", r["peak_rss_mb_trainer_lean"]),
        ("bare lightgbm.train, matrix in memory", "raw_lightgbm", r["peak_rss_mb_raw"]),
    ]
    for name, key, rss in rows:
        wall = r.get(f"seconds_{key}")
        rss_text = "" if rss is None else f"{rss:.1f}"
        print(f"  {name:<50} {'' if wall is None else f'{wall:.2f}':>8} {r[f'cpu_seconds_{key}']:>8.2f} {rss_text:>12}")
    for label, suffix, rss_trainer in (
        ("full", "", r["ratio_peak_rss_trainer_vs_raw_lightgbm"]),
        ("lean", "lean_", r["ratio_peak_rss_trainer_lean_vs_raw_lightgbm"]),
    ):
        wall_ratio = r["ratio_vs_raw_lightgbm" if not suffix else "ratio_lean_vs_raw_lightgbm"]
        cpu_ratio = r[f"ratio_cpu_{suffix}vs_raw_lightgbm"]
        rss_ratio = r[f"ratio_peak_rss_{suffix}vs_raw_lightgbm"]
        print(
            f"  {label} / raw: {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU, {rss_ratio:.2f}x peak RSS "
            f"(the trainer alone {rss_trainer:.2f}x)"
        )
    print(
        f"  identical trees: full and raw {r['same_model']}, full and lean {r['same_model_lean']}; "
        f"same test metrics full and lean: {r['same_metrics_lean']}"
    )
    for name, key in (("full", "trainer_phases"), ("lean", "trainer_phases_lean")):
        phases = r.get(key) or {}
        for unit, label in (("cpu", "CPU s"), ("peak_rss_mb", "peak RSS MB so far")):
            if phases.get(unit):
                print(
                    f"  inside the {name} trainer ({label}): " + ", ".join(f"{k} {v}" for k, v in phases[unit].items())
                )
    full, lean = (r.get(k, {}).get("cpu", {}) for k in ("trainer_phases", "trainer_phases_lean"))
    if full and lean:

        def extra(*phases: str) -> float:
            return sum(full.get(p, 0) - lean.get(p, 0) for p in phases)

        print("  What the full contract buys over the lean one (trainer CPU s, full - lean):")
        print(
            f"    early stopping, {extra('transform_encode_bin', 'train'):.2f}: picks the iteration; grows "
            f"{r['rounds_grown']} rounds to keep {r['trees']}, reads and bins {r['early_stopping_rows']:,} "
            "early-stopping rows and scores NDCG@k on them every round (off: model.early_stopping_rounds: 0)"
        )
        print(
            f"    the lift's bootstrap CI, {extra('test_metrics'):.2f}: the uncertainty of the gate's lift "
            "(off: evaluation.bootstrap_samples: 0)"
        )
        print("  What both pay on top of bare lightgbm.train (lean run, CPU s):")
        print(
            f"    exports {r['cpu_seconds_export_lean']:.2f}: the trainer's input, the same files as on Vertex AI; "
            f"trainer start {lean.get('before', 0):.2f}: interpreter, imports, contract, model.py"
        )
        print(
            f"    read, split, check {lean.get('read_split_check', 0):.2f}: the time windows from Parquet, "
            "the checks that fail before training"
        )
        print(
            f"    transform, encode, bin {lean.get('transform_encode_bin', 0):.2f}: model.py, the matrices "
            "(binning is in the raw path too), the fit window's drift profile"
        )
        print(
            f"    train {lean.get('train', 0):.2f}: the same trees as the raw path; "
            f"test metrics {lean.get('test_metrics', 0):.2f}: the evaluation gate (every scope and ranker); "
            f"profile, envelope {lean.get('profile_envelope', 0):.2f}: score profiles, sample, model file"
        )
    print(json.dumps(r))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=3000, help="demo users (default: %(default)s)")
    p.add_argument("--days", type=int, default=60, help="days of demo events (default: %(default)s)")
    p.add_argument("--pipeline", type=Path, default=PIPELINE, help="the contract (default: the reference one)")
    p.add_argument("--repeat", type=int, default=1, help="runs per path; the fastest counts (default: %(default)s)")
    p.add_argument(
        "--threads", type=int, help="OMP_NUM_THREADS for both paths (default: unset, LightGBM uses every core)"
    )
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the seeded world and features in DIR and reuse them on the next run (default: a temp dir)",
    )
    p.add_argument("--worker", choices=["setup", "operator", "raw"], help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--validation-from", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    p.add_argument("--matrix-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--params-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--lean-rounds", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.pipeline = args.pipeline.resolve()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the workers and the trainer
    quiet = args.worker in ("operator", "raw")  # measured workers log only problems
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # transpiler notes, once per query
    if args.worker == "setup":
        print(json.dumps(prepare(args.workdir, args.pipeline, args.users, args.days)))
    elif args.worker == "operator":
        print(json.dumps(worker_operator(args.workdir, args.pipeline, args.validation_from, args.lean_rounds)))
    elif args.worker == "raw":
        print(json.dumps(worker_raw(args.matrix_dir, args.params_file)))
    else:
        print_report(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
