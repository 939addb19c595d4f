"""``airflow-ml check``: run the contract's data checks on the warehouse for a date (as DataCheckOperator does)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from airflow_ml_provider.cli_common import add_pipeline_argument, parse_date, pipeline_spec, print_json
from airflow_ml_provider.cli_common import warehouse as _warehouse

log = logging.getLogger("airflow_ml")


def cmd_check(args: argparse.Namespace) -> int:
    """Run the data checks of pipeline.yaml (`checks:`) for one date on the warehouse.

    One aggregation for the events source and one per published step table. Prints one
    line per check (or JSON with --json). Exit code 1 when an `error` check fails; `warn`
    checks print and exit 0. With --record the results replace the date's partition of
    data_checks (only when no error check failed, as in the DAG).
    """
    from airflow_ml_provider.core.features.checks import DataCheckError, raise_on_errors
    from airflow_ml_provider.core.features.data_checks import record_checks, run_checks
    from airflow_ml_provider.core.inference.runs import utcnow

    spec = pipeline_spec(args)
    warehouse = _warehouse(args)
    checked_at = utcnow()
    log.info("Checking %s data for %s on %r (contract %s)", spec.name, args.date, warehouse, args.pipeline)
    sql_dirs = [args.sql_dir] if args.sql_dir else []
    results = run_checks(warehouse, spec, args.date, checked_at, scope=args.scope, sql_dirs=sql_dirs)
    if args.json:
        failed = [r for r in results if r.failed]
        print_json({"date": args.date.isoformat(), "ok": not failed, "checks": [r.as_dict() for r in results]})
    else:
        for r in results:
            print(r.log_line())
    try:
        raise_on_errors(results, f"data checks of {args.date}")
    except DataCheckError:
        if args.json:  # the JSON already says what failed
            return 1
        raise
    if args.record:
        record_checks(warehouse, args.date, results, "cli", checked_at)
    return 0


def add_check_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``check`` on the ``airflow-ml`` subcommands."""
    from airflow_ml_provider.core.features.scopes import SCOPES

    check = sub.add_parser(
        "check",
        parents=[common],
        help="run the contract's data checks for a date on the warehouse",
        description=cmd_check.__doc__,
        epilog="Examples:\n  airflow-ml check --date 2026-03-31\n  airflow-ml check --date 2026-03-31 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pipeline_argument(check)
    check.add_argument("--sql-dir", type=Path, help="folder of the steps' SQL files, for --scope steps/preflight")
    check.add_argument("--date", type=parse_date, required=True, help="as-of date to check (YYYY-MM-DD)")
    check.add_argument(
        "--scope",
        choices=SCOPES,
        default="all",
        help="events, tables (published step partitions), all (both), steps (every step's would-be rows, "
        "nothing written) or preflight (events + steps)",
    )
    check.add_argument("--record", action="store_true", help="write the results to the data_checks table")
    check.add_argument("--json", action="store_true", help='print {"date", "ok", "checks": [...]}')
    check.set_defaults(func=cmd_check)
