"""FeatureExtractOperator: one GoogleSQL file -> one as-of-date partition of a feature table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.operators.base import MLPlatformOperator, as_flag, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.operators.lineage import Lineage


class FeatureExtractOperator(MLPlatformOperator):
    """Render a ``.sql`` template, run it on the connection's backend, replace one partition.

    :param table: the table to write, in the connection's dataset.
    :param sql: a ``.sql`` path (under the DAG's ``template_searchpath``) or SQL text. When
        omitted, the contract's step for ``table`` names the file.
    :param partition_date: the as-of date to write; also the ``@as_of`` query parameter.
    :param query_params: extra ``@name`` values; the contract's windows are added for you.
    :param cluster_by: clustering columns; defaults to the contract step's.
    :param allow_empty: write an empty partition instead of failing on zero rows.
    :param data_checks: run the contract's checks of ``table`` (``checks:`` in pipeline.yaml) on the
        new rows before publishing them: a failed ``error`` check leaves the partition as it was,
        a ``warn`` is logged and the rows are written.
    :param steps: rebuild only these step tables (comma-separated, e.g. ``{{ params.steps }}``) and
        the steps that ``ref()`` them: a task whose table is not among them keeps its partition
        and succeeds. Empty (the default): every task writes.
    :param force_replace: replace the date's partition even when the new rows hold far fewer
        users than it (``checks.partition_shrink``); templated, e.g. ``{{ params.force_replace }}``.
    """

    template_fields: Sequence[str] = ("sql", "table", "partition_date", "query_params", "steps", "force_replace")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "query_params": "json"}
    ui_color = "#e8f1fb"
    operator_extra_links = (BigQueryTableLink(),)

    def __init__(
        self,
        *,
        table: str,
        sql: str | None = None,
        partition_date: str = "{{ ds }}",
        partition_column: str = "as_of_date",
        query_params: dict[str, Any] | None = None,
        cluster_by: Sequence[str] | None = None,
        allow_empty: bool = False,
        data_checks: bool = True,
        steps: str | Sequence[str] | None = None,
        force_replace: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.force_replace = force_replace
        self.table = table
        self.sql = sql
        self.partition_date = partition_date
        self.partition_column = partition_column
        self.query_params = query_params
        self.cluster_by = cluster_by
        self.allow_empty = allow_empty
        self.data_checks = data_checks
        self.steps = steps
        self.sql_file: str | None = None

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        # Resolve the SQL file from the contract before Jinja loads and renders it, so the
        # rendered SQL shows in the UI like any templated field.
        self._resolve_sql_file()
        # An unknown source() role or ref() table is a contract error: fail without retries.
        with self._sql_file_errors(), self.fail_fast():
            super().render_template_fields(self.with_sql_functions(context), jinja_env)

    def _resolve_sql_file(self) -> None:
        if self.sql is None:
            with self.fail_fast():
                self.sql = self.spec.step(self.table).sql
        self.sql_file = self.sql if self.sql.endswith(".sql") else f"task {self.task_id}"

    @contextlib.contextmanager
    def _sql_file_errors(self) -> Iterator[None]:
        try:
            yield
        except jinja2.TemplateNotFound as err:
            searchpath = getattr(self.dag, "template_searchpath", None)
            raise AirflowFailException(
                f"SQL file {err.name!r} for table {self.table!r} was not found under the DAG's "
                f"template_searchpath {searchpath}. Check the path in pipeline.yaml or the task."
            ) from err

    def execute(self, context: Context) -> dict[str, Any]:
        if self.sql is None:  # mapped tasks are rendered without render_template_fields
            self._resolve_sql_file()
            with self._sql_file_errors(), self.fail_fast():
                self.sql = self.render_template(self.sql, self.with_sql_functions(context))
        from airflow_ml_provider.core.features.build import publish_step

        with self.fail_fast():
            as_of = parse_date(self.partition_date)
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            if not self._selected(warehouse, as_of):
                self.wrote = False
                return {"table": self.table, "partition": str(as_of), "rows": None, "rebuilt": False}
            self.log.info(
                "Writing %s partition %s=%s from %s on %r",
                self.table,
                self.partition_column,
                as_of,
                self.sql_file,
                warehouse,
            )
            result = publish_step(
                warehouse,
                self.spec if self.pipeline else None,
                self.table,
                as_of,
                str(self.sql),
                params=self.query_params,
                sql_source=self.sql_file or f"task {self.task_id}",
                cluster_by=self.cluster_by,
                allow_empty=self.allow_empty,
                checks=self.data_checks,
                partition_column=self.partition_column,
                force_replace=as_flag(self.force_replace),
                logger=self.log,
            )
        self.wrote = True
        self.log.info("Wrote %d rows to %s (partition %s)", result.rows, result.table, result.partition)
        return result.as_dict()

    def lineage(self) -> Lineage:
        """Reads: the tables the SQL named through ``source()``/``ref()``; writes: ``table`` (unless kept)."""
        from airflow_ml_provider.operators.lineage import Lineage

        reads = [t for t in self.sql_reads if t != self.table]
        return Lineage(input_tables=reads, output_tables=[self.table] if getattr(self, "wrote", True) else [])

    def _selected(self, warehouse: Any, as_of: Any) -> bool:
        """Whether ``steps`` (if any) asks for this task's table: named, or reading a named step."""
        from airflow_ml_provider.core.features.build import parse_step_names, plan_steps

        if not parse_step_names(self.steps) or not self.pipeline:
            return True
        searchpath = getattr(self.dag, "template_searchpath", None) or []
        sql_dirs = [Path(p) for p in ([searchpath] if isinstance(searchpath, str) else searchpath)]
        labels = self.table == self.spec.label.step.table
        selected = {s.table for s in plan_steps(warehouse, self.spec, sql_dirs, [as_of], self.steps, labels=labels)}
        if self.table not in selected:
            self.log.info(
                "%s is not among the steps to rebuild (%s): its partition %s is kept as it is",
                self.table,
                ", ".join(sorted(selected)),
                as_of,
            )
        return self.table in selected
