"""``airflow-ml`` commands on the warehouse's data: seed-demo, features, tables, recommend, recommendations."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from airflow_ml_provider.cli_common import (
    add_pipeline_argument,
    cli_artifacts,
    format_table,
    parse_date,
    pipeline_spec,
    positive_int,
    print_json,
    progress,
    warehouse,
)

log = logging.getLogger("airflow_ml")

#: Item attributes `recommendations` shows beside each item, when the items source has them.
ITEM_ATTRIBUTES = ("category", "price")


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Generate the synthetic e-commerce world and load it into the warehouse.

    A warehouse that already has users, items or events is refused unless --force: seeding
    replaces those tables whole.
    """
    from airflow_ml_provider.core.demo import DemoConfig, generate, refuse_existing_sources

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
    wh = warehouse(args, create=True)
    if not args.force:  # before generating: a refusal should be instant
        refuse_existing_sources(wh, f"--warehouse {args.warehouse}" if args.warehouse else repr(wh))
    started = time.monotonic()
    world = generate(cfg, progress=lambda d, n, e: log.info("  day %d/%d: %d events so far", d, n, e))
    for name in ("users", "items", "events"):
        with progress(f"loading {name}"):
            rows = wh.replace_table(name, getattr(world, name))
        log.info("Loaded %-6s %9d rows into %r", name, rows, wh)
    log.info("Seeded the demo world in %.1fs", time.monotonic() - started)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Build the feature partitions of a pipeline for one date or a range.

    Runs what the recsys_features DAG runs. The contract's events checks (`checks.events`) run
    for every date of the range before anything is written; a failed `error` check exits 1,
    naming the check, with no table changed. A date's feature steps are all-or-nothing: every
    step's new rows are computed and checked before the first one is written (--no-preflight
    skips that second computation for bulk history builds, as training's --build-features
    does; each step still checks its own new rows before replacing its partition). --steps
    rebuilds only the steps named and those that ref() them, reading the other steps' published
    partitions (the same rows as a full rebuild). With --labels every date's label horizon is
    checked before anything is written.
    """
    from airflow_ml_provider.core.contract.dates import date_range
    from airflow_ml_provider.core.features.build import build_features

    spec = pipeline_spec(args)
    dates = date_range(args.date, args.to or args.date)
    wh = warehouse(args)
    started = time.monotonic()

    def report(result):  # type: ignore[no-untyped-def]
        log.info("  %-14s %s  %8d rows", result.table, result.partition, result.rows)

    log.info("Building %s features for %d date(s) on %r", spec.name, len(dates), wh)
    with progress(f"building the features of {len(dates)} date(s)"):
        # One call for the whole range: every date's events are checked before the first write.
        results = build_features(
            wh,
            spec,
            args.sql_dir,
            dates,
            labels=args.labels,
            steps=args.steps,
            on_step=report,
            preflight=not args.no_preflight,
            force_replace=args.force_replace,
            logger=log,
        )
    log.info("Wrote %d partitions in %.1fs", len(results), time.monotonic() - started)
    if args.json:
        print_json([r.as_dict() for r in results])
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """Show the warehouse's tables, their partitions and row counts."""
    from airflow_ml_provider.core.warehouse.summary import describe_tables

    wh = warehouse(args)
    rows = describe_tables(wh)
    if args.json:
        print_json(rows)
        return 0
    print(f"Tables in {wh!r}:")
    body = [
        (r["table"], r["rows"], r["partitions"] or None, r["first_partition"], r["last_partition"])
        if r["partitions"]
        else (r["table"], r["rows"], None, None, None)
        for r in rows
    ]
    for line in format_table(body, ("table", "rows", "partitions", "first", "last"), right=("rows", "partitions")):
        print(line)
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """Run batch inference for a date without Airflow: the code the recsys_batch_inference DAG runs.

    Scores the date's candidates (the features must exist) with the champion or --model-version,
    replaces the date's partition of recommendations and records the attempt in
    recommendation_runs (run id `cli__<timestamp>` unless --run-id). With --shards N (default:
    inference.shards of the contract) it runs the DAG's sharded steps one after the other: the
    users split by the same hash, each shard staged, then one checked publish; the partition is
    the same as unsharded.
    """
    from airflow_ml_provider.core.contract.dates import date_range
    from airflow_ml_provider.core.inference.batch import list_length
    from airflow_ml_provider.core.inference.runs import utcnow
    from airflow_ml_provider.core.inference.sharded import recommend
    from airflow_ml_provider.core.inference.shards import check_shard_count
    from airflow_ml_provider.core.registry.models import ModelRegistry

    spec = pipeline_spec(args)
    list_length(spec, args.top_k, "--top-k")  # a bound the contract sets: refused before any run row
    shards = spec.inference.shards if args.shards is None else check_shard_count(args.shards, "--shards")
    wh = warehouse(args)
    artifacts = cli_artifacts(args)
    # An unknown version is the user's typo, and a model whose artifacts are not under the artifact
    # root (a warehouse copied without them) cannot load: say so before any run row is written.
    ModelRegistry(wh, artifact_root=artifacts.root).locate(
        args.model or spec.name, args.model_version, artifacts.exists
    )
    stamp = f"{utcnow():%Y%m%dT%H%M%S}"
    summaries = []
    for day in date_range(args.date, args.to or args.date):
        # One attempt per date: a range gets one run id per date, so each keeps its own runs row.
        run_id = (args.run_id or f"cli__{stamp}") + (f"__{day}" if args.to and args.to != args.date else "")
        with progress(f"scoring the candidates of {day}" + (f" in {shards} shards" if shards > 1 else "")):
            run = recommend(
                wh,
                spec,
                day,
                run_id=run_id,
                shards=shards,
                model_version=args.model_version,
                model_name=args.model,
                top_k=args.top_k,
                artifacts=artifacts,
                logger=log,
            )
        keys = ("run_id", "prediction_date", "model_name", "model_version", "users", "rows_written", "coverage")
        extra = ("catalog_items", "candidate_items", "candidate_item_share", "filled_users")
        summaries.append({k: run[k] for k in keys} | {k: run[k] for k in extra if k in run})
        if not args.json:
            print(
                f"Recommendations for {day} with {run['model_name']} {run['model_version']}: "
                f"{run['rows_written']} rows for {run['users']} users, catalog coverage {run['coverage']:.1%} "
                f"of {run.get('catalog_items', '?')} items"
                + (f", {run['filled_users']} short lists filled from popularity" if run.get("filled_users") else "")
                + f" (run {run_id}). See one list: airflow-ml recommendations --date {day} --pipeline {args.pipeline}"
            )
    if args.json:
        print_json(summaries[0] if len(summaries) == 1 else summaries)
    return 0


def cmd_recommendations(args: argparse.Namespace) -> int:
    """Show a day's recommendation run (users, coverage), its attempts, and one user's list.

    The list shows each item's category and price where the contract's items source has them
    (`sources: items:` and `source_columns:` in pipeline.yaml).
    """
    from airflow_ml_provider.core.features.render import source_with_columns
    from airflow_ml_provider.core.inference.runs import runs_of_date
    from airflow_ml_provider.exceptions import MLProviderError

    spec = pipeline_spec(args)
    wh = warehouse(args)
    attempts = runs_of_date(wh, args.date)
    successful = [a for a in attempts if a["status"] == "success"]
    if not successful:
        tried = "; ".join(f"{a['run_id']} try {a['try_number']}: {a['status']}" for a in attempts)
        raise MLProviderError(
            f"no successful recommendation run for {args.date}{f' (attempts: {tried})' if tried else ''}. "
            f"Run the recsys_batch_inference DAG, or `airflow-ml recommend --date {args.date}`."
        )
    run = successful[0]
    user = (
        args.user
        or wh.query(
            "SELECT MIN(user_id) AS u FROM recommendations WHERE prediction_date = @d", {"d": args.date}
        ).to_pylist()[0]["u"]
    )
    items = source_with_columns(wh, spec, "items", ITEM_ATTRIBUTES)
    attrs = items[1] if items else ()
    join = f" LEFT JOIN {items[0]} AS i ON i.{spec.entities.item} = r.item_id" if items and attrs else ""
    columns = "".join(f", i.{c}" if c in attrs else f", NULL AS {c}" for c in ITEM_ATTRIBUTES)
    rows = wh.query(
        f"SELECT r.rank, r.item_id{columns}, ROUND(r.score, 4) AS score FROM recommendations AS r{join} "
        "WHERE r.prediction_date = @d AND r.user_id = @u ORDER BY r.rank",
        {"d": args.date, "u": user},
        source="recommendations",
    ).to_pylist()
    if not rows:
        raise MLProviderError(
            f"user {user!r} has no recommendations for {args.date}. Check the id; "
            f"`airflow-ml recommendations --date {args.date}` shows the first user's list."
        )
    if args.json:
        print_json({"date": args.date, "run": run, "attempts": attempts, "user": user, "list": rows})
        return 0
    print(
        f"Recommendations for {args.date} (model {run['model_version']}): {run['rows_written']} rows for "
        f"{run['users']} users from {run['candidates']} candidates, catalog coverage {run['coverage']:.1%}"
        + (f", {run['rows_per_second']:,.0f} candidate rows/s" if run["rows_per_second"] else "")
    )
    others = [a for a in attempts if a["status"] != "success"]
    for a in others:
        print(f"  attempt {a['run_id']} try {a['try_number']}: {a['status']}{' - ' + a['error'] if a['error'] else ''}")
    print(f"  list of {user}:")
    body = [
        (r["rank"], r["item_id"], r["category"], None if r["price"] is None else f"{r['price']:.2f}", r["score"])
        for r in rows
    ]
    for line in format_table(body, ("rank", "item", "category", "price", "score"), right=("rank", "price", "score")):
        print("  " + line)
    return 0


def add_data_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register seed-demo, features, tables, recommend and recommendations."""
    seed = sub.add_parser(
        "seed-demo", parents=[common], help="generate the synthetic demo data", description=cmd_seed_demo.__doc__
    )
    seed.add_argument("--users", type=int, default=3000, help="number of users (default: %(default)s)")
    seed.add_argument("--items", type=int, default=600, help="number of items (default: %(default)s)")
    seed.add_argument("--days", type=int, default=60, help="days of events (default: %(default)s)")
    seed.add_argument(
        "--end-date", type=parse_date, default=dt.date(2026, 3, 31), help="last day of events (default: %(default)s)"
    )
    seed.add_argument(
        "--events-per-user-day", type=float, default=0.35, help="mean views per user per day (default: %(default)s)"
    )
    seed.add_argument("--seed", type=int, default=7, help="random seed; same seed, same data (default: %(default)s)")
    seed.add_argument(
        "--drift-from", type=parse_date, help="from this date on, shift tastes and activity (drift injection)"
    )
    seed.add_argument(
        "--drift-category", default="electronics", help="category that gains share under drift (default: %(default)s)"
    )
    seed.add_argument(
        "--force",
        action="store_true",
        help="replace the users, items and events tables of a warehouse that already has them",
    )
    seed.set_defaults(func=cmd_seed_demo)

    feat = sub.add_parser(
        "features", parents=[common], help="build feature partitions for dates", description=cmd_features.__doc__
    )
    add_pipeline_argument(feat)
    feat.add_argument(
        "--sql-dir", type=Path, help="folder the contract's SQL paths are relative to (default: ROOT/sql beside dags/)"
    )
    feat.add_argument("--date", type=parse_date, required=True, help="as-of date (YYYY-MM-DD)")
    feat.add_argument("--to", type=parse_date, help="last as-of date of a range (inclusive)")
    feat.add_argument(
        "--labels", action="store_true", help="also build labels (needs the label horizon to have passed)"
    )
    feat.add_argument(
        "--steps",
        help="comma-separated step tables to rebuild, e.g. user_features,features: those and every step that "
        "ref()s them; the others' published partitions are read as they are (default: every step)",
    )
    feat.add_argument(
        "--no-preflight",
        action="store_true",
        help="bulk history builds: write each step without first computing and checking every step of the "
        "date (the all-or-nothing gate computes each step twice; ADR 3)",
    )
    feat.add_argument(
        "--force-replace",
        action="store_true",
        help="replace existing partitions even from a partial event history or with far fewer users than they "
        "hold (the checks refuse both otherwise)",
    )
    feat.add_argument("--json", action="store_true", help="print the write results as JSON")
    feat.set_defaults(func=cmd_features)

    tables = sub.add_parser(
        "tables", parents=[common], help="list tables, partitions and row counts", description=cmd_tables.__doc__
    )
    tables.add_argument("--json", action="store_true", help="print as JSON")
    tables.set_defaults(func=cmd_tables)

    _add_inference_parsers(sub, common)


def _add_inference_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register recommend and recommendations."""
    rec = sub.add_parser(
        "recommend",
        parents=[common],
        help="run batch inference for a date without Airflow (as the DAG does)",
        description=cmd_recommend.__doc__,
    )
    add_pipeline_argument(rec)
    rec.add_argument("--date", type=parse_date, required=True, help="prediction date (YYYY-MM-DD)")
    rec.add_argument("--to", type=parse_date, help="last prediction date of a range (inclusive), one run per date")
    rec.add_argument("--model-version", default="champion", help="a version from `models list`, or champion")
    rec.add_argument("--model", help="model name (default: the contract's name)")
    rec.add_argument("--top-k", type=positive_int, help="items per user (default: inference.top_k of the contract)")
    rec.add_argument("--run-id", help="recorded in recommendation_runs (default: cli__<UTC timestamp>)")
    rec.add_argument(
        "--shards",
        type=int,
        help="score the users in N shards, one after the other, then publish them as one partition, as the "
        "DAG does (default: inference.shards of the contract)",
    )
    rec.add_argument("--json", action="store_true", help="print the run summary as JSON")
    rec.set_defaults(func=cmd_recommend)

    recs = sub.add_parser(
        "recommendations",
        parents=[common],
        help="a day's run summary and one user's list",
        description=cmd_recommendations.__doc__,
    )
    add_pipeline_argument(recs)
    recs.add_argument("--date", type=parse_date, required=True, help="prediction date (YYYY-MM-DD)")
    recs.add_argument("--user", help="user id (default: the first user with a list)")
    recs.add_argument("--json", action="store_true", help='print {"date", "run", "attempts", "user", "list"}')
    recs.set_defaults(func=cmd_recommendations)
