"""What every ML operator shares: the connection's hook, the contract and error policy."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.core.contract.dates import check_run_date
from airflow_ml_provider.core.warehouse.labels import job_labels
from airflow_ml_provider.exceptions import ContractError, MLProviderError
from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.operators.lineage import Lineage


def configured_pool() -> str | None:
    """The pool ML tasks run in: Airflow config ``[ml_platform] pool`` (``AIRFLOW__ML_PLATFORM__POOL``), if set.

    The embedded DuckDB warehouse allows one writing process, so a deployment in local mode
    sets a one-slot pool here (docker-compose.yaml does, see airflow-layout.env) and
    creates it with ``airflow pools set``. Unset means Airflow's default pool: a task
    naming a pool that does not exist would never be scheduled.
    """
    from airflow.sdk.configuration import conf

    return conf.get("ml_platform", "pool", fallback="").strip() or None


class MLPlatformOperator(BaseOperator):
    """Base for the provider's operators: ``ml_conn_id`` picks the backend, ``pipeline`` the contract."""

    def __init__(
        self,
        *,
        ml_conn_id: str = MLPlatformHook.default_conn_name,
        pipeline: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("pool") is None and (pool := configured_pool()):
            kwargs["pool"] = pool
        super().__init__(**kwargs)
        self.ml_conn_id = ml_conn_id
        self.pipeline = pipeline

    @cached_property
    def hook(self) -> MLPlatformHook:
        """The ``ml_platform`` connection's hook."""
        return MLPlatformHook(ml_conn_id=self.ml_conn_id)

    @cached_property
    def spec(self) -> PipelineSpec:
        """The contract, read at run time (never at DAG parse time)."""
        from airflow_ml_provider.core.contract.spec import load_spec

        if self.pipeline is None:
            raise ContractError(f"task {self.task_id!r} needs `pipeline=` (the path of pipeline.yaml).")
        return load_spec(self.pipeline)

    def with_sql_functions(self, context: Context) -> Context:
        """The context plus ``source()`` and ``ref()`` of the contract, for the SQL's Jinja.

        Every table they name is remembered in ``sql_reads``: the task's lineage inputs.
        """
        if not self.pipeline:
            return context
        from airflow_ml_provider.core.contract.references import source_table, sql_functions

        spec = self.spec
        functions = sql_functions(spec)

        def source(role: str) -> str:
            rendered = functions["source"](role)
            self.sql_reads.append(source_table(spec, role))
            return rendered

        def ref(name: str) -> str:
            table = functions["ref"](name)
            self.sql_reads.append(table)
            return table

        return cast("Context", {**context, "source": source, "ref": ref})

    @cached_property
    def sql_reads(self) -> list[str]:
        """The tables the rendered SQL named through ``source()`` and ``ref()``, in order."""
        return []

    def lineage(self) -> Lineage:
        """What this task read and wrote, once it has run; each operator says (default: nothing)."""
        from airflow_ml_provider.operators.lineage import Lineage

        return Lineage()

    def model_uri(self, model_name: str | None, version: str | None) -> str | None:
        """Where a registered version's artifacts live (``ml_models.uri``), for lineage; None if unknown."""
        if not model_name or not version:
            return None
        from airflow_ml_provider.core.registry.models import ModelRegistry

        registry = ModelRegistry(self.hook.get_warehouse(), artifact_root=self.hook.config.artifacts_uri)
        return registry.resolve(model_name, version).uri

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The OpenLineage provider's hook: this task's input and output datasets (``operators/lineage.py``).

        Lineage never fails a task: an error is logged and no datasets are reported.
        """
        try:
            from airflow_ml_provider.operators.lineage import operator_lineage

            return operator_lineage(self.hook.config, self.lineage())
        except Exception:
            self.log.warning("Could not build the OpenLineage datasets of %s", self.task_id, exc_info=True)
            return None

    def pre_execute(self, context: Context) -> None:
        """A logical date before the contract's ``start_date`` fails the task, without retries."""
        refuse_before_start(self.pipeline, context)
        super().pre_execute(context)

    @staticmethod
    def job_labels(context: Context) -> dict[str, str]:
        """BigQuery / Vertex AI labels naming the DAG, task and run."""
        ti = context["ti"]
        return job_labels(ti.dag_id, ti.task_id, ti.run_id)

    @contextlib.contextmanager
    def fail_fast(self) -> Iterator[None]:
        """Deterministic errors (bad config, SQL, data) fail the task without retries."""
        try:
            yield
        except MLProviderError as err:
            if err.retryable:
                raise
            raise AirflowFailException(f"{type(err).__name__}: {err}") from err


def refuse_before_start(pipeline: str | Path | None, context: Context) -> None:
    """Fail (no retry) when the run's logical date is before ``start_date`` in ``pipeline`` (if given)."""
    if pipeline is None:
        return
    from airflow_ml_provider.core.contract.spec import load_spec

    logical = context.get("logical_date")
    try:
        check_run_date(logical.date() if logical else None, load_spec(pipeline).start_date, str(pipeline))
    except ContractError as err:
        raise AirflowFailException(f"ContractError: {err}") from err


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A whole ISO timestamp (what `{{ logical_date }}` renders): its date is taken as written.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")


def parse_date(value: str | dt.date, field: str = "partition_date") -> dt.date:
    """A rendered ``{{ ds }}`` (or a date) as a date: ``YYYY-MM-DD`` (or a whole ISO timestamp), a real day.

    The whole string must parse; nothing is cut off: ``'2026-03-31; DROP TABLE events'`` is
    refused, never read as 2026-03-31.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    is_date, is_timestamp = bool(_DATE.fullmatch(text)), bool(_TIMESTAMP.fullmatch(text))
    if is_date or is_timestamp:
        try:
            return dt.date.fromisoformat(text) if is_date else dt.datetime.fromisoformat(text).date()
        except ValueError as err:
            raise ContractError(
                f"{field} {value!r} is not a calendar date ({err}). Pass a real YYYY-MM-DD date."
            ) from None
    raise ContractError(
        f"{field} must render to a YYYY-MM-DD date, got {value!r}. Pass a date such as '{{{{ ds }}}}' or '2026-03-31'."
    )


def as_flag(value: bool | str | None) -> bool:
    """A boolean argument that may arrive as a rendered template (``"{{ params.force_replace }}"`` -> ``"True"``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
