"""Run a pipeline's feature steps outside Airflow (the data scientist's laptop loop, CI, demo).

The Airflow DAG runs the same steps one task each through FeatureExtractOperator; both
go through ``Warehouse.replace_partition`` with the contract's query parameters.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import jinja2

from airflow_ml_provider.core.spec import PipelineSpec, SqlStep
from airflow_ml_provider.core.sql import read_sql_file
from airflow_ml_provider.core.warehouse import Warehouse, WriteResult

log = logging.getLogger(__name__)


def render_sql(
    step: SqlStep,
    sql_dir: Path,
    as_of: dt.date,
    spec: PipelineSpec | None = None,
    functions: Mapping[str, Callable[[str], str]] | None = None,
) -> str:
    """Read a step's SQL file and render what Airflow's Jinja would: date macros, ``source()`` and ``ref()``.

    ``functions`` overrides the contract's ``source``/``ref`` (``validate`` marks sources with it).
    """
    return render_sql_file(sql_dir / step.sql, as_of, spec, functions)


def render_sql_file(
    path: Path,
    as_of: dt.date,
    spec: PipelineSpec | None = None,
    functions: Mapping[str, Callable[[str], str]] | None = None,
) -> str:
    """Read any SQL file and render it as ``render_sql`` does (``ds``, ``source()``, ``ref()``)."""
    from airflow_ml_provider.core.references import sql_functions

    text = read_sql_file(path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    names = functions if functions is not None else (sql_functions(spec) if spec is not None else {})
    return env.from_string(text).render(ds=as_of.isoformat(), ds_nodash=as_of.strftime("%Y%m%d"), **names)


def build_features(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dir: Path,
    dates: Iterable[dt.date],
    *,
    labels: bool = False,
    on_step: Callable[[WriteResult], None] | None = None,
    check_first: bool = False,
) -> list[WriteResult]:
    """Run every feature step (and optionally the label step) for each date, in order.

    With ``labels``, a date whose label horizon has not passed is refused before anything is
    written (``HorizonNotPassedError`` names the day it becomes ready).

    With ``check_first`` (``airflow-ml features`` sets it) a date's feature steps are
    all-or-nothing: every step's new rows are computed and checked (``core.preflight``) before
    the first one is written, so a SQL error or a failed ``error`` check in a later step leaves
    every table of that date as it was. It costs a second computation of every step, so bulk
    history builds (train --build-features, fixtures, benches) leave it off.
    """
    from airflow_ml_provider.core.checks import log_results, raise_on_errors
    from airflow_ml_provider.core.preflight import check_steps_before_publish

    steps = [*spec.steps, *([spec.label.step] if labels else [])]
    dates = list(dates)
    if labels and dates:
        from airflow_ml_provider.core.horizon import require_horizon_passed

        require_horizon_passed(warehouse, spec, max(dates), f"labels ({spec.label.step.table})")
    results = []
    for as_of in dates:
        if check_first:
            checked = check_steps_before_publish(warehouse, spec, [sql_dir], as_of)
            log_results([r for r in checked if r.status != "pass"], log)
            raise_on_errors(checked, f"feature steps of {as_of}")
        for step in steps:
            result = warehouse.replace_partition(
                step.table,
                "as_of_date",
                as_of,
                render_sql(step, sql_dir, as_of, spec),
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
