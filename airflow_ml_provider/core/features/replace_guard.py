"""Never replace a step's good partition with a degenerate one: the users a rebuild would drop.

A rebuild of a date whose sources lost rows (a partial load, an emptied table, a pruned
history that the ``history`` check did not see) would replace the partition's users with
far fewer. Before a step publishes over an existing partition, its new rows' distinct users
are compared with the partition's: below ``checks.partition_shrink.min_share`` of them the
step fails naming the table, both counts and the flag that forces it (``--force-replace``).
The shift is logged either way. It rides on the step's own check query, so the new rows
are read once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.features.checks import CheckQuery, CheckResult, _result

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse

PARTITION_COLUMN = "as_of_date"


def previous_users(warehouse: Warehouse, spec: PipelineSpec, table: str, as_of: dt.date) -> int | None:
    """Distinct users in ``table``'s ``as_of`` partition; None when the guard is off or does not apply."""
    guard = spec.checks.partition_shrink
    if guard is None or not warehouse.table_exists(table):
        return None
    user = spec.entities.user
    if user not in warehouse.table_columns(table):
        return None
    rows = warehouse.query(
        f"SELECT COUNT(DISTINCT {validate_identifier(user)}) AS n FROM {validate_identifier(table)} "
        f"WHERE {PARTITION_COLUMN} = @d",
        {"d": as_of},
        source=f"partition {table} {PARTITION_COLUMN}={as_of}",
    ).to_pylist()
    return int(rows[0]["n"] or 0) or None


def with_shrink_guard(
    base: CheckQuery | None, spec: PipelineSpec, table: str, relation: str, as_of: dt.date, previous: int | None
) -> CheckQuery | None:
    """``base`` (the step's checks on ``relation``) plus the distinct-user comparison with ``previous``."""
    guard = spec.checks.partition_shrink
    if guard is None or previous is None:
        return base
    user = validate_identifier(spec.entities.user)
    shrink_sql = f"SELECT COUNT(DISTINCT {user}) AS chk_new_users FROM {relation} AS chk_guard_relation"
    sql = (
        shrink_sql if base is None else f"SELECT * FROM ({base.sql}) AS chk_base CROSS JOIN ({shrink_sql}) AS chk_guard"
    )
    params: dict[str, Any] = dict(base.params) if base is not None else {}

    def judge(row: Mapping[str, Any]) -> list[CheckResult]:
        out = base.evaluate(row) if base is not None else []
        new = int(row.get("chk_new_users") or 0)
        share = new / previous
        out.append(
            _result(
                "partition_shrink",
                table,
                round(share, 6),
                guard.min_share,
                guard.severity,
                share >= guard.min_share,
                f"{table} partition {PARTITION_COLUMN}={as_of}: the new rows have {new} distinct {user}, the "
                f"partition they would replace has {previous} ({share:.0%}; at least {guard.min_share:.0%} "
                "expected). Check the sources for a partial load or pruned history, or replace it anyway with "
                "--force-replace (force_replace=True in the DAG's params).",
            )
        )
        return out

    return CheckQuery(table, sql, params, judge)
