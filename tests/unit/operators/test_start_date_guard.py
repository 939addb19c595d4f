"""Every task of the reference DAGs refuses a logical date before the contract's start_date."""

from __future__ import annotations

import datetime as dt

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.operators.features import FeatureExtractOperator
from airflow_ml_provider.sensors.warehouse import ChampionModelSensor, WarehousePartitionSensor
from tests.paths import PIPELINE  # start_date: 2026-01-17


def _tasks():
    with DAG("guard_test", schedule=None):
        return [
            FeatureExtractOperator(task_id="features", table="features", pipeline=str(PIPELINE)),
            WarehousePartitionSensor(task_id="ready", table="features", pipeline=str(PIPELINE)),
            ChampionModelSensor(task_id="champion", model_name="recsys", pipeline=str(PIPELINE)),
        ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["operator", "partition_sensor", "champion_sensor"])
def test_a_date_before_the_start_fails_without_retry_and_a_later_one_runs(index):
    task = _tasks()[index]
    with pytest.raises(AirflowFailException, match=r"logical date 2026-01-16 is before the pipeline's start_date"):
        task.pre_execute({"logical_date": dt.datetime(2026, 1, 16, tzinfo=dt.UTC)})
    task.pre_execute({"logical_date": dt.datetime(2026, 1, 17, tzinfo=dt.UTC)})
    task.pre_execute({"logical_date": None})  # asset-triggered runs have no logical date


def test_without_a_contract_nothing_is_refused():
    with DAG("guard_test", schedule=None):
        sensor = WarehousePartitionSensor(task_id="ready", table="features")
    sensor.pre_execute({"logical_date": dt.datetime(1999, 1, 1, tzinfo=dt.UTC)})
