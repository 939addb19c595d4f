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

from airflow_ml_provider import __version__
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


def build_parser() -> argparse.ArgumentParser:
    """The ``airflow-ml`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="airflow-ml",
        description="Batch recommendations on Airflow: run the pipeline's steps from the command "
        "line on the embedded DuckDB warehouse or on a configured ml_platform connection.",
        epilog="Examples:\n  airflow-ml seed-demo --users 5000 --drift-from 2026-03-25\n"
        "  airflow-ml features --date 2026-03-31\n  airflow-ml tables",
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
        "--sql-dir", type=Path, default=DEFAULT_SQL_DIR, help="folder the contract's SQL paths are relative to"
    )
    feat.add_argument("--date", type=_date, required=True, help="as-of date (YYYY-MM-DD)")
    feat.add_argument("--to", type=_date, help="last as-of date of a range (inclusive)")
    feat.add_argument(
        "--labels", action="store_true", help="also build labels (needs the label horizon to have passed)"
    )
    feat.add_argument("--json", action="store_true", help="print the write results as JSON")
    feat.set_defaults(func=cmd_features)

    tables = sub.add_parser(
        "tables", parents=[common], help="list tables, partitions and row counts", description=cmd_tables.__doc__
    )
    tables.add_argument("--json", action="store_true", help="print as JSON")
    tables.set_defaults(func=cmd_tables)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airflow-ml`` console script."""
    args = build_parser().parse_args(argv)
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
