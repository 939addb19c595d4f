"""SQL rendered as Airflow's Jinja would (``ds``, ``ds_nodash``, ``source()``, ``ref()``), and a source's columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.core.contract.spec import PipelineSpec, SqlStep
from airflow_ml_provider.core.warehouse.sql import read_sql_file

if TYPE_CHECKING:
    from airflow_ml_provider.core.warehouse.interface import Warehouse


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
    import jinja2  # here, not at module level: commands that only read a source's columns need no templates

    from airflow_ml_provider.core.contract.references import sql_functions

    text = read_sql_file(path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    names = functions if functions is not None else (sql_functions(spec) if spec is not None else {})
    return env.from_string(text).render(ds=as_of.isoformat(), ds_nodash=as_of.strftime("%Y%m%d"), **names)


def source_with_columns(
    warehouse: Warehouse, spec: PipelineSpec, role: str, wanted: Sequence[str]
) -> tuple[str, tuple[str, ...]] | None:
    """What ``{{ source(role) }}`` renders and which of ``wanted`` (the SQL's column names) it holds.

    Reads your table under the contract's ``sources`` and ``source_columns``, so a renamed table
    or column is found under its SQL name. None when the contract has no such role or the table
    does not exist (a page or command shows no attributes instead of failing).
    """
    from airflow_ml_provider.core.contract.references import render_source, source_table
    from airflow_ml_provider.exceptions import TableNotFoundError

    if role not in spec.sources:
        return None
    try:
        columns = set(warehouse.table_columns(source_table(spec, role)))
    except TableNotFoundError:
        return None
    mapping = spec.source_columns.get(role, {})
    present = tuple(c for c in wanted if (theirs := mapping.get(c, c)) is not None and theirs in columns)
    return render_source(spec, role), present
