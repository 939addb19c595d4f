"""The sample the contract's SQL runs on: a tiny demo world, and each SQL step run on it as the pipeline would.

Every step is rendered, parsed as GoogleSQL, transpiled, bound and written with
``Warehouse.replace_partition``, on DuckDB, into a throwaway warehouse the caller provides.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.core.validate.report import Check, SampleRun, ValidationReport, sentence

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec, SqlStep
    from airflow_ml_provider.core.warehouse.interface import Warehouse

PARTITION = "as_of_date"
#: Source roles the demo world can fill, and the demo table that fills each.
SAMPLE_TABLES = ("events", "items", "users")
#: Sample size: a few dozen users are enough for every step to return rows, and fast.
SAMPLE_USERS = 48
SAMPLE_ITEMS = 60
SAMPLE_END = dt.date(2026, 3, 31)
_MAX_SAMPLE_DAYS = 400


def sample_as_of(spec: PipelineSpec) -> dt.date:
    """The as-of date the SQL runs for: the newest one whose labels the sample can fill."""
    return SAMPLE_END - dt.timedelta(days=spec.windows.label_horizon_days)


def sample_days(spec: PipelineSpec) -> int:
    """Days of sample events: the feature lookback and the label horizon, plus a week of slack."""
    w = spec.windows
    return min(w.feature_lookback_days + w.label_horizon_days + 7, _MAX_SAMPLE_DAYS)


def seed_sample(report: ValidationReport, spec: PipelineSpec, sample: Warehouse) -> bool:
    """Load a tiny demo world into ``sample`` under the contract's table and column names."""
    from airflow_ml_provider.core.contract.references import in_source_shape
    from airflow_ml_provider.core.demo import DemoConfig, generate

    try:
        cfg = DemoConfig(
            users=SAMPLE_USERS,
            items=SAMPLE_ITEMS,
            days=sample_days(spec),
            end_date=SAMPLE_END,
            events_per_user_day=1.0,
        )
        world = generate(cfg)
        loaded = []
        for role, table in spec.sources.items():
            if role in SAMPLE_TABLES:
                rows = sample.replace_table(table, in_source_shape(spec, role, getattr(world, role)))
                loaded.append(f"{table} ({rows} rows)")
    except Exception as err:
        report.add("sample data", "FAIL", f"could not build the sample warehouse: {type(err).__name__}: {err}")
        return False
    unknown = sorted(set(spec.sources) - set(SAMPLE_TABLES))
    note = (
        f"; no sample for source role(s) {', '.join(unknown)}: the demo world has {', '.join(SAMPLE_TABLES)} only, "
        "so SQL reading those tables cannot run here"
        if unknown
        else ""
    )
    report.add(
        "sample data",
        "PASS",
        f"demo world of {cfg.users} users, {cfg.items} items, {cfg.days} days ({cfg.start_date}..{cfg.end_date}) "
        f"loaded as {', '.join(loaded) or 'nothing'}; SQL runs for as_of {sample_as_of(spec)}{note}",
    )
    return True


def _tables_read(sql: str, source: str) -> set[str]:
    from sqlglot import exp

    from airflow_ml_provider.core.warehouse.sql import parse

    return {t.name for t in parse(sql, source).find_all(exp.Table)}


def run_step(
    report: ValidationReport, spec: PipelineSpec, step: SqlStep, sql_dir: Path, sample: Warehouse, run: SampleRun
) -> Check:
    """Parse a step's SQL as GoogleSQL, transpile it and run it on the sample, writing its partition."""
    from airflow_ml_provider.core.contract.references import direct_source_reads, sentinel_functions
    from airflow_ml_provider.core.features.render import render_sql
    from airflow_ml_provider.core.warehouse.sql import bind_params, parse, to_duckdb

    name, source = f"sql {step.sql}", str(sql_dir / step.sql)
    try:
        direct = direct_source_reads(
            render_sql(step, sql_dir, run.as_of, functions=sentinel_functions(spec)), spec, source
        )
        if direct:
            run.failed.add(step.table)
            return report.add(
                name,
                "FAIL",
                f"names source table(s) {', '.join(direct)} directly; write {{{{ source('<role>') }}}} instead "
                f"(roles: {', '.join(f'{r} = {t}' for r, t in sorted(spec.sources.items()))}) so the table "
                "comes from pipeline.yaml",
            )
        text = render_sql(step, sql_dir, run.as_of, spec)
        parse(text, source)
        blocked = sorted(_tables_read(text, source) & run.failed)
        if blocked:
            run.failed.add(step.table)
            return report.add(
                name, "SKIP", f"parses as GoogleSQL; not run: it reads {', '.join(blocked)}, which failed"
            )
        bind_params(text, spec.query_params(run.as_of), source)
        to_duckdb(text, source)
        result = sample.replace_partition(
            step.table,
            PARTITION,
            run.as_of,
            text,
            spec.query_params(run.as_of),
            sql_source=source,
            cluster_by=tuple(step.cluster_by),
            allow_empty=True,
        )
    except Exception as err:
        run.failed.add(step.table)
        return report.add(name, "FAIL", sentence(err))
    run.ran[step.table] = result.rows
    run.rendered[step.table] = text
    if result.rows == 0:
        return report.add(
            name,
            "PASS",
            f"parses as GoogleSQL and runs on DuckDB, but wrote 0 rows to {step.table} for {run.as_of} on the "
            "sample; check its joins and date filters",
        )
    return report.add(
        name, "PASS", f"parses as GoogleSQL and runs on DuckDB: {result.rows} rows in {step.table} for {run.as_of}"
    )
