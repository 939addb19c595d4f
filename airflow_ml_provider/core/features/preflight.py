"""A date's feature steps are all-or-nothing: every step's new rows are checked before any step publishes.

Each step's SQL becomes a common table expression of one query, and a step that ``ref()``s an
earlier one reads that expression, the earlier step's (not yet written) rows, so the query computes
exactly what every step would publish on top of the others' new partitions. Each step's data
checks aggregate its expression (a step without checks is still counted), so a SQL error or an
empty result in the last step fails before the first step writes. Only then are the partitions
replaced, one ``replace_partition_checked`` each, in order. See
docs/adr/0003-feature-steps-all-or-nothing.md.

One query, not one per step: a step read by a later one (candidates, read by features) is then
computed once where the engine materialises an expression read twice (DuckDB does), instead of
once for its own checks and again inside each step that reads it (issue 26: at 1M users that
was 1.6 times the steps' own work). When the query fails on the SQL, the steps run one query each,
as they used to, so the error names the step's SQL file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.features.checks import CheckQuery, CheckResult, table_check_query
from airflow_ml_provider.exceptions import EmptyResultError, SQLTemplateError, TableNotFoundError

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
    spec: PipelineSpec,
    sql_dirs: Sequence[Path],
    as_of: dt.date,
    steps: Collection[str] | None = None,
    *,
    refer: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """Per feature step table: its partition-wrapped SQL with every ``ref()`` of an earlier step inlined.

    Uses ``@__partition`` (the as-of date) and the contract's query parameters. A ``ref()`` of
    a table that is not an earlier feature step (a later step, the label) stays the table, and
    so does one of a step outside ``steps`` (when given: the steps being rebuilt), whose
    published partition is what the rebuilt step reads. ``refer`` (table -> name) makes a
    ``ref()`` of an earlier step that name instead of the inlined subquery.
    """
    from airflow_ml_provider.core.contract.references import ref_table, render_source
    from airflow_ml_provider.core.features.render import render_sql
    from airflow_ml_provider.core.warehouse.sql import partition_select

    composed: dict[str, str] = {}

    def ref(name: str) -> str:
        table = ref_table(spec, name)
        if table not in composed:
            return table
        return refer(table) if refer else f"(\n{composed[table]}\n)"

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
    sql, params, queries = _one_query(spec, sql_dirs, as_of, steps)
    try:
        row = warehouse.query(sql, params, source=f"feature steps of {as_of} (checked before publishing)")
    except (SQLTemplateError, TableNotFoundError):
        # An error in some step's SQL, and the one query names no step: one query per step raises
        # the failing step's own error. Anything else (a lock, a byte budget, memory) is raised as
        # it is: the query per step would only compute every step again to meet it again.
        step_by_step(warehouse, spec, sql_dirs, as_of, steps)
        raise
    return _judge(spec, sql_dirs, as_of, queries, row.to_pylist()[0])


def _step_name(table: str) -> str:
    return f"aml_preflight_{table}"


def _one_query(
    spec: PipelineSpec, sql_dirs: Sequence[Path], as_of: dt.date, steps: Collection[str] | None
) -> tuple[str, dict[str, Any], dict[str, CheckQuery]]:
    """The one query of every step's checks (each step a CTE), its parameters, and each step's aggregation.

    Step i's aggregation names its columns and parameters ``s<i>_...``.
    """
    composed = composed_step_sql(spec, sql_dirs, as_of, steps, refer=_step_name)
    ctes = ",\n".join(f"{_step_name(table)} AS (\n{sql}\n)" for table, sql in composed.items())
    params: dict[str, Any] = {**spec.query_params(as_of), "__partition": as_of}
    queries: dict[str, CheckQuery] = {}
    parts = []
    for i, table in enumerate(composed):
        prefix = f"s{i}_"
        query = queries[table] = _step_checks(spec, table, _step_name(table), as_of, prefix)
        params.update(query.params)
        parts.append(f"(\n{query.sql}\n) AS {prefix}checks")
    return f"WITH\n{ctes}\nSELECT *\nFROM " + "\nCROSS JOIN ".join(parts), params, queries


def _step_checks(spec: PipelineSpec, table: str, relation: str, as_of: dt.date, prefix: str = "") -> CheckQuery:
    """The step's checks over ``relation``, or only its row count for a step without checks."""
    return table_check_query(spec, table, relation, as_of, prefix=prefix) or CheckQuery(
        table, f"SELECT COUNT(*) AS {prefix}chk_rows FROM {relation} AS chk_rows_relation", {}, lambda row: []
    )


def _judge(
    spec: PipelineSpec,
    sql_dirs: Sequence[Path],
    as_of: dt.date,
    queries: dict[str, CheckQuery],
    row: dict[str, object],
) -> list[CheckResult]:
    """The checks' verdicts, in step order; the first step without rows raises ``EmptyResultError``."""
    results: list[CheckResult] = []
    for i, (table, query) in enumerate(queries.items()):
        if not row.get(f"s{i}_chk_rows"):
            step = next(s for s in spec.steps if s.table == table)
            raise _empty(sql_root(step, sql_dirs) / step.sql, table, as_of)
        results += query.evaluate(row)
    return results


def _empty(path: Path, table: str, as_of: dt.date) -> EmptyResultError:
    return EmptyResultError(
        f"{path}: produced no rows for {table} partition {PARTITION_COLUMN}={as_of}; no table of that date "
        "was written. Check that the source tables have data up to that date."
    )


def step_by_step(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dirs: Sequence[Path],
    as_of: dt.date,
    steps: Collection[str] | None = None,
) -> list[CheckResult]:
    """``check_steps_before_publish`` with a query per step (the steps it reads inlined): its error names the step.

    Each step it reads is computed again inside it, so this is the slow form, for errors.
    """
    composed = composed_step_sql(spec, sql_dirs, as_of, steps)
    params = {**spec.query_params(as_of), "__partition": as_of}
    results: list[CheckResult] = []
    for step in [s for s in spec.steps if s.table in composed]:
        path = sql_root(step, sql_dirs) / step.sql
        relation = f"(\n{composed[step.table]}\n)"
        query = _step_checks(spec, step.table, relation, as_of)
        source = f"{path} (checked before publishing)"
        row = warehouse.query(query.sql, {**params, **query.params}, source=source).to_pylist()[0]
        if not row.get("chk_rows"):
            raise _empty(path, step.table, as_of)
        results += query.evaluate(row)
    return results
