"""A date's feature steps are all-or-nothing: every step's new rows are checked before any step publishes.

Each step's SQL is composed with the steps it ``ref()``s inlined as subqueries of their own
(not yet written) rows, so one query per step computes exactly what that step would publish
on top of the others' new partitions. The step's data checks run on that query, and a step
without checks is still run once (as a row count), so a SQL error or an empty result in the
last step fails before the first step writes. Only then are the partitions replaced, one
``replace_partition_checked`` each, in order. See docs/adr/0003-feature-steps-all-or-nothing.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.core.features.checks import CheckResult, table_check_query
from airflow_ml_provider.exceptions import EmptyResultError

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec, SqlStep
    from airflow_ml_provider.core.warehouse.interface import Warehouse

PARTITION_COLUMN = "as_of_date"


def sql_root(step: SqlStep, sql_dirs: Sequence[Path]) -> Path:
    """The first ``sql_dirs`` folder holding the step's SQL file (the DAG's template_searchpath order)."""
    for folder in sql_dirs:
        if (Path(folder) / step.sql).is_file():
            return Path(folder)
    return Path(sql_dirs[0]) if sql_dirs else Path()  # read_sql_file names what is missing


def composed_step_sql(
    spec: PipelineSpec, sql_dirs: Sequence[Path], as_of: dt.date, steps: Collection[str] | None = None
) -> dict[str, str]:
    """Per feature step table: its partition-wrapped SQL with every ``ref()`` of an earlier step inlined.

    Uses ``@__partition`` (the as-of date) and the contract's query parameters. A ``ref()`` of
    a table that is not an earlier feature step (a later step, the label) stays the table, and
    so does one of a step outside ``steps`` (when given: the steps being rebuilt), whose
    published partition is what the rebuilt step reads.
    """
    from airflow_ml_provider.core.contract.references import ref_table, render_source
    from airflow_ml_provider.core.features.render import render_sql
    from airflow_ml_provider.core.warehouse.sql import partition_select

    composed: dict[str, str] = {}

    def ref(name: str) -> str:
        table = ref_table(spec, name)
        return f"(\n{composed[table]}\n)" if table in composed else table

    functions: dict[str, Callable[[str], str]] = {"source": lambda role: render_source(spec, role), "ref": ref}
    for step in spec.steps:
        if steps is not None and step.table not in steps:
            continue
        root = sql_root(step, sql_dirs)
        text = render_sql(step, root, as_of, spec, functions=functions)
        composed[step.table] = partition_select(text, PARTITION_COLUMN, str(root / step.sql))
    return composed


def check_steps_before_publish(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dirs: Sequence[Path],
    as_of: dt.date,
    steps: Collection[str] | None = None,
) -> list[CheckResult]:
    """Run each feature step's (or only ``steps``') checks on the rows it would write for ``as_of``; nothing written.

    Raises ``EmptyResultError`` for a step that would write no rows and whatever the warehouse
    raises for a SQL error; the caller gates on the returned results (``raise_on_errors``).
    """
    composed = composed_step_sql(spec, sql_dirs, as_of, steps)
    params = {**spec.query_params(as_of), "__partition": as_of}
    results: list[CheckResult] = []
    for step in [s for s in spec.steps if s.table in composed]:
        path = sql_root(step, sql_dirs) / step.sql
        source = f"{path} (checked before publishing)"
        relation = f"(\n{composed[step.table]}\n)"
        query = table_check_query(spec, step.table, relation, as_of)
        sql = query.sql if query else f"SELECT COUNT(*) AS chk_rows FROM {relation} AS chk_rows_relation"
        row = warehouse.query(sql, {**params, **(query.params if query else {})}, source=source).to_pylist()[0]
        if not row.get("chk_rows"):
            raise EmptyResultError(
                f"{path}: produced no rows for {step.table} partition "
                f"{PARTITION_COLUMN}={as_of}; no table of that date was written. Check that the source "
                "tables have data up to that date."
            )
        if query is not None:
            results += query.evaluate(row)
    return results
