"""A step's SQL rendered as Airflow's Jinja would: ``ds``, ``ds_nodash``, ``source()`` and ``ref()``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path

import jinja2

from airflow_ml_provider.core.contract.spec import PipelineSpec, SqlStep
from airflow_ml_provider.core.warehouse.sql import read_sql_file


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
    return render_sql_file(Path(sql_dir) / step.sql, as_of, spec, functions)


def render_sql_file(
    path: Path,
    as_of: dt.date,
    spec: PipelineSpec | None = None,
    functions: Mapping[str, Callable[[str], str]] | None = None,
) -> str:
    """Read any SQL file and render it as ``render_sql`` does (``ds``, ``source()``, ``ref()``)."""
    from airflow_ml_provider.core.contract.references import sql_functions

    text = read_sql_file(path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    names = functions if functions is not None else (sql_functions(spec) if spec is not None else {})
    return env.from_string(text).render(ds=as_of.isoformat(), ds_nodash=as_of.strftime("%Y%m%d"), **names)
