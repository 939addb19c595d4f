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
    checks print and exit 0. The last line counts the checks by outcome. With --record the results
    replace the date's partition of data_checks (only when no error check failed, as in the DAG),
    and the command says so.
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
    failed = [r for r in results if r.failed]
    if args.json:
        print_json(
            {
                "date": args.date.isoformat(),
                "ok": not failed,
                "summary": status_counts(results),
                "checks": [r.as_dict() for r in results],
            }
        )
    else:
        for r in results:
            print(r.log_line())
        print(summary_line(results))
    try:
        raise_on_errors(results, f"data checks of {args.date}")
    except DataCheckError:
        if args.record and not args.json:
            print(f"Not recorded in data_checks: an error check failed (as in the DAG, {args.date} keeps its rows).")
        if args.json:  # the JSON already says what failed
            return 1
        raise
    if args.record:
        written = record_checks(warehouse, args.date, results, "cli", checked_at)
        if not args.json:
            print(
                f"Recorded {written.rows} result(s) in {written.table} (partition check_date={args.date}, "
                "run_id cli), replacing the date's earlier results."
            )
    return 0


#: The statuses a check ends in, as the summary names them.
_SUMMARY = (("pass", "passed"), ("warn", "warned"), ("fail", "failed"), ("skipped", "skipped"))


def status_counts(results: list[Any]) -> dict[str, int]:
    """How many checks ended in each status (``pass``, ``warn``, ``fail``, ``skipped``)."""
    return {status: sum(r.status == status for r in results) for status, _ in _SUMMARY}


def summary_line(results: list[Any]) -> str:
    """``N checks: P passed, W warned, F failed, S skipped``: the last line a reader needs."""
    counts = status_counts(results)
    parts = ", ".join(f"{counts[status]} {word}" for status, word in _SUMMARY)
    return f"{len(results)} check{'s' if len(results) != 1 else ''}: {parts}"


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
