"""Sensors on the ml_platform warehouse: wait for a date partition, or for a champion model."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_ml_provider.core.identifiers import validate_identifier
from airflow_ml_provider.exceptions import TableNotFoundError
from airflow_ml_provider.hooks.ml_platform import MLPlatformHook
from airflow_ml_provider.operators.base import parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context


class WarehousePartitionSensor(BaseSensorOperator):
    """Wait until ``table`` has at least ``min_rows`` rows for ``partition_date`` (a missing table is not yet)."""

    template_fields: Sequence[str] = ("table", "partition_date")

    def __init__(
        self,
        *,
        table: str,
        partition_date: str = "{{ ds }}",
        partition_column: str = "as_of_date",
        min_rows: int = 1,
        ml_conn_id: str = MLPlatformHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
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
        self.log.info("%s partition %s=%s has %d rows (waiting for %d)", table, column, day, rows, self.min_rows)
        return rows >= self.min_rows


class ChampionModelSensor(BaseSensorOperator):
    """Wait until ``model_name`` has a champion in ml_models (e.g. before the first inference)."""

    template_fields: Sequence[str] = ("model_name",)

    def __init__(self, *, model_name: str, ml_conn_id: str = MLPlatformHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.ml_conn_id = ml_conn_id

    def poke(self, context: Context) -> bool:
        from airflow_ml_provider.core.registry import ModelRegistry

        champion = ModelRegistry(MLPlatformHook(ml_conn_id=self.ml_conn_id).get_warehouse()).champion(self.model_name)
        self.log.info("Champion of %s: %s", self.model_name, champion.version if champion else "none yet")
        return champion is not None
