"""Run a pipeline's feature steps outside Airflow (the data scientist's laptop loop, CI, demo).

The Airflow DAG runs the same steps one task each through FeatureExtractOperator; both
go through ``Warehouse.replace_partition`` with the contract's query parameters.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import jinja2

from airflow_ml_provider.core.spec import PipelineSpec, SqlStep
from airflow_ml_provider.core.sql import read_sql_file
from airflow_ml_provider.core.warehouse import Warehouse, WriteResult

log = logging.getLogger(__name__)


def render_sql(step: SqlStep, sql_dir: Path, as_of: dt.date) -> str:
    """Read a step's SQL file and render the Jinja date macros Airflow would provide."""
    text = read_sql_file(sql_dir / step.sql)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(text).render(ds=as_of.isoformat(), ds_nodash=as_of.strftime("%Y%m%d"))


def build_features(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dir: Path,
    dates: Iterable[dt.date],
    *,
    labels: bool = False,
    on_step: Callable[[WriteResult], None] | None = None,
) -> list[WriteResult]:
    """Run every feature step (and optionally the label step) for each date, in order."""
    steps = [*spec.steps, *([spec.label.step] if labels else [])]
    results = []
    for as_of in dates:
        for step in steps:
            result = warehouse.replace_partition(
                step.table,
                "as_of_date",
                as_of,
                render_sql(step, sql_dir, as_of),
                spec.query_params(as_of),
                sql_source=str(sql_dir / step.sql),
                cluster_by=tuple(step.cluster_by),
            )
            results.append(result)
            if on_step:
                on_step(result)
    return results


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
