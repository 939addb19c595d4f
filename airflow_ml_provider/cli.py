"""``airflow-ml``: the command line for data scientists, CI and the demo.

Runs the same core code as the Airflow operators, without a scheduler. By default it
works on the embedded warehouse (``$AIRFLOW_ML_HOME/warehouse.duckdb``); ``--conn-id``
uses an Airflow ``ml_platform`` connection instead (e.g. the GCP backend).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_ml_provider import __version__
from airflow_ml_provider.cli_check import add_check_parser
from airflow_ml_provider.exceptions import MLProviderError

log = logging.getLogger("airflow_ml")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PIPELINE = REPO_ROOT / "dags" / "recsys" / "pipeline.yaml"
DEFAULT_SQL_DIR = REPO_ROOT / "sql"


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _warehouse(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The warehouse the command works on: ``--conn-id``, ``--warehouse`` or the embedded default."""
    if args.conn_id:
        from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

        return MLPlatformHook(ml_conn_id=args.conn_id).get_warehouse(labels={"managed-by": "airflow-ml-cli"})
    from airflow_ml_provider.backends import get_warehouse
    from airflow_ml_provider.core.config import PlatformConfig

    extras = {"warehouse_path": str(args.warehouse)} if args.warehouse else {}
    return get_warehouse(PlatformConfig.from_extras(extras, source="command line"))


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Generate the synthetic e-commerce world and load it into the warehouse."""
    from airflow_ml_provider.core.demo import DemoConfig, generate

    cfg = DemoConfig(
        users=args.users,
        items=args.items,
        days=args.days,
        end_date=args.end_date,
        events_per_user_day=args.events_per_user_day,
        seed=args.seed,
        drift_from=args.drift_from,
        drift_category=args.drift_category,
    )
    log.info(
        "Generating %d users, %d items, %d days of events (%s to %s, seed %d%s)",
        cfg.users,
        cfg.items,
        cfg.days,
        cfg.start_date,
        cfg.end_date,
        cfg.seed,
        f", drift from {cfg.drift_from} towards {cfg.drift_category}" if cfg.drift_from else "",
    )
    started = time.monotonic()
    world = generate(cfg, progress=lambda d, n, e: log.info("  day %d/%d: %d events so far", d, n, e))
    warehouse = _warehouse(args)
    for name in ("users", "items", "events"):
        rows = warehouse.replace_table(name, getattr(world, name))
        log.info("Loaded %-6s %9d rows into %r", name, rows, warehouse)
    log.info("Seeded the demo world in %.1fs", time.monotonic() - started)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Build the feature partitions of a pipeline for one date or a range."""
    from airflow_ml_provider.core.features import build_features, date_range
    from airflow_ml_provider.core.spec import load_spec

    spec = load_spec(args.pipeline)
    dates = date_range(args.date, args.to or args.date)
    warehouse = _warehouse(args)
    started = time.monotonic()

    def report(result):  # type: ignore[no-untyped-def]
        log.info("  %-14s %s  %8d rows", result.table, result.partition, result.rows)

    log.info("Building %s features for %d date(s) on %r", spec.name, len(dates), warehouse)
    results = build_features(warehouse, spec, args.sql_dir, dates, labels=args.labels, on_step=report)
    log.info("Wrote %d partitions in %.1fs", len(results), time.monotonic() - started)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    return 0


def cmd_recommendations(args: argparse.Namespace) -> int:
    """Show a day's recommendation run (users, coverage) and one user's list."""
    warehouse = _warehouse(args)
    runs = warehouse.query(
        "SELECT model_version, users, rows_written, candidates, coverage, rows_per_second, finished_at "
        "FROM recommendation_runs WHERE prediction_date = @d AND status = 'success' "
        "ORDER BY finished_at DESC LIMIT 1",
        {"d": args.date},
        source="recommendation_runs",
    ).to_pylist()
    if not runs:
        print(f"No successful recommendation run for {args.date}. Run the recsys_batch_inference DAG first.")
        return 1
    run = runs[0]
    print(
        f"Recommendations for {args.date} (model {run['model_version']}): {run['rows_written']} rows for "
        f"{run['users']} users from {run['candidates']} candidates, catalog coverage {run['coverage']:.1%}, "
        f"{run['rows_per_second']:,.0f} candidate rows/s"
    )
    user = (
        args.user
        or warehouse.query(
            "SELECT MIN(user_id) AS u FROM recommendations WHERE prediction_date = @d", {"d": args.date}
        ).to_pylist()[0]["u"]
    )
    rows = warehouse.query(
        "SELECT r.rank, r.item_id, i.category, i.price, ROUND(r.score, 4) AS score FROM recommendations AS r "
        "LEFT JOIN items AS i ON i.item_id = r.item_id WHERE r.prediction_date = @d AND r.user_id = @u ORDER BY r.rank",
        {"d": args.date, "u": user},
        source="recommendations",
    ).to_pylist()
    print(f"  list of {user}:")
    for r in rows:
        print(f"    {r['rank']:>3}  {r['item_id']:<8} {r['category'] or '-':<12} {r['price'] or 0:>8.2f}  {r['score']}")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """Show the warehouse's tables, their partitions and row counts."""
    from airflow_ml_provider.core.summary import describe_tables

    warehouse = _warehouse(args)
    rows = describe_tables(warehouse)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"Tables in {warehouse!r}:")
    print(f"  {'table':<16} {'rows':>10}  partitions")
    for r in rows:
        parts = f"{r['partitions']} ({r['first_partition']} .. {r['last_partition']})" if r["partitions"] else "-"
        print(f"  {r['table']:<16} {r['rows']:>10}  {parts}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Validate the contract, build features and labels, train, evaluate and register a candidate."""
    import tempfile

    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features import build_features
    from airflow_ml_provider.core.spec import load_spec

    spec = load_spec(args.pipeline)
    log.info("Contract %s is valid (spec hash %s)", args.pipeline, spec.spec_hash)
    if args.backend == "vertex" and not args.conn_id:
        raise ValueError("--backend vertex needs --conn-id: an ml_platform connection with backend gcp")
    with tempfile.TemporaryDirectory(prefix="airflow-ml-smoke-") as tmp:
        if args.smoke:
            # A small synthetic world in a throwaway warehouse: minutes, no cloud, same code.
            args.warehouse, args.conn_id = Path(tmp) / "smoke.duckdb", None
            world = generate(DemoConfig(users=400, items=120, days=60, end_date=args.date))
            warehouse = _warehouse(args)
            for name in ("users", "items", "events"):
                warehouse.replace_table(name, getattr(world, name))
            log.info("Smoke run: seeded %d events into %s", world.events.num_rows, args.warehouse)
        warehouse = _warehouse(args)
        train_dates, valid_dates = spec.training_dates(args.date)
        dates = [*train_dates, *valid_dates]
        if args.build_features or args.smoke:
            log.info("Building features and labels for %d as-of dates", len(dates))
            build_features(warehouse, spec, args.sql_dir, dates, labels=True)
        artifacts = args.artifacts or (Path(tmp) / "artifacts" if args.smoke else None)
        summary = _train_and_register(args, spec, warehouse, artifacts)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["promoted"] or not args.require_pass else 1


def _train_and_register(args, spec, warehouse, artifacts):  # type: ignore[no-untyped-def]
    """Export, train in a subprocess, register, gate. Returns a JSON-able summary."""
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.config import PlatformConfig
    from airflow_ml_provider.core.envelope import read_envelope
    from airflow_ml_provider.core.gate import evaluate_envelope_metrics
    from airflow_ml_provider.core.registry import ModelRegistry
    from airflow_ml_provider.core.training import (
        TrainingJob,
        check_model_hooks,
        training_data_sql,
        training_params,
        truth_data_sql,
    )

    check_model_hooks(spec, args.pipeline)  # a broken model.py fails before any data is exported
    registry = ModelRegistry(warehouse)
    registry.ensure()
    champion = registry.champion(spec.name)
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + ("-smoke" if args.smoke else "-cli")
    root = storage.to_uri(artifacts) if artifacts else PlatformConfig().artifacts_uri
    run_dir = storage.join(root, spec.name, version)
    params = training_params(spec, args.date)
    data_uri = warehouse.export_parquet(training_data_sql(spec), params, storage.join(run_dir, "data"))
    truth_sql = truth_data_sql(spec)
    truth_uri = warehouse.export_parquet(truth_sql, params, storage.join(run_dir, "truth")) if truth_sql else None
    hooks = args.pipeline.parent / spec.model.hooks if spec.model.hooks else None
    job = TrainingJob(
        model_name=spec.name,
        version=version,
        run_dir=run_dir,
        pipeline_uri=storage.to_uri(args.pipeline),
        data_uri=data_uri,
        validation_from=params["validation_start"],
        hooks_uri=storage.to_uri(hooks) if hooks else None,
        git_sha=args.git_sha,
        champion_dir=champion.uri if champion else None,
        truth_uri=truth_uri,
    )
    LocalTrainingRunner().run(job)
    envelope = read_envelope(job.model_dir)
    registry.register_trained(envelope, job.model_dir)
    gate = evaluate_envelope_metrics(envelope.metrics, spec.evaluation)
    for reason in gate.reasons:
        log.info("Gate: %s", reason)
    if gate.passes and args.promote:
        registry.promote(spec.name, version, blessed_by="airflow-ml train", reason=" ".join(gate.reasons))
    k, metrics = spec.evaluation.k, envelope.metrics
    scope, baseline = metrics.get("scope", "candidates"), metrics.get("baseline_name", "candidate_popularity")
    return {
        "model_name": spec.name,
        "version": version,
        "model_dir": job.model_dir,
        "test_dates": metrics.get("test_dates"),
        "candidate_recall": _round(metrics.get("candidate_recall")),
        f"model@{k} ({scope})": {m: _round(v) for m, v in metrics["model"].items()},
        f"{baseline}@{k} ({scope})": {m: _round(v) for m, v in metrics["baseline"].items()},
        "lift_ci": metrics.get("lift_ci"),
        "gate_outcome": gate.outcome,
        "gate_passes": gate.passes,
        "promoted": bool(gate.passes and args.promote),
        "reasons": gate.reasons,
    }


def cmd_models(args: argparse.Namespace) -> int:
    """List model versions with their metrics, or roll the champion back."""
    from airflow_ml_provider.core.registry import ModelRegistry
    from airflow_ml_provider.core.spec import load_spec

    registry = ModelRegistry(_warehouse(args))
    name = args.model or load_spec(args.pipeline).name
    if args.action == "rollback":
        restored = registry.rollback(name, blessed_by="airflow-ml models rollback")
        if args.conn_id:
            from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

            config = MLPlatformHook(ml_conn_id=args.conn_id).config
            if config.backend == "gcp":
                from airflow_ml_provider.backends.vertex import VertexTrainingRunner

                VertexTrainingRunner(config).set_alias(name, restored.version)
        print(f"{name}: champion is now {restored.version} (was rolled back)")
        return 0
    records = registry.list(name)
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2, default=str))
        return 0
    if not records:
        print(f"No versions of {name} registered yet. Train one: airflow-ml train")
        return 0
    # ndcg and recall of the gate's scope (end-to-end unless the contract says otherwise) on the
    # held-out test window; cand_recall is the share of next-horizon interactions among the candidates.
    print(
        f"  {'version':<26} {'status':<10} {'scope':<11} {'ndcg':>7} {'baseline':>9} {'recall':>7} "
        f"{'cand_recall':>11} {'lists':>6}  created"
    )
    for r in records:
        m = r.metrics or {}
        model, base = m.get("model", {}), m.get("baseline", {})
        fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else "-"  # noqa: E731
        print(
            f"  {r.version:<26} {r.status:<10} {m.get('scope', 'candidates'):<11} {fmt(model.get('ndcg')):>7} "
            f"{fmt(base.get('ndcg')):>9} {fmt(model.get('recall')):>7} {fmt(m.get('candidate_recall')):>11} "
            f"{model.get('lists', '-')!s:>6}  {r.created_at:%Y-%m-%d %H:%M}"
        )
    return 0


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _default_sql_dir(pipeline: Path) -> Path:
    """``ROOT/sql`` for a contract at ``ROOT/dags/NAME/pipeline.yaml``; else the repo's ``sql/``."""
    parents = pipeline.resolve().parents
    if len(parents) > 2 and parents[1].name == "dags":
        return parents[2] / "sql"
    return DEFAULT_SQL_DIR


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a pipeline contract, its SQL and model.py on a tiny generated sample, in seconds and with no cloud.

    Checks: the contract parses; the label and time windows are coherent; every SQL file the
    contract names parses as GoogleSQL and runs on DuckDB against a small demo world (in a
    throwaway warehouse: your real one is never touched); the declared features equal the
    feature SQL's output columns and types; the label joins the feature rows; model.py offers
    only the documented hooks. Exit code 0 when every check passes (or is skipped), 1 otherwise.
    """
    import tempfile

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.validate import validate_pipeline

    sql_dir = args.sql_dir or _default_sql_dir(args.pipeline)
    with tempfile.TemporaryDirectory(prefix="airflow-ml-validate-") as tmp:
        report = validate_pipeline(
            args.pipeline, sql_dir, DuckDBWarehouse(Path(tmp) / "sample.duckdb", lock_timeout=30)
        )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a new pipeline NAME from a template: a contract, SQL that runs, a model.py and a DAG file.

    Files are written under ROOT (--dir, default: the current directory), laid out like this
    repo: ROOT/dags/NAME/pipeline.yaml, ROOT/dags/NAME/model.py, ROOT/dags/NAME_pipeline.py and
    ROOT/sql/NAME/*.sql. Nothing is overwritten: if any of these files exists, nothing is
    written. The scaffold passes `airflow-ml validate` as it is.

    Patterns: recsys (top-k items per user, a LightGBM ranker over generated candidates) and
    churn (one propensity score per user, a binary LightGBM model, written by the same
    operators as one row per user). The default pattern is NAME when NAME is a pattern's
    name, else recsys.
    """
    from airflow_ml_provider.core.scaffold import scaffold

    pattern = args.pattern or (args.name if args.name in ("recsys", "churn") else "recsys")
    root = args.dir
    written = scaffold(args.name, pattern, root)
    print(f"Scaffolded pipeline {args.name!r} (pattern {pattern}) in {root.resolve()}:")
    for path in written:
        print(f"  {path.relative_to(root)}")
    pipeline = Path("dags") / args.name / "pipeline.yaml"
    where = "" if root.resolve() == Path.cwd().resolve() else f"cd {root} && "
    print(f"Next: {where}airflow-ml validate --pipeline {pipeline}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``airflow-ml`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="airflow-ml",
        description="Batch recommendations on Airflow: run the pipeline's steps from the command "
        "line on the embedded DuckDB warehouse or on a configured ml_platform connection.",
        epilog="Examples:\n  airflow-ml seed-demo --users 5000 --drift-from 2026-03-25\n"
        "  airflow-ml features --date 2026-03-31\n  airflow-ml train --smoke\n"
        "  airflow-ml models list\n  airflow-ml tables\n"
        "  airflow-ml validate --pipeline dags/recsys/pipeline.yaml\n  airflow-ml init churn --pattern churn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--warehouse", type=Path, help="DuckDB file to use (default: $AIRFLOW_ML_HOME/warehouse.duckdb)")
    where.add_argument("--conn-id", help="use this Airflow ml_platform connection (e.g. for the gcp backend)")
    common.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    seed = sub.add_parser(
        "seed-demo", parents=[common], help="generate the synthetic demo data", description=cmd_seed_demo.__doc__
    )
    seed.add_argument("--users", type=int, default=3000, help="number of users (default: %(default)s)")
    seed.add_argument("--items", type=int, default=600, help="number of items (default: %(default)s)")
    seed.add_argument("--days", type=int, default=60, help="days of events (default: %(default)s)")
    seed.add_argument(
        "--end-date", type=_date, default=dt.date(2026, 3, 31), help="last day of events (default: %(default)s)"
    )
    seed.add_argument(
        "--events-per-user-day", type=float, default=0.35, help="mean views per user per day (default: %(default)s)"
    )
    seed.add_argument("--seed", type=int, default=7, help="random seed; same seed, same data (default: %(default)s)")
    seed.add_argument("--drift-from", type=_date, help="from this date on, shift tastes and activity (drift injection)")
    seed.add_argument(
        "--drift-category", default="electronics", help="category that gains share under drift (default: %(default)s)"
    )
    seed.set_defaults(func=cmd_seed_demo)

    feat = sub.add_parser(
        "features", parents=[common], help="build feature partitions for dates", description=cmd_features.__doc__
    )
    feat.add_argument(
        "--pipeline", type=Path, default=DEFAULT_PIPELINE, help="pipeline.yaml (default: the recsys reference)"
    )
    feat.add_argument(
        "--sql-dir", type=Path, help="folder the contract's SQL paths are relative to (default: ROOT/sql beside dags/)"
    )
    feat.add_argument("--date", type=_date, required=True, help="as-of date (YYYY-MM-DD)")
    feat.add_argument("--to", type=_date, help="last as-of date of a range (inclusive)")
    feat.add_argument(
        "--labels", action="store_true", help="also build labels (needs the label horizon to have passed)"
    )
    feat.add_argument("--json", action="store_true", help="print the write results as JSON")
    feat.set_defaults(func=cmd_features)

    train = sub.add_parser(
        "train", parents=[common], help="validate, build features, train, evaluate", description=cmd_train.__doc__
    )
    train.add_argument("--pipeline", type=Path, default=DEFAULT_PIPELINE, help="pipeline.yaml")
    train.add_argument("--sql-dir", type=Path, help="folder the contract's SQL paths are in (default: ROOT/sql)")
    train.add_argument("--date", type=_date, default=dt.date(2026, 3, 31), help="run date (default: %(default)s)")
    train.add_argument("--backend", choices=["local", "vertex"], default="local", help="where the trainer runs")
    train.add_argument("--smoke", action="store_true", help="train on a small synthetic world in a temp dir")
    train.add_argument("--build-features", action="store_true", help="(re)build features and labels first")
    train.add_argument("--no-promote", dest="promote", action="store_false", help="register only, never promote")
    train.add_argument("--require-pass", action="store_true", help="exit 1 when the evaluation gate fails")
    train.add_argument("--git-sha", default=None, help="recorded with the model (CI passes its commit)")
    train.add_argument(
        "--artifacts", type=Path, help="artifact root (default: $AIRFLOW_ML_HOME/artifacts; a temp dir with --smoke)"
    )
    train.set_defaults(func=cmd_train)

    models = sub.add_parser(
        "models", parents=[common], help="list model versions or roll back the champion", description=cmd_models.__doc__
    )
    models.add_argument("action", choices=["list", "rollback"])
    models.add_argument("--model", help="model name (default: the contract's name)")
    models.add_argument("--pipeline", type=Path, default=DEFAULT_PIPELINE, help="pipeline.yaml")
    models.add_argument("--json", action="store_true", help="print as JSON")
    models.set_defaults(func=cmd_models)

    recs = sub.add_parser(
        "recommendations",
        parents=[common],
        help="a day's run summary and one user's list",
        description=cmd_recommendations.__doc__,
    )
    recs.add_argument("--date", type=_date, required=True, help="prediction date (YYYY-MM-DD)")
    recs.add_argument("--user", help="user id (default: the first user with a list)")
    recs.set_defaults(func=cmd_recommendations)

    validate = sub.add_parser(
        "validate",
        help="check a contract, its SQL and model.py in seconds (no cloud)",
        description=cmd_validate.__doc__,
        epilog="Examples:\n  airflow-ml validate\n  airflow-ml validate --pipeline dags/churn/pipeline.yaml\n"
        "  airflow-ml validate --pipeline dags/recsys/pipeline.yaml --sql-dir sql --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument(
        "--pipeline", type=Path, default=DEFAULT_PIPELINE, help="pipeline.yaml to check (default: the recsys reference)"
    )
    validate.add_argument(
        "--sql-dir",
        type=Path,
        help="folder the contract's SQL paths are relative to (default: ROOT/sql for ROOT/dags/NAME/pipeline.yaml)",
    )
    validate.add_argument("--json", action="store_true", help='print {"ok", "checks": [{check, status, detail}]}')
    validate.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors in the log")
    validate.set_defaults(func=cmd_validate)

    init = sub.add_parser(
        "init",
        help="scaffold a new pipeline (contract, SQL, model.py, DAG) that passes validate",
        description=cmd_init.__doc__,
        epilog="Examples:\n  airflow-ml init churn && airflow-ml validate --pipeline dags/churn/pipeline.yaml\n"
        "  airflow-ml init shop_recs --pattern recsys --dir ~/projects/ml\n"
        "  airflow-ml init winback --pattern churn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("name", metavar="NAME", help="pipeline name: lowercase letters, digits, underscores")
    init.add_argument(
        "--pattern", choices=["recsys", "churn"], help="template (default: NAME if it is a pattern, else recsys)"
    )
    init.add_argument(
        "--dir", type=Path, default=Path("."), help="project root holding dags/ and sql/ (default: current directory)"
    )
    init.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors in the log")
    init.set_defaults(func=cmd_init)

    tables = sub.add_parser(
        "tables", parents=[common], help="list tables, partitions and row counts", description=cmd_tables.__doc__
    )
    tables.add_argument("--json", action="store_true", help="print as JSON")
    tables.set_defaults(func=cmd_tables)
    add_check_parser(sub, common, DEFAULT_PIPELINE, _date)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airflow-ml`` console script."""
    args = build_parser().parse_args(argv)
    if "sql_dir" in args and args.sql_dir is None:
        # ROOT/sql for ROOT/dags/NAME/pipeline.yaml: a scaffolded pipeline works from its project root.
        args.sql_dir = _default_sql_dir(args.pipeline)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("sqlglot").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except (MLProviderError, ValueError) as err:
        print(f"airflow-ml {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
