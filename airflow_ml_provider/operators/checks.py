"""DataCheckOperator: run the contract's data checks for a date in the warehouse, record them in data_checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.operators.base import MLPlatformOperator, as_flag, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context


class DataCheckOperator(MLPlatformOperator):
    """Run the ``checks:`` of pipeline.yaml for ``partition_date``: one aggregation per table.

    A failed ``error`` check fails the task (no retries) and writes nothing; warnings are
    logged, one line per check, and the results replace the date's ``data_checks`` partition.

    :param partition_date: the as-of date to check.
    :param scope: ``events`` (the source, e.g. before the feature steps), ``tables`` (the
        published step partitions), ``all`` (both), ``steps`` (the rows every feature step would
        write, computed and checked without writing: SQL files from the DAG's
        ``template_searchpath``) or ``preflight`` (``events`` + ``steps``: the gate that makes a
        date's feature steps all-or-nothing).
    :param record: write the results to ``data_checks`` (a gate before the steps need not).
    """

    template_fields: Sequence[str] = ("partition_date", "scope", "force_replace")
    ui_color = "#fbf3e8"
    operator_extra_links = (BigQueryTableLink("data_checks"),)

    def __init__(
        self,
        *,
        partition_date: str = "{{ ds }}",
        scope: str = "all",
        record: bool = True,
        force_replace: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.force_replace = force_replace
        self.partition_date = partition_date
        self.scope = scope
        self.record = record

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.features.checks import log_results, raise_on_errors
        from airflow_ml_provider.core.features.data_checks import SCOPES, record_checks, run_checks
        from airflow_ml_provider.core.inference.runs import utcnow
        from airflow_ml_provider.exceptions import ContractError

        with self.fail_fast():
            day = parse_date(self.partition_date, "partition_date")
            if self.scope not in SCOPES:
                raise ContractError(
                    f"task {self.task_id!r}: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}."
                )
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            checked_at = utcnow()
            searchpath = getattr(self.dag, "template_searchpath", None) or []
            sql_dirs = [Path(p) for p in ([searchpath] if isinstance(searchpath, str) else searchpath)]
            if self.scope in ("steps", "preflight") and not sql_dirs:
                raise ContractError(
                    f"task {self.task_id!r}: scope {self.scope!r} reads the feature steps' SQL files from the "
                    "DAG's template_searchpath, which is not set. Pass template_searchpath=[<your sql folder>] "
                    "to the DAG."
                )
            results = run_checks(
                warehouse,
                self.spec,
                day,
                checked_at,
                scope=self.scope,
                sql_dirs=sql_dirs,
                force=as_flag(self.force_replace),
            )
            log_results(results, self.log)
            raise_on_errors(results, f"data checks of {day}")
            if self.record:
                record_checks(warehouse, day, results, context["ti"].run_id, checked_at)
        counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "skipped")}
        self.log.info("Data checks of %s: %d passed, %d warned, %d skipped", day, *counts.values())
        return {"date": day.isoformat(), "checks": len(results), **counts}
