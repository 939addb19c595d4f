"""``airflow-ml drift``: check a date for drift against a model's reference profile (as DriftCheckOperator does)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from airflow_ml_provider.cli_common import add_pipeline_argument, cli_artifacts, parse_date, pipeline_spec, print_json
from airflow_ml_provider.cli_common import warehouse as _warehouse

log = logging.getLogger("airflow_ml")


def cmd_drift(args: argparse.Namespace) -> int:
    """Count a date's features (and that model's recommendation scores) into the model's reference bins.

    Runs what the recsys_drift DAG's check task runs: PSI, JS distance and L-infinity per
    monitored column from one scan per table, a verdict for the date (ok, warn or drift), and the
    date's partition of drift_results replaced (a rerun leaves one set). Exit code 1 when the
    verdict is one --fail-on fails on (default: drift.fail_on of the contract); the results are
    written either way.
    """
    from airflow_ml_provider.core.contract.dates import date_range
    from airflow_ml_provider.core.drift.run import run_drift_check
    from airflow_ml_provider.core.inference.runs import utcnow

    spec = pipeline_spec(args)
    warehouse = _warehouse(args)
    run_id = args.run_id or f"cli__{utcnow():%Y%m%dT%H%M%S}"
    artifacts = cli_artifacts(args)
    checks, failures = [], []
    for day in date_range(args.date, args.to or args.date):
        checked = run_drift_check(
            warehouse,
            spec,
            day,
            run_id=run_id,
            model_version=args.model_version,
            model_name=args.model,
            fail_on=args.fail_on,
            predictions_table=None if args.no_predictions else "recommendations",
            artifacts=artifacts,
            logger=log,
        )
        checks.append(checked.summary)
        failures += [checked.failure] if checked.failure else []
        if not args.json:
            s = checked.summary
            print(f"Drift on {day} against {s['model_name']} {s['model_version']}: {s['verdict']}")
            for line in checked.report.table():
                print("  " + line)
    if args.json:
        print_json(checks[0] if len(checks) == 1 else checks)
    for failure in failures:
        log.error("%s", failure)
    return 1 if failures else 0


def add_drift_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``drift`` on the ``airflow-ml`` subcommands."""
    drift = sub.add_parser(
        "drift",
        parents=[common],
        help="check a date for drift against a model's reference profile",
        description=cmd_drift.__doc__,
        epilog="Examples:\n  airflow-ml drift --date 2026-03-31\n"
        "  airflow-ml drift --date 2026-03-25 --to 2026-03-31 --fail-on never --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pipeline_argument(drift)
    drift.add_argument("--date", type=parse_date, required=True, help="date to check (YYYY-MM-DD)")
    drift.add_argument("--to", type=parse_date, help="last date of a range (inclusive), one check per date")
    drift.add_argument("--model-version", default="champion", help="a version from `models list`, or champion")
    drift.add_argument("--model", help="model name (default: the contract's name)")
    drift.add_argument(
        "--fail-on",
        choices=["drift", "warn", "never"],
        help="the verdicts that exit 1 (default: drift.fail_on of the contract)",
    )
    drift.add_argument(
        "--no-predictions", action="store_true", help="check the features only, not the recommendation scores"
    )
    drift.add_argument("--run-id", help="recorded in drift_results (default: cli__<UTC timestamp>)")
    drift.add_argument("--json", action="store_true", help="print the summary as JSON")
    drift.set_defaults(func=cmd_drift)
