"""``airflow-ml recommend``: batch inference for a date or range in this process, as recsys_batch_inference runs it."""

from __future__ import annotations

import argparse
import json
import logging
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("airflow_ml")


def cmd_recommend(args: argparse.Namespace) -> int:
    """Score the candidates of --date (to --to) with a model version and replace each date's recommendations.

    Runs BatchRecommendOperator itself, without a scheduler: the same schema check, streamed
    scoring, atomic partition write and recommendation_runs record as the DAG's task (run id
    cli-DATE). The model is the champion unless --model-version pins one. Uses the ml_platform
    connection (--conn-id) or the embedded default ($AIRFLOW_ML_HOME).
    """
    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import ExecutorSafeguard

    from airflow_ml_provider.core.features import date_range
    from airflow_ml_provider.hooks.ml_platform import MLPlatformHook
    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    if args.warehouse:
        raise ValueError(
            "recommend runs the DAG's operator: pass --conn-id, or set AIRFLOW_ML_HOME instead of --warehouse"
        )
    # This command is the task runner here (as `airflow-ml features` runs the feature steps):
    # Airflow's guard against calling execute() from inside another task does not apply.
    ExecutorSafeguard.test_mode = True
    results = []
    for day in date_range(args.date, args.to or args.date):
        with DAG("airflow_ml_cli", schedule=None):
            op = BatchRecommendOperator(
                task_id="recommend",
                pipeline=str(args.pipeline),
                prediction_date=day.isoformat(),
                model_version=args.model_version,
                ml_conn_id=args.conn_id or MLPlatformHook.default_conn_name,
            )
        ti = types.SimpleNamespace(dag_id="airflow_ml_cli", task_id="recommend", run_id=f"cli-{day}", try_number=1)
        out = op.execute({"ds": day.isoformat(), "ti": ti})  # type: ignore[typeddict-item]
        log.info("  %s: %d rows for %d users with %s", day, out["rows_written"], out["users"], out["model_version"])
        results.append(out)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def add_recommend_parser(sub: Any, common: argparse.ArgumentParser, pipeline: Path, date: Callable[[str], Any]) -> None:
    """Register ``recommend`` on the ``airflow-ml`` subcommands."""
    recommend = sub.add_parser(
        "recommend",
        parents=[common],
        help="batch inference for a date or range (the recsys_batch_inference task, in this process)",
        description=cmd_recommend.__doc__,
        epilog="Examples:\n  airflow-ml recommend --date 2026-03-22 --to 2026-03-24\n"
        "  airflow-ml recommend --date 2026-03-31 --model-version 20260331-cdab4998",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recommend.add_argument(
        "--pipeline", type=Path, default=pipeline, help="pipeline.yaml (default: the recsys reference)"
    )
    recommend.add_argument("--date", type=date, required=True, help="prediction date (YYYY-MM-DD)")
    recommend.add_argument("--to", type=date, help="last prediction date of a range (inclusive)")
    recommend.add_argument("--model-version", default="champion", help="a pinned version, or champion (default)")
    recommend.add_argument("--json", action="store_true", help="print each date's summary as JSON")
    recommend.set_defaults(func=cmd_recommend)
