"""Building a date's features: the one way the feature stage runs (DAG tasks, ``airflow-ml``, benches).

A date is built in two halves, and every entry point runs both:

- ``check_sources``: the contract's events checks and, with ``preflight``, every step's new rows
  computed and checked without writing (``core.features.preflight``). A failed ``error`` check
  stops the date before any step writes. The DAG runs this as its ``source_checks`` task.
- ``publish_step``: one step's partition replaced by its rendered SQL, its own checks run on the
  new rows first (a failed ``error`` check leaves the partition as it was). The DAG runs one task
  per step; ``build_features`` runs them in order.

``build_features`` is both halves for each date. With ``steps`` it rebuilds only the steps named
and those that ``ref()`` them (``core.features.steps``), reading the others' published partitions,
so the result is the same as a full rebuild: a step's ``ref()``s are found by rendering its SQL
with a recording ``ref``, and each step left out that a rebuilt one reads must hold every
date's partition (checked before anything is written). See
docs/adr/0003-feature-steps-all-or-nothing.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_ml_provider.core.contract.spec import PipelineSpec, SqlStep
from airflow_ml_provider.core.features.checks import CheckResult, log_results, raise_on_errors
from airflow_ml_provider.core.features.render import render_sql
from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult
from airflow_ml_provider.exceptions import ContractError, TableNotFoundError

log = logging.getLogger(__name__)

PARTITION_COLUMN = "as_of_date"


def check_sources(
    warehouse: Warehouse,
    spec: PipelineSpec,
    as_of: dt.date,
    *,
    sql_dirs: Sequence[Path] = (),
    scope: str = "preflight",
    steps: Collection[str] | None = None,
    force_replace: bool = False,
    logger: Any = None,
) -> list[CheckResult]:
    """The gate before a date's steps write: ``events`` checks, ``steps`` (every step's would-be rows) or both.

    ``preflight`` (the default) is both. ``steps`` (tables) limits the would-be rows to the steps
    being rebuilt. Logs every check that did not pass; raises ``DataCheckError`` naming each
    failed ``error`` check. Nothing is written either way.
    """
    from airflow_ml_provider.core.features.data_checks import run_checks
    from airflow_ml_provider.core.inference.runs import utcnow

    results = run_checks(
        warehouse, spec, as_of, utcnow(), scope=scope, sql_dirs=sql_dirs, steps=steps, force=force_replace
    )
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
    force_replace: bool = False,
    logger: Any = None,
) -> WriteResult:
    """Replace ``table``'s ``as_of`` partition with the rows of ``sql`` (rendered GoogleSQL).

    With a contract, ``params`` are added to its query parameters, the step's clustering is the
    default, a label step refuses a date whose horizon has not passed, and (``checks``) the step's
    data checks run on the new rows before they replace the partition, with the guard against
    replacing a partition's users with far fewer (``force_replace`` lifts it).
    """
    from airflow_ml_provider.core.features.checks import table_check_query
    from airflow_ml_provider.core.features.replace_guard import previous_users, with_shrink_guard

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
    # Users in the partition being replaced: a rebuild with far fewer fails unless forced (replace_guard).
    previous = None if force_replace else previous_users(warehouse, spec, table, as_of)

    def gate(results: list[CheckResult]) -> None:
        log_results([r for r in results if r.status != "pass"], logger or log)
        passed = sum(r.status == "pass" for r in results)
        (logger or log).info("%s: %d of %d data checks passed on the new rows", table, passed, len(results))
        raise_on_errors(results, f"{table} partition {partition_column}={as_of}")

    result, _ = warehouse.replace_partition_checked(
        *source,
        check=lambda relation: with_shrink_guard(
            table_check_query(contract, table, relation, as_of), contract, table, relation, as_of, previous
        ),
        gate=gate,
        **options,
    )
    return result


def plan_steps(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dirs: Sequence[Path],
    dates: Sequence[dt.date],
    steps: str | Sequence[str] | None = None,
    *,
    labels: bool = False,
) -> list[SqlStep]:
    """The steps to (re)build for ``dates``: every one, or those ``steps`` names and the steps that ``ref()`` them.

    ``steps`` is a list of step tables or one comma-separated string (empty: every step). An
    unknown name fails naming the known ones; so does a rebuilt step reading a step left out
    that has no partition for one of the dates. Nothing is written.
    """
    names = parse_step_names(steps)
    if not names:
        return [*spec.steps, *([spec.label.step] if labels else [])]
    selected = select_steps(spec, names, sql_dirs, labels=labels)
    require_unselected_inputs(warehouse, spec, selected, sql_dirs, dates)
    return selected


def require_label_horizons(warehouse: Warehouse, spec: PipelineSpec, dates: Sequence[dt.date]) -> None:
    """Refuse, before anything is written, a range with any date whose label horizon has not passed.

    The error names the dates refused, the last as-of date whose horizon has passed, and how to
    build the range (end it there; the features alone need no horizon).
    """
    from airflow_ml_provider.core.evaluation.horizon import newest_event_after, newest_ready_date
    from airflow_ml_provider.exceptions import HorizonNotPassedError

    if not dates:
        return
    horizon = spec.windows.label_horizon_days
    today = dt.datetime.now(dt.UTC).date()
    newest = newest_event_after(warehouse, spec, min(dates))
    # A date D is ready once its horizon's last day D + horizon is over and the events reach it.
    last_ready = newest_ready_date(today, horizon)
    if newest is None:
        last_ready = min(last_ready, min(dates) - dt.timedelta(days=1))
    else:
        last_ready = min(last_ready, newest - dt.timedelta(days=horizon))
    early = sorted(d for d in dates if d > last_ready)
    if not early:
        return
    reach = f"the events source reaches {newest}" if newest else f"the events source has no day after {min(dates)}"
    refused = f"{early[0]}" if len(early) == 1 else f"{early[0]}..{early[-1]} ({len(early)} of {len(dates)} dates)"
    if last_ready >= min(dates):
        fix = (
            f"The last as-of date whose horizon has passed is {last_ready}: end the range there "
            f"(`--to {last_ready}`), and build the later dates' labels once their horizons pass "
            "(their features need no horizon: leave out --labels)."
        )
    else:
        fix = (
            f"No date of the range is ready: the last as-of date whose horizon has passed is {last_ready}. "
            "Build these dates without --labels, or load events through each date's horizon first."
        )
    ready_on = early[0] + dt.timedelta(days=horizon + 1)
    raise HorizonNotPassedError(
        f"labels ({spec.label.step.table}) for {refused}: their {horizon}-day label horizon has not passed "
        f"({reach}; today is {today}); {early[0]} becomes ready on {ready_on}, once the events reach "
        f"{ready_on - dt.timedelta(days=1)}. {fix} Nothing was written."
    )


def build_features(
    warehouse: Warehouse,
    spec: PipelineSpec,
    sql_dir: Path,
    dates: Iterable[dt.date],
    *,
    labels: bool = False,
    preflight: bool = False,
    steps: str | Sequence[str] | None = None,
    force_replace: bool = False,
    on_step: Callable[[WriteResult], None] | None = None,
    logger: Any = None,
) -> list[WriteResult]:
    """Every feature step (and with ``labels`` the label step) of each date, in order, checked.

    Before anything is written: with ``labels`` every date's label horizon
    (``require_label_horizons``), with ``steps`` the selection (``plan_steps``: the steps named
    and those that ``ref()`` them), and every date's events checks (``check_sources``). Then for
    each date, with ``preflight``, the rebuilt steps' would-be rows checked (which makes the date
    all-or-nothing at the cost of computing each step twice, so bulk history builds leave it
    off), then ``publish_step`` for each rebuilt step, each checking its own new rows, inside
    one ``warehouse.transaction()`` per date (on DuckDB the date's steps commit together).
    ``force_replace`` lets a rebuild replace existing partitions from a partial history or with
    far fewer users (``core.features.source_checks``, ``core.features.replace_guard``).
    """
    dates = list(dates)
    if labels:
        require_label_horizons(warehouse, spec, dates)
    selected = plan_steps(warehouse, spec, [Path(sql_dir)], dates, steps, labels=labels)
    tables = {s.table for s in selected}
    if steps and logger is not None:
        logger.info("Rebuilding %s (the steps named and those that read them)", ", ".join(s.table for s in selected))
    # Every date's events are checked before anything is written: a bad day anywhere in a range
    # stops the whole range, not the dates after it.
    for as_of in dates:
        check_sources(warehouse, spec, as_of, scope="events", force_replace=force_replace, logger=logger)
    results = []
    for as_of in dates:
        if preflight:
            feature_tables = tables & {s.table for s in spec.steps}
            if feature_tables:
                check_sources(
                    warehouse, spec, as_of, sql_dirs=[sql_dir], scope="steps", steps=feature_tables, logger=logger
                )
        # One transaction per date where the backend has one (DuckDB): a kill -9, a full disk or
        # a failed check in a later step leaves every step's partition as it was.
        written = []
        with warehouse.transaction():
            for step in selected:
                written.append(
                    publish_step(
                        warehouse,
                        spec,
                        step.table,
                        as_of,
                        render_sql(step, sql_dir, as_of, spec),
                        sql_source=str(Path(sql_dir) / step.sql),
                        force_replace=force_replace,
                        logger=logger,
                    )
                )
        for result in written:  # reported once the date has committed
            results.append(result)
            if on_step:
                on_step(result)
    return results


# --- rebuilding some steps ---------------------------------------------------------------------


def parse_step_names(value: str | Sequence[str] | None) -> list[str]:
    """``"user_features, features"`` (or a list of names) as names; empty or None: no selection (every step)."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if p and p.strip()]


def step_refs(spec: PipelineSpec, step: SqlStep, sql_dirs: Sequence[Path]) -> set[str]:
    """The step tables ``step``'s SQL reads through ``ref()``."""
    from airflow_ml_provider.core.contract.references import ref_table, render_source
    from airflow_ml_provider.core.features.preflight import sql_root
    from airflow_ml_provider.core.features.render import render_sql

    found: set[str] = set()

    def ref(name: str) -> str:
        table = ref_table(spec, name)
        found.add(table)
        return table

    functions: dict[str, Callable[[str], str]] = {"source": lambda role: render_source(spec, role), "ref": ref}
    # The date only feeds the ``ds`` macros; which steps a file reads does not depend on it.
    render_sql(step, sql_root(step, sql_dirs), dt.date(2000, 1, 1), spec, functions=functions)
    return found - {step.table}


def select_steps(
    spec: PipelineSpec, names: Iterable[str], sql_dirs: Sequence[Path], *, labels: bool = False
) -> list[SqlStep]:
    """The steps named (by the table they write) and every step that reads one of them, in run order.

    ``labels`` makes the label step one of the candidates. An unknown name fails naming the known ones.
    """
    candidates = [*spec.steps, *([spec.label.step] if labels else [])]
    tables = {s.table for s in candidates}
    wanted: set[str] = set()
    for name in names:
        table = next((t for t in (name, f"{spec.name}_{name}") if t in tables), None)
        if table is None:
            label_note = "" if labels else f" ({spec.label.step.table} with labels)"
            raise ContractError(
                f"steps: pipeline {spec.name!r} has no step writing {name!r}; known steps: "
                f"{', '.join(s.table for s in candidates)}{label_note}. Name steps by the table they write "
                "(`steps:` in pipeline.yaml), separated by commas."
            )
        wanted.add(table)
    refs = {s.table: step_refs(spec, s, sql_dirs) for s in candidates}
    changed = True
    while changed:  # a fixpoint, so a ref() of a later step is followed too
        grown = {t for t, reads in refs.items() if reads & wanted} - wanted
        changed = bool(grown)
        wanted |= grown
    return [s for s in candidates if s.table in wanted]


def require_unselected_inputs(
    warehouse: Warehouse,
    spec: PipelineSpec,
    selected: Sequence[SqlStep],
    sql_dirs: Sequence[Path],
    dates: Sequence[dt.date],
) -> None:
    """Fail, writing nothing, when a rebuilt step reads a step left out that lacks a date's partition."""
    chosen = {s.table for s in selected}
    readers: dict[str, list[str]] = {}
    for step in selected:
        for table in sorted(step_refs(spec, step, sql_dirs) - chosen):
            readers.setdefault(table, []).append(step.table)
    if not dates:
        return
    for table, by in readers.items():
        try:
            rows = warehouse.query(
                f"SELECT DISTINCT {PARTITION_COLUMN} AS d FROM {table} "
                f"WHERE {PARTITION_COLUMN} BETWEEN @first AND @last",
                {"first": min(dates), "last": max(dates)},
                source=f"partitions of {table}",
            ).to_pylist()
            have = {r["d"] if isinstance(r["d"], dt.date) else dt.date.fromisoformat(str(r["d"])[:10]) for r in rows}
        except TableNotFoundError:
            have = set()
        missing = sorted(set(dates) - have)
        if missing:
            more = f" and {len(missing) - 1} other date(s) up to {missing[-1]}" if len(missing) > 1 else ""
            raise ContractError(
                f"steps: {', '.join(by)} read{'s' if len(by) == 1 else ''} {table}, which is not being rebuilt and "
                f"has no partition {PARTITION_COLUMN}={missing[0]}{more}. Add {table} to the steps, or build it "
                "for those dates first. Nothing was written."
            )
