"""Run the contract's data checks on a warehouse for one date, and record them in ``data_checks``.

Used by DataCheckOperator and ``airflow-ml check``; the feature steps check their own new
rows before publishing (``Warehouse.replace_partition_checked``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from airflow_ml_provider.core.features.checks import (
    CHECK_COLUMNS,
    CheckResult,
    check_rows,
    event_check_query,
    table_check_query,
)
from airflow_ml_provider.core.features.event_types import unknown_event_types_query
from airflow_ml_provider.core.features.scopes import SCOPES

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult


def run_checks(
    warehouse: Warehouse,
    spec: PipelineSpec,
    as_of: dt.date,
    checked_at: dt.datetime,
    *,
    scope: str = "all",
    partition_column: str = "as_of_date",
    sql_dirs: Sequence[Path] = (),
    steps: Collection[str] | None = None,
    force: bool = False,
) -> list[CheckResult]:
    """Every check of ``scope`` for ``as_of``: one aggregation for the events, one per step table.

    ``tables``: a published step table that does not exist yet or has no partition for the date
    is reported as a ``skipped`` row (its own step checks it before writing). ``steps`` reads the
    steps' SQL files from ``sql_dirs``; the ``steps`` argument (tables) limits it to the steps
    being rebuilt, which read the others' published partitions. ``events`` and ``preflight``
    gate a write: there a partial history fails when the date already has a partition, unless
    ``force`` (``all`` only reports it).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    results: list[CheckResult] = []
    if scope in ("all", "events", "preflight"):
        results += _event_checks(warehouse, spec, as_of, checked_at, before_write=scope != "all", force=force)
    if scope in ("all", "tables"):
        for step in [*spec.steps, spec.label.step]:
            relation = f"(SELECT * FROM {step.table} WHERE {partition_column} = @chk_as_of)"
            query = table_check_query(spec, step.table, relation, as_of)
            if query is None:
                continue
            if not warehouse.table_exists(step.table):
                results.append(_skipped(step.table, f"table {step.table} does not exist yet"))
                continue
            row = warehouse.query(query.sql, query.params, source=f"data checks of {step.table}").to_pylist()[0]
            if not row.get("chk_rows"):
                results.append(_skipped(step.table, f"{step.table} has no partition {partition_column}={as_of}"))
                continue
            results += query.evaluate(row)
    if scope in ("steps", "preflight"):
        from airflow_ml_provider.core.features.preflight import check_steps_before_publish

        results += check_steps_before_publish(warehouse, spec, sql_dirs, as_of, steps)
    return results


def _event_checks(
    warehouse: Warehouse,
    spec: PipelineSpec,
    as_of: dt.date,
    checked_at: dt.datetime,
    *,
    before_write: bool,
    force: bool,
) -> list[CheckResult]:
    """The events source's checks; ``before_write``: a partial history fails when it would replace a partition."""
    from airflow_ml_provider.core.features.source_checks import (
        refuse_partial_rebuild,
        source_quality_query,
        timestamp_type_result,
    )

    typed = timestamp_type_result(warehouse, spec)
    if typed is not None and typed.status != "pass":
        return [typed]  # every other query would compare text with dates
    results = [typed] if typed is not None else []
    queries = (event_check_query(spec, as_of, checked_at), unknown_event_types_query(spec, as_of),
               source_quality_query(spec, as_of))  # fmt: skip
    for query in queries:
        if query is not None:
            rows = warehouse.query(query.sql, query.params, source=f"data checks of {query.table}").to_pylist()
            results += query.evaluate(rows[0])
    if before_write:
        results = refuse_partial_rebuild(warehouse, spec, as_of, results, force=force)
    return results


def _skipped(table: str, why: str) -> CheckResult:
    return CheckResult("partition_exists", table, None, None, "warn", "skipped", why)


def record_checks(
    warehouse: Warehouse, as_of: dt.date, results: list[CheckResult], run_id: str, checked_at: dt.datetime
) -> WriteResult:
    """Replace the ``check_date`` partition of ``data_checks`` with ``results``."""
    import pyarrow as pa

    from airflow_ml_provider.core.warehouse.ddl import ensure_tables

    types = {"STRING": pa.string(), "FLOAT64": pa.float64(), "TIMESTAMP": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(name, types[t]) for name, t in CHECK_COLUMNS.items()])
    ensure_tables(warehouse, "data_checks")
    table = pa.Table.from_pydict(check_rows(results, run_id, checked_at), schema=schema)
    return warehouse.replace_partition(
        "data_checks",
        "check_date",
        as_of,
        table,
        sql_source="data checks",
        cluster_by=("table_name",),
        allow_empty=True,
    )


def sample_verdict(
    sample: Warehouse, spec: PipelineSpec, as_of: dt.date, *, skip_because: str = ""
) -> tuple[Literal["PASS", "FAIL", "SKIP"], str]:
    """``airflow-ml validate``'s line for the checks on its sample: (PASS | FAIL | SKIP, detail).

    The sample is synthetic: the step-table checks (not_null, unique, accepted_values, range)
    judge the contract's SQL and can fail; the events and label checks judge made-up data,
    so there they only have to compile and run, and their verdicts are notes.
    """
    from airflow_ml_provider.core.inference.runs import utcnow

    if skip_because:
        return "SKIP", skip_because
    results = run_checks(sample, spec, as_of, utcnow())
    events = spec.sources.get(spec.checks.events.source) if spec.checks.events else None
    judged = [r for r in results if r.table != events and not r.name.startswith("label_completeness")]
    failed = [r for r in judged if r.failed]
    noted = [r for r in results if r.status in ("warn", "fail") and r not in failed]
    summary = f"{len(results)} check(s) ran on the sample for {as_of}"
    if failed:
        return "FAIL", f"{summary}; failed: " + " ".join(f"[{r.table} {r.name}] {r.message}" for r in failed)
    if noted:
        names = ", ".join(f"{r.table} {r.name}" for r in noted)
        return "PASS", f"{summary}; the table checks passed (on the synthetic sample, not judged: {names})"
    return "PASS", f"{summary}, all passed"
