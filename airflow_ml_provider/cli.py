"""``airflow-ml``: the command line for data scientists, CI and the demo.

Runs the same core code as the Airflow operators, without a scheduler. By default it
works on the embedded warehouse (``$AIRFLOW_ML_HOME/warehouse.duckdb``); ``--conn-id``
uses an Airflow ``ml_platform`` connection instead (e.g. the GCP backend). Without
``--pipeline`` a command uses the current project's contract (the nearest
``dags/*/pipeline.yaml``, else one under ``AIRFLOW__CORE__DAGS_FOLDER``).

The commands live by concept in ``cli_data`` (seed-demo, features, tables, recommend,
recommendations), ``cli_models`` (train, models), ``cli_project`` (validate, init),
``cli_check``, ``cli_drift`` and ``cli_outcomes``; each module registers its parsers with one line in ``build_parser``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_ml_provider import __version__
from airflow_ml_provider.cli_check import add_check_parser
from airflow_ml_provider.cli_common import default_sql_dir, refuse_dates_before_start, resolve_pipeline
from airflow_ml_provider.cli_data import add_data_parsers
from airflow_ml_provider.cli_drift import add_drift_parser
from airflow_ml_provider.cli_models import add_models_parsers
from airflow_ml_provider.cli_outcomes import add_outcomes_parser
from airflow_ml_provider.cli_project import add_project_parsers
from airflow_ml_provider.exceptions import MLProviderError


def build_parser() -> argparse.ArgumentParser:
    """The ``airflow-ml`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="airflow-ml",
        description="Batch recommendations on Airflow: run the pipeline's steps from the command "
        "line on the embedded DuckDB warehouse or on a configured ml_platform connection.",
        epilog="Examples:\n  airflow-ml seed-demo --users 5000 --drift-from 2026-03-25\n"
        "  airflow-ml features --date 2026-03-31\n  airflow-ml train --smoke\n"
        "  airflow-ml recommend --date 2026-03-31\n  airflow-ml drift --date 2026-03-31\n"
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

    add_data_parsers(sub, common)
    add_models_parsers(sub, common)
    add_project_parsers(sub)
    add_check_parser(sub, common)
    add_outcomes_parser(sub, common)
    add_drift_parser(sub, common)
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
        if not getattr(args, "lazy_pipeline", False):
            resolve_pipeline(args)
        if "sql_dir" in args and args.sql_dir is None and args.pipeline is not None:
            # ROOT/sql for ROOT/dags/NAME/pipeline.yaml: a scaffolded pipeline works from its project root.
            args.sql_dir = default_sql_dir(args.pipeline)
        refuse_dates_before_start(args)
        return int(args.func(args))
    except (MLProviderError, ValueError) as err:
        print(f"airflow-ml {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
