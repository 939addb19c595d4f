"""Sensors on the ml_platform warehouse: wait for a date partition, or for a champion model.

Both default to ``mode="reschedule"`` (no worker slot held while waiting) with a bounded
``timeout``; on timeout the error names what is missing and the DAG that builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.exceptions import TableNotFoundError
from airflow_ml_provider.hooks.ml_platform import MLPlatformHook
from airflow_ml_provider.operators.base import parse_date, refuse_before_start

if TYPE_CHECKING:
    from airflow.sdk import Context


def _sensor_defaults(kwargs: dict[str, Any], poke_interval: int, timeout: int) -> dict[str, Any]:
    """Reschedule mode and a bounded wait unless the DAG says otherwise."""
    kwargs.setdefault("mode", "reschedule")
    kwargs.setdefault("poke_interval", poke_interval)
    kwargs.setdefault("timeout", timeout)
    return kwargs


class WarehousePartitionSensor(BaseSensorOperator):
    """Wait until ``table`` has at least ``min_rows`` rows for ``partition_date`` (a missing table is not yet).

    :param producer_dag: the DAG that builds ``table`` (named in the log and the timeout error).
    :param pipeline: the contract; a logical date before its ``start_date`` fails instead of waiting.
    """

    template_fields: Sequence[str] = ("table", "partition_date")

    def __init__(
        self,
        *,
        table: str,
        partition_date: str = "{{ ds }}",
        partition_column: str = "as_of_date",
        min_rows: int = 1,
        producer_dag: str | None = None,
        ml_conn_id: str = MLPlatformHook.default_conn_name,
        pipeline: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_sensor_defaults(kwargs, poke_interval=300, timeout=6 * 3600))
        self.pipeline = pipeline
        self.table = table
        self.producer_dag = producer_dag
        self.partition_date = partition_date
        self.partition_column = partition_column
        self.min_rows = min_rows
        self.ml_conn_id = ml_conn_id

    @cached_property
    def hook(self) -> MLPlatformHook:
        """The ml_platform connection."""
        return MLPlatformHook(ml_conn_id=self.ml_conn_id)

    def poke(self, context: Context) -> bool:
        table = validate_identifier(self.table)
        column = validate_identifier(self.partition_column, kind="partition column")
        day = parse_date(self.partition_date)
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = @d"
        try:
            rows = self.hook.get_warehouse().query(sql, {"d": day}, source=f"sensor on {table}").to_pylist()[0]["n"]
        except TableNotFoundError:
            rows = 0
        self.log.info(
            "%s partition %s=%s has %d rows (waiting for %d; built by %s)",
            table,
            column,
            day,
            rows,
            self.min_rows,
            self._producer(),
        )
        return rows >= self.min_rows

    def pre_execute(self, context: Context) -> None:
        refuse_before_start(self.pipeline, context)
        super().pre_execute(context)

    def _producer(self) -> str:
        return f"DAG {self.producer_dag!r}" if self.producer_dag else "the DAG that writes it"

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            day = parse_date(self.partition_date)
            raise AirflowSensorTimeout(
                f"{self.table} partition {self.partition_column}={day} still has fewer than {self.min_rows} row(s) "
                f"after {self.timeout:g}s. It is built by {self._producer()}: run or backfill it for {day} "
                f"(`airflow backfill create --dag-id {self.producer_dag or '<dag_id>'} --from-date {day} "
                f"--to-date {day}`), then clear this task."
            ) from err


class ChampionModelSensor(BaseSensorOperator):
    """Wait until ``model_name`` has a champion in ml_models (e.g. before the first inference).

    :param pipeline: the contract; a logical date before its ``start_date`` fails instead of waiting.
    """

    template_fields: Sequence[str] = ("model_name",)

    def __init__(
        self,
        *,
        model_name: str,
        ml_conn_id: str = MLPlatformHook.default_conn_name,
        pipeline: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_sensor_defaults(kwargs, poke_interval=600, timeout=12 * 3600))
        self.model_name = model_name
        self.ml_conn_id = ml_conn_id
        self.pipeline = pipeline

    def pre_execute(self, context: Context) -> None:
        refuse_before_start(self.pipeline, context)
        super().pre_execute(context)

    def poke(self, context: Context) -> bool:
        from airflow_ml_provider.core.registry.models import ModelRegistry

        champion = ModelRegistry(MLPlatformHook(ml_conn_id=self.ml_conn_id).get_warehouse()).champion(self.model_name)
        self.log.info("Champion of %s: %s", self.model_name, champion.version if champion else "none yet")
        return champion is not None

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as err:
            raise AirflowSensorTimeout(
                f"model {self.model_name!r} still has no champion in ml_models after {self.timeout:g}s. It comes "
                "from the training DAG (train, then evaluate and promote): run it, or restore the previous champion "
                "with `airflow-ml models rollback`, then clear this task."
            ) from err
