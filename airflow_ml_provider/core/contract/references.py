"""``{{ source('events') }}`` and ``{{ ref('candidates') }}``: SQL names tables through the contract.

The functions render the table names pipeline.yaml configures, the same on DuckDB and BigQuery,
so pointing ``sources: events:`` at another table needs no SQL edit (dbt users know the style).
``direct_source_reads`` finds SQL that names a source table itself, which ``validate`` fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.contract.spec import OPTIONAL_COLUMNS, PipelineSpec
from airflow_ml_provider.exceptions import ContractError

if TYPE_CHECKING:
    import pyarrow as pa

_SENTINEL = "__aml_source_"


def source_table(spec: PipelineSpec, role: str) -> str:
    """The table of source ``role`` (``sources:`` in pipeline.yaml); an unknown role names the known ones."""
    if role not in spec.sources:
        raise ContractError(
            f"source({role!r}): pipeline {spec.name!r} has no source role {role!r}; known: "
            f"{', '.join(sorted(spec.sources)) or 'none'}. Add it under `sources:` in pipeline.yaml."
        )
    return validate_identifier(spec.sources[role], kind="source table")


def ref_table(spec: PipelineSpec, name: str) -> str:
    """The table a step writes, by its table name or by that name without the ``<pipeline>_`` prefix."""
    tables = [s.table for s in [*spec.steps, spec.label.step]]
    for table in tables:
        if table in (name, f"{spec.name}_{name}"):
            return table
    raise ContractError(
        f"ref({name!r}): no step of pipeline {spec.name!r} writes {name!r} or {spec.name + '_' + name!r}; "
        f"steps write {', '.join(tables)}. Name one of those, or add the step to pipeline.yaml."
    )


def render_source(spec: PipelineSpec, role: str, prefix: str = "") -> str:
    """What ``{{ source(role) }}`` renders: the table, or a subquery mapping its columns and event types.

    With ``source_columns.<role>`` the subquery selects every mapped column under the name the
    SQL uses (``CustomerID AS user_id``) and the table's other columns as they are. For the
    ``events`` role, ``event_types`` maps your types onto the ones the SQL knows, and each SQL
    type it does not mention keeps its meaning (``spec.event_type_mapping``); any other type
    becomes ``'unknown'``, which the reference SQL gives relevance 0. A column mapped to
    ``null`` (an optional attribute your table lacks, e.g. ``items.category``) is a typed NULL.
    """
    table = prefix + source_table(spec, role)
    columns = spec.source_columns.get(role, {})
    types = spec.event_type_mapping if role == "events" else {}
    if not columns and not types:
        return table
    type_column = columns.get("event_type") or "event_type"
    select = [_mapped(role, ours, theirs) for ours, theirs in columns.items() if not (types and ours == "event_type")]
    if types:
        whens = " ".join(
            f"WHEN {type_column} IN ({', '.join(_literal(raw) for raw in raws)}) THEN {_literal(ours)}"
            for ours, raws in types.items()
        )
        select.append(f"CASE {whens} ELSE 'unknown' END AS event_type")
    # The mapped columns leave under the SQL's names only, so no name appears twice.
    mapped = sorted({*(c for c in columns.values() if c), *([type_column] if types else [])})
    star = f"* EXCEPT ({', '.join(mapped)})" if mapped else "*"
    return f"(SELECT {star}, {', '.join(select)} FROM {table})"


def _mapped(role: str, ours: str, theirs: str | None) -> str:
    """One renamed column, or a typed NULL for an optional column your table does not have."""
    return f"CAST(NULL AS {OPTIONAL_COLUMNS[f'{role}.{ours}']}) AS {ours}" if theirs is None else f"{theirs} AS {ours}"


def in_source_shape(spec: PipelineSpec, role: str, table: pa.Table) -> pa.Table:
    """A table in the SQL's shape (e.g. validate's demo sample) in your table's shape, the inverse of render_source.

    Mapped columns take your names, absent ones (``null``) are dropped, and each event type the
    SQL knows takes the first of your types that ``event_types`` maps onto it (itself, when
    ``event_types`` does not mention it).
    """
    import pyarrow as pa

    columns = spec.source_columns.get(role, {})
    types = spec.event_type_mapping if role == "events" else {}
    if types and "event_type" in table.column_names:
        first = {ours: raws[0] for ours, raws in types.items() if raws}
        values = [first.get(v, v) if v is not None else None for v in table.column("event_type").to_pylist()]
        table = table.set_column(table.column_names.index("event_type"), "event_type", pa.array(values, pa.string()))
    keep = [c for c in table.column_names if not (c in columns and columns[c] is None)]
    table = table.select(keep)
    return table.rename_columns([columns.get(c) or c for c in table.column_names])


def _literal(value: str) -> str:
    """A contract event type as a GoogleSQL string literal (the spec allows no quotes or backslashes)."""
    return f"'{value}'"


def sql_functions(spec: PipelineSpec) -> dict[str, Callable[[str], str]]:
    """The Jinja functions every SQL file of ``spec`` may call."""
    return {"source": lambda role: render_source(spec, role), "ref": lambda name: ref_table(spec, name)}


def sentinel_functions(spec: PipelineSpec) -> dict[str, Callable[[str], str]]:
    """Like ``sql_functions`` but ``source`` renders a marker, so direct table names stand out."""
    return {"source": lambda role: render_source(spec, role, _SENTINEL), "ref": lambda n: ref_table(spec, n)}


def direct_source_reads(rendered_with_sentinels: str, spec: PipelineSpec, source: str) -> list[str]:
    """Source tables the SQL names directly instead of through ``source()`` (CTE names do not count)."""
    from sqlglot import exp

    from airflow_ml_provider.core.warehouse.sql import parse

    tree = parse(rendered_with_sentinels, source)
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    tables = set(spec.sources.values())
    return sorted({t.name for t in tree.find_all(exp.Table) if t.name in tables and t.name not in ctes})
