"""Building a date's features: the one way the feature stage runs (DAG tasks, ``airflow-ml``, benches).

A date is built in two halves, and every entry point runs both:

- ``check_sources``: the contract's events checks and, with ``preflight``, every step's new rows
  computed and checked without writing (``core.features.preflight``). A failed ``error`` check
  stops the date before any step writes. The DAG runs this as its ``source_checks`` task.
- ``publish_step``: one step's partition replaced by its rendered SQL, its own checks run on the
  new rows first (a failed ``error`` check leaves the partition as it was). The DAG runs one task
  per step; ``build_features`` runs them in order.

``build_features`` is both halves for each date. See docs/adr/0003-feature-steps-all-or-nothing.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_ml_provider.core.contract.spec import PipelineSpec
from airflow_ml_provider.core.features.checks import CheckResult, log_results, raise_on_errors
from airflow_ml_provider.core.features.render import render_sql
from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult

log = logging.getLogger(__name__)

PARTITION_COLUMN = "as_of_date"


def check_sources(
    warehouse: Warehouse,
    spec: PipelineSpec,
    as_of: dt.date,
    *,
    sql_dirs: Sequence[Path] = (),
    scope: str = "preflight",
    logger: Any = None,
) -> list[CheckResult]:
    """The gate before a date's steps write: ``events`` checks, ``steps`` (every step's would-be rows) or both.

    ``preflight`` (the default) is both. Logs every check that did not pass; raises
    ``DataCheckError`` naming each failed ``error`` check. Nothing is written either way.
    """
    from airflow_ml_provider.core.features.data_checks import run_checks
    from airflow_ml_provider.core.inference.runs import utcnow

    results = run_checks(warehouse, spec, as_of, utcnow(), scope=scope, sql_dirs=sql_dirs)
    log_results([r for r in results if r.status != "pass"], logger or log)
    raise_on_errors(results, f"feature steps of {as_of}")
    return results


def publish_step(
    warehouse: Warehouse,
    spec: PipelineSpec | None,
    table: str,
    as_of: dt.date,
    sql: str,
    *,
    params: Mapping[str, Any] | None = None,
    sql_source: str = "<sql>",
    cluster_by: Sequence[str] | None = None,
    allow_empty: bool = False,
    checks: bool = True,
    partition_column: str = PARTITION_COLUMN,
    logger: Any = None,
) -> WriteResult:
    """Replace ``table``'s ``as_of`` partition with the rows of ``sql`` (rendered GoogleSQL).

    With a contract, ``params`` are added to its query parameters, the step's clustering is the
    default, a label step refuses a date whose horizon has not passed, and (``checks``) the step's
    data checks run on the new rows before they replace the partition.
    """
    from airflow_ml_provider.core.features.checks import table_check_query

    step = spec.find_step(table) if spec is not None else None
    query_params = {**(spec.query_params(as_of) if spec is not None else {"as_of": as_of}), **(params or {})}
    if cluster_by is None:
        cluster_by = step.cluster_by if step is not None else ()
    if spec is not None and step is not None and step.table == spec.label.step.table:
        from airflow_ml_provider.core.evaluation.horizon import require_horizon_passed

        require_horizon_passed(warehouse, spec, as_of, f"labels ({table})")
    source = (table, partition_column, as_of, sql, query_params)
    options: dict[str, Any] = {"sql_source": sql_source, "cluster_by": tuple(cluster_by), "allow_empty": allow_empty}
    if spec is None or step is None or not checks:
        return warehouse.replace_partition(*source, **options)
    contract = spec

    def gate(results: list[CheckResult]) -> None:
        log_results([r for r in results if r.status != "pass"], logger or log)
        passed = sum(r.status == "pass" for r in results)
        (logger or log).info("%s: %d of %d data checks passed on the new rows", table, passed, len(results))
        raise_on_errors(results, f"{table} partition {partition_column}={as_of}")

    result, _ = warehouse.replace_partition_checked(
        *source,
        check=lambda relation: table_check_query(contract, table, relation, as_of),
        gate=gate,
        **options,
    )
    return result


def build_features(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dir: Path,
    dates: Iterable[dt.date],
    *,
    labels: bool = False,
    preflight: bool = False,
    on_step: Callable[[WriteResult], None] | None = None,
    logger: Any = None,
) -> list[WriteResult]:
    """Every feature step (and with ``labels`` the label step) of each date, in order, checked.

    First every date's events checks (``check_sources``); then for each date, with ``preflight``,
    every step's would-be rows checked (which makes the date all-or-nothing at the cost of
    computing each step twice, so bulk history builds leave it off), then ``publish_step`` for
    each step, each checking its own new rows. With ``labels`` a date whose label horizon has
    not passed is refused before anything is written (``HorizonNotPassedError`` names the day it becomes ready).
    """
    steps = [*spec.steps, *([spec.label.step] if labels else [])]
    dates = list(dates)
    if labels and dates:
        from airflow_ml_provider.core.evaluation.horizon import require_horizon_passed

        require_horizon_passed(warehouse, spec, max(dates), f"labels ({spec.label.step.table})")
    # Every date's events are checked before anything is written: a bad day anywhere in a range
    # stops the whole range, not the dates after it.
    for as_of in dates:
        check_sources(warehouse, spec, as_of, scope="events", logger=logger)
    results = []
    for as_of in dates:
        if preflight:
            check_sources(warehouse, spec, as_of, sql_dirs=[sql_dir], scope="steps", logger=logger)
        for step in steps:
            result = publish_step(
                warehouse,
                spec,
                step.table,
                as_of,
                render_sql(step, sql_dir, as_of, spec),
                sql_source=str(Path(sql_dir) / step.sql),
                logger=logger,
            )
            results.append(result)
            if on_step:
                on_step(result)
    return results
