"""What a day costs on BigQuery: the bytes each query job of one daily run would bill, and its on-demand price.

Two phases, both through the real ``google-cloud-bigquery`` client and the product's
``BigQueryWarehouse`` against the local BigQuery endpoint (``tests/fakes/bigquery.py``):

1. **Record** one daily run on a small demo world (``--record-users``, items and events per user as
   in ``core/demo.py``): the product's own stage functions run as the DAGs call them, and every
   query job they send is kept exactly as sent (SQL, parameters, default dataset):
   features (``build_features`` with the preflight: source checks, the would-be rows of every
   step, each step's staging, checks and publish), batch inference (``run_batch_inference``: run
   rows, the model registry, catalogue coverage, the candidates' read, the popularity fill, the
   publish), drift (``run_drift_check``) and outcomes (``evaluate_outcomes`` of the newest date
   whose horizon has passed). A model is trained first on the same world (DuckDB, the local
   trainer) and registered as champion, so inference and drift read what a real model reads.
   The first drift check of that model version runs before the day, apart: it builds the
   per-segment references once per version, so it is priced on its own.
2. **Price** each recorded job for worlds of ``--users`` (default 100k and 1M): a dry run of the
   same job, whose ``totalBytesProcessed`` the endpoint computes with BigQuery's documented
   on-demand rules (``tests/fakes/bigquery_billing.py``: referenced columns sized by type,
   partition pruning) from **declared** table sizes: the small world's rows per partition and
   bytes per row of every table, scaled by users / record-users (the model registry and run
   tables stay as they are), each partitioned table holding ``--history-days`` daily
   partitions. Nothing of the large world is materialised. The bench adds the 10 MB minimums
   per table and per query and prices the billed bytes.

Assumptions the table depends on (see docs/gcp.md, "What a day costs"): the ``events`` source is
partitioned by day on ``event_ts`` (the demo loads it unpartitioned; with an unpartitioned events
table every events read bills the whole history); clustering saves nothing in a dry run.

    .venv/bin/python bench/cost.py [--users 100000 1000000] [--record-users 300] [--history-days 365]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUN_DATE = dt.date(2026, 3, 31)
PROJECT, DATASET = "cost-project", "recsys"
#: Tables whose size does not grow with users: the registry, run and result bookkeeping.
#: The stage that is not part of every day (its jobs are priced apart from the daily total).
ONCE = "drift-first-check"
FIXED_TABLES = {"ml_models", "drift_profiles", "drift_results", "data_checks", "recommendation_runs"}


@contextlib.contextmanager
def local_bigquery() -> Iterator[Any]:
    """The local BigQuery (REST + Storage Read) with the environment pointing the Google clients at it."""
    from tests.fakes.bigquery import FakeBigQuery
    from tests.fakes.bigquery_storage import FakeBigQueryStorage
    from tests.fakes.google_auth import google_cloud_connection_uri

    bigquery = FakeBigQuery().start()
    storage = FakeBigQueryStorage(bigquery).start()
    bigquery.create_dataset(PROJECT, DATASET)
    env = {
        "BIGQUERY_EMULATOR_HOST": bigquery.url,
        "BIGQUERY_STORAGE_EMULATOR_HOST": storage.host,
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": google_cloud_connection_uri(PROJECT, bigquery.url + "/token"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield bigquery
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        storage.stop()
        bigquery.stop()


#: job id -> the ``source`` the product named the query with (its SQL file, or what it is for).
SOURCES: dict[str, str] = {}


def gcp_warehouse(stage: str) -> Any:
    """The product's BigQuery warehouse, labelling its jobs with ``stage`` and remembering each job's source."""
    from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
    from airflow_ml_provider.core.contract.config import PlatformConfig

    class NamingWarehouse(BigQueryWarehouse):
        def _run(self, sql: str, params: Any, source: str, **options: Any) -> Any:
            job = super()._run(sql, params, source, **options)
            SOURCES[job.job_id] = source.replace(str(REPO) + "/", "")
            return job

    config = PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US")
    return NamingWarehouse(config, labels={"aml-cost-stage": stage})


def train_champion(world: Any, spec: Any, workdir: Path) -> tuple[Any, str]:
    """Train a model on ``world`` locally (DuckDB, the subprocess trainer); its envelope and folder."""
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.training.run import prepare_training_job, read_trained_envelope, train_model
    from tests.paths import PIPELINE, SQL_DIR

    wh = DuckDBWarehouse(workdir / "train.duckdb")
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    fit, valid = spec.training_dates(RUN_DATE)
    build_features(wh, spec, SQL_DIR, [*fit, *valid], labels=True)
    options = {"run_date": RUN_DATE, "version": "cost", "artifacts_root": (workdir / "artifacts").as_uri()}
    train_model(wh, spec, PIPELINE, LocalTrainingRunner(), **options)
    job = prepare_training_job(wh, spec, PIPELINE, export=False, **options)
    return read_trained_envelope(job), job.model_dir


def record_daily_run(bigquery: Any, record_users: int, workdir: Path) -> list[dict[str, Any]]:
    """Run one day's stages on a small world against the local BigQuery; every query job they sent."""
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.drift.run import run_drift_check
    from airflow_ml_provider.core.evaluation.horizon import newest_ready_date
    from airflow_ml_provider.core.evaluation.outcomes import evaluate_outcomes
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.features.render import render_sql_file
    from airflow_ml_provider.core.inference.batch import run_batch_inference
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.warehouse.ddl import DDL_DIR, ensure_tables
    from tests.paths import PIPELINE, SQL_DIR

    spec = load_spec(PIPELINE)
    world = generate(DemoConfig(users=record_users, items=max(record_users // 5, 10), days=74, end_date=RUN_DATE))
    envelope, model_dir = train_champion(world, spec, workdir)

    setup = gcp_warehouse("setup")
    for name in ("users", "items", "events"):
        setup.replace_table(name, getattr(world, name))
    # A production events table is partitioned by day on its timestamp (an assumption: docs/gcp.md).
    bigquery.meta(PROJECT, DATASET, "events").set_partitioning({"type": "DAY", "field": "event_ts"})
    ensure_tables(setup, *sorted(p.stem for p in DDL_DIR.glob("*.sql")))
    registry = ModelRegistry(setup)
    registry.register_trained(envelope, model_dir)
    registry.promote(envelope.name, envelope.version, blessed_by="bench/cost.py", reason="priced run")
    served = newest_ready_date(RUN_DATE, spec.windows.label_horizon_days)
    # The feature history a daily run finds: the fit window (the drift check's segment references
    # are built from it once per model version), the date outcomes judge, and yesterday.
    fit, _ = spec.training_dates(RUN_DATE)
    build_features(setup, spec, SQL_DIR, sorted({*fit, served, RUN_DATE - dt.timedelta(days=1)}))
    run_batch_inference(setup, spec, served, run_id="cost-served")

    bigquery.documented_billing = True  # measure each table the recorded jobs read (seen_stats)
    before = set(bigquery.jobs)
    stages = [
        # The first drift check of a model version also builds its per-segment references from the
        # training window (core/drift/store.py: once per version); later days read them back.
        (ONCE, lambda wh: run_drift_check(wh, spec, served, run_id="cost-first", fail_on="never")),
        ("features", lambda wh: build_features(wh, spec, SQL_DIR, [RUN_DATE], preflight=True)),
        ("inference", lambda wh: run_batch_inference(wh, spec, RUN_DATE, run_id="cost-run")),
        ("drift", lambda wh: run_drift_check(wh, spec, RUN_DATE, run_id="cost-run", fail_on="never")),
        (
            "outcomes",
            lambda wh: evaluate_outcomes(
                wh,
                spec,
                served,
                render_sql_file(SQL_DIR / "recsys" / "outcomes.sql", served, spec),
                run_id="cost-run",
                today=RUN_DATE,
            ),
        ),
    ]
    for stage, run in stages:
        run(gcp_warehouse(stage))
    recorded = []
    for job_id, job in bigquery.jobs.items():
        config = job.resource["configuration"]
        if job_id in before or "query" not in config:
            continue
        recorded.append(
            {
                "stage": config.get("labels", {}).get("aml-cost-stage", "?"),
                "source": SOURCES.get(job_id, "?"),
                "query": config["query"]["query"],
                "parameters": config["query"].get("queryParameters", []),
                "destination": (config["query"].get("destinationTable") or {}).get("tableId"),
            }
        )
    return recorded


def declared_world(bigquery: Any, factor: float, history_days: int) -> dict[tuple[str, str, str], Any]:
    """Every table the recorded jobs read, its rows scaled by ``factor`` over ``history_days`` daily partitions."""
    days = [RUN_DATE - dt.timedelta(days=i) for i in range(history_days)]
    out = {}
    for key, (meta, stats) in bigquery.seen_stats.items():
        fixed = target_table(meta.table) in FIXED_TABLES
        partitions = days if meta.partition_field and not fixed else None
        out[key] = stats.scaled(1.0 if fixed else factor, partitions)
    return out


def target_table(name: str) -> str:
    """The table a staging table (``_staging_<table>_<YYYYMMDD>_<id>``) is published into, else ``name``."""
    if not name.startswith("_staging_"):
        return name
    return name.removeprefix("_staging_").rsplit("_", 2)[0]


def describe(job: dict[str, Any], bigquery: Any) -> str:
    """A job as one line: the stage, the statement and what it reads and writes."""
    import sqlglot
    from sqlglot import exp

    from tests.fakes.bigquery_billing import read_usage
    from tests.fakes.bigquery_sql import decode_parameters

    tree = sqlglot.parse_one(job["query"], read="bigquery")
    tables = {k: meta for k, (meta, _) in bigquery.seen_stats.items()}
    reads = read_usage(job["query"], decode_parameters(job["parameters"]), tables, project=PROJECT, dataset=DATASET)
    names = sorted({_short(k[2]) for k in reads})
    if isinstance(tree, exp.Create):
        verb = f"create {_short(tree.this.find(exp.Table).name)}"
    elif isinstance(tree, exp.Insert):
        verb = f"insert {_short(tree.this.find(exp.Table).name)}"
    elif isinstance(tree, exp.Update | exp.Delete | exp.Merge):
        verb = f"{tree.key} {_short(tree.this.find(exp.Table).name if tree.this else '?')}"
    elif job["destination"] and not job["destination"].startswith("anon_"):
        verb = f"publish {job['destination']}"
    else:
        verb = "select"
    return f"{job['stage']}: {job['source']} [{verb} <- {', '.join(names) or '-'}]"


def _short(name: str) -> str:
    """A staging table's name without its random suffix."""
    return "staging" if name.startswith("_staging_") else name


def price(bigquery: Any, recorded: list[dict[str, Any]], users: int, record_users: int, history_days: int) -> list:
    """Dry-run every recorded job through the real client against the declared world of ``users``."""
    from google.cloud import bigquery as bq

    from tests.fakes.bigquery_billing import bytes_billed, cost_usd, is_free

    with bigquery.lock:
        for key, (meta, _) in bigquery.seen_stats.items():
            if key not in bigquery.tables:  # a staging table, dropped after its publish
                bigquery._create(dataclasses.replace(meta, expires_ms=None))
        bigquery.declared_stats = declared_world(bigquery, users / record_users, history_days)
    client = gcp_warehouse("price").client
    rows = []
    for job in recorded:
        config = bq.QueryJobConfig(
            dry_run=True,
            use_query_cache=False,
            use_legacy_sql=False,
            default_dataset=f"{PROJECT}.{DATASET}",
            query_parameters=[_parameter(p) for p in job["parameters"]],
        )
        done = client.query(job["query"], job_config=config)
        processed = int(done.total_bytes_processed or 0)
        tables = _tables_read(job, bigquery)
        billed = 0 if is_free(job["query"]) else bytes_billed(processed, tables)
        rows.append(
            {
                "job": describe(job, bigquery),
                "bytes_processed": processed,
                "bytes_billed": billed,
                "cost_usd": cost_usd(billed),
            }
        )
    bigquery.declared_stats = {}
    return rows


def _tables_read(job: dict[str, Any], bigquery: Any) -> int:
    from tests.fakes.bigquery_billing import read_usage
    from tests.fakes.bigquery_sql import decode_parameters

    tables = {k: meta for k, (meta, _) in bigquery.seen_stats.items()}
    return len(read_usage(job["query"], decode_parameters(job["parameters"]), tables, project=PROJECT, dataset=DATASET))


def _parameter(api: dict[str, Any]) -> Any:
    from google.cloud import bigquery as bq

    if "arrayType" in api.get("parameterType", {}):
        return bq.ArrayQueryParameter.from_api_repr(api)
    return bq.ScalarQueryParameter.from_api_repr(api)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from tests.fakes.bigquery_billing import PRICE_PER_TIB_USD, PRICE_SOURCE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000], help="world sizes to price")
    parser.add_argument("--record-users", type=int, default=300, help="users of the small world that is run")
    parser.add_argument("--history-days", type=int, default=365, help="daily partitions each table holds")
    parser.add_argument("--jobs", action="store_true", help="print every job's row, not only the largest")
    parser.add_argument("--save-jobs", type=Path, help="write the recorded jobs (SQL, parameters) to this JSON file")
    args = parser.parse_args(argv)

    started = time.monotonic()
    logging.disable(logging.WARNING)  # the stages' job logs (and the offline location probes) drown the table
    with tempfile.TemporaryDirectory(prefix="aml-cost-") as tmp, local_bigquery() as bigquery:
        os.environ.setdefault("AIRFLOW_ML_SQL_DIR", str(REPO / "sql"))
        recorded = record_daily_run(bigquery, args.record_users, Path(tmp))
        if args.save_jobs:
            args.save_jobs.write_text(json.dumps(recorded, indent=1, default=str))
        worlds = {}
        for users in args.users:
            rows = price(bigquery, recorded, users, args.record_users, args.history_days)
            worlds[users] = rows
    report = print_tables(worlds, args.jobs)
    result = {
        "bench": "cost",
        "price_per_tib_usd": PRICE_PER_TIB_USD,
        "price_source": PRICE_SOURCE,
        "record_users": args.record_users,
        "history_days": args.history_days,
        "query_jobs": len(recorded),
        "worlds": report,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result))
    return result


def print_tables(worlds: dict[int, list[dict[str, Any]]], every_job: bool) -> dict[str, Any]:
    """One table per world: the day's jobs (alike jobs summed), the stage totals, the day's total."""
    report: dict[str, Any] = {}
    w = 96
    for users, all_rows in worlds.items():
        rows = [r for r in all_rows if not r["job"].startswith(ONCE)]
        once = [r for r in all_rows if r["job"].startswith(ONCE)]
        grouped: dict[str, dict[str, Any]] = {}
        for r in rows:
            g = grouped.setdefault(r["job"], {"jobs": 0, "bytes_processed": 0, "bytes_billed": 0, "cost_usd": 0.0})
            g["jobs"] += 1
            for k in ("bytes_processed", "bytes_billed", "cost_usd"):
                g[k] += r[k]
        print(f"\n{users:,} users: {len(rows)} query jobs a day")
        print(
            f"{'job (stage: source [statement <- tables read])':<{w}} {'n':>3} "
            f"{'processed':>10} {'billed':>10} {'USD':>8}"
        )
        ordered = sorted(grouped.items(), key=lambda kv: -kv[1]["bytes_billed"])
        shown = ordered if every_job else ordered[:15]
        for name, g in shown:
            print(
                f"{name[:w]:<{w}} {g['jobs']:>3} {human(g['bytes_processed']):>10} "
                f"{human(g['bytes_billed']):>10} {g['cost_usd']:>8.4f}"
            )
        rest = ordered[len(shown) :]
        if rest:
            billed, cost = sum(g["bytes_billed"] for _, g in rest), sum(g["cost_usd"] for _, g in rest)
            jobs = sum(g["jobs"] for _, g in rest)
            print(f"{'(the other jobs, each under 10 MB processed or alike; --jobs lists them)':<{w}} {jobs:>3} "
                  f"{'':>10} {human(billed):>10} {cost:>8.4f}")  # fmt: skip
        stages: dict[str, dict[str, Any]] = {}
        for r in rows:
            st = stages.setdefault(r["job"].split(":")[0], {"jobs": 0, "bytes_billed": 0, "cost_usd": 0.0})
            st["jobs"] += 1
            st["bytes_billed"] += r["bytes_billed"]
            st["cost_usd"] += r["cost_usd"]
        for stage, st in stages.items():
            print(
                f"{'total ' + stage:<{w}} {st['jobs']:>3} {'':>10} "
                f"{human(st['bytes_billed']):>10} {st['cost_usd']:>8.4f}"
            )
        total_billed = sum(r["bytes_billed"] for r in rows)
        total_cost = sum(r["cost_usd"] for r in rows)
        print(f"{'ONE DAILY RUN':<{w}} {len(rows):>3} {'':>10} {human(total_billed):>10} {total_cost:>8.4f}")
        once_billed, once_cost = sum(r["bytes_billed"] for r in once), sum(r["cost_usd"] for r in once)
        label = "drift on a new model version's first day, instead of total drift (builds references)"
        print(f"{label:<{w}} {len(once):>3} {'':>10} {human(once_billed):>10} {once_cost:>8.4f}")
        report[str(users)] = {
            "jobs": len(rows),
            "bytes_processed": sum(r["bytes_processed"] for r in rows),
            "bytes_billed": total_billed,
            "cost_usd": round(total_cost, 4),
            "cost_usd_30_days": round(30 * total_cost, 2),
            "stages": {k: {**v, "cost_usd": round(v["cost_usd"], 4)} for k, v in stages.items()},
            "first_drift_check_of_a_version": {
                "jobs": len(once),
                "bytes_billed": once_billed,
                "cost_usd": round(once_cost, 4),
            },
            "largest": [{"job": n, **{**g, "cost_usd": round(g["cost_usd"], 4)}} for n, g in ordered[:5]],
        }
    return report


if __name__ == "__main__":
    main()
