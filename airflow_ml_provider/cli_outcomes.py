"""``airflow-ml outcomes``: judge a served date's lists once its horizon passed (as OutcomeEvaluationOperator does)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from airflow_ml_provider.cli_common import add_pipeline_argument, format_table, parse_date, pipeline_spec, print_json
from airflow_ml_provider.cli_common import warehouse as _warehouse

log = logging.getLogger("airflow_ml")


def cmd_outcomes(args: argparse.Namespace) -> int:
    """Judge the lists served on --date (to --to) against everything users did in the label horizon after it.

    Beside them, the same day's global popularity list (the top-k items by distinct users over the
    feature lookback, each user's seen items skipped per inference.exclude_seen) is judged on the
    same users. Each date's partition of recommendation_outcomes
    is replaced (a rerun leaves one set) and the realized hit rate and ndcg@k are printed next
    to the popularity list's. A date whose horizon has not passed yet is refused, naming the day
    it becomes ready; nothing is written for it (dates before it in a range stay written).
    """
    from airflow_ml_provider.core.contract.dates import date_range
    from airflow_ml_provider.core.evaluation.outcomes import OUTCOMES_SQL, evaluate_outcomes, headline
    from airflow_ml_provider.core.features.render import render_sql_file

    spec = pipeline_spec(args)
    warehouse = _warehouse(args)
    k, days = spec.inference.top_k, spec.windows.label_horizon_days
    judged: list[dict[str, Any]] = []
    for day in date_range(args.date, args.to or args.date):
        sql = render_sql_file(args.sql_dir / OUTCOMES_SQL, day, spec)
        log.info("Judging the lists served on %s on %r", day, warehouse)
        written, rows = evaluate_outcomes(warehouse, spec, day, sql, run_id="cli", force_replace=args.force_replace)
        log.info("Wrote %d rows to %s (partition %s)", written.rows, written.table, written.partition)
        judged += [{"prediction_date": day.isoformat(), "rows": rows, "summary": headline(rows)}]
    if args.json:
        print_json(judged[0] if len(judged) == 1 else judged)
        return 0
    currency = spec.evaluation.currency
    print(
        f"Realized outcomes: served lists vs the global popularity list, judged on the {days} days after each date "
        f"(hit rate and ndcg@{k} over users active in the horizon; revenue from recommended items, "
        + (f"in {currency})" if currency else "in the items' price unit: evaluation.currency names it)")
    )
    body = [
        (
            entry["prediction_date"],
            h["model_version"],
            h["lists"],
            h["active_users"],
            _fmt(h.get("model_hit_rate"), ".1%"),
            _fmt(h.get("popularity_hit_rate"), ".1%"),
            _fmt(h.get("model_ndcg"), ".4f"),
            _fmt(h.get("popularity_ndcg"), ".4f"),
            _fmt(h.get("model_revenue"), ".2f") or "no prices",
            _fmt(h.get("popularity_revenue"), ".2f") or "no prices",
        )
        for entry in judged
        for h in entry["summary"]
    ]
    revenue = f"revenue {currency}" if currency else "revenue"
    metrics = ("lists", "active", "hit rate", "popular", f"ndcg@{k}", "popular", revenue, "popular")
    for line in format_table(body, ("served", "model version", *metrics), right=metrics):
        print(line)
    return 0


def _fmt(value: float | None, spec: str) -> str | None:
    """``value`` formatted with ``spec``; None stays None (format_table shows it as ``-``)."""
    return None if value is None else format(value, spec)


def add_outcomes_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``outcomes`` on the ``airflow-ml`` subcommands."""
    outcomes = sub.add_parser(
        "outcomes",
        parents=[common],
        help="judge a served date's lists against what users then did (and the popularity list)",
        description=cmd_outcomes.__doc__,
        epilog="Examples:\n  airflow-ml outcomes --date 2026-03-24\n  airflow-ml outcomes --date 2026-03-24 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pipeline_argument(outcomes)
    outcomes.add_argument("--sql-dir", type=Path, help="folder of recsys/outcomes.sql (default: ROOT/sql beside dags/)")
    outcomes.add_argument("--date", type=parse_date, required=True, help="served prediction date to judge (YYYY-MM-DD)")
    outcomes.add_argument("--to", type=parse_date, help="last served date of a range (inclusive)")
    outcomes.add_argument(
        "--force-replace",
        action="store_true",
        help="write even a degenerate result (an empty catalogue, a list source with no lists) over the date",
    )
    outcomes.add_argument("--json", action="store_true", help='print {"prediction_date", "rows", "summary"}')
    outcomes.set_defaults(func=cmd_outcomes)
