"""Warehouse sensors: reschedule by default, a bounded wait, and a timeout that names what is missing."""

from __future__ import annotations

import json
import types

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_ml_provider.sensors.warehouse import ChampionModelSensor, WarehousePartitionSensor


@pytest.fixture(autouse=True)
def connection(tmp_path, monkeypatch):
    extra = {"warehouse_path": str(tmp_path / "warehouse.duckdb")}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))


def test_sensors_reschedule_with_a_bounded_wait_by_default():
    with DAG("sensors", schedule=None):
        partition = WarehousePartitionSensor(task_id="p", table="features")
        champion = ChampionModelSensor(task_id="c", model_name="recsys")
        pinned = WarehousePartitionSensor(task_id="q", table="features", mode="poke", timeout=60)
    assert (partition.mode, partition.timeout, partition.poke_interval) == ("reschedule", 6 * 3600, 300)
    assert (champion.mode, champion.timeout, champion.poke_interval) == ("reschedule", 12 * 3600, 600)
    assert (pinned.mode, pinned.timeout) == ("poke", 60)


def test_partition_sensor_timeout_names_the_partition_and_the_dag_that_builds_it():
    with DAG("sensors", schedule=None):
        sensor = WarehousePartitionSensor(
            task_id="features_ready",
            table="features",
            partition_date="2026-03-31",
            producer_dag="recsys_features",
            mode="poke",
            timeout=0,
            poke_interval=0,
        )
    ti = types.SimpleNamespace(dag_id="sensors", task_id="features_ready", run_id="r", try_number=1)
    with pytest.raises(AirflowSensorTimeout) as info:
        sensor.execute({"ti": ti, "ds": "2026-03-31"})
    assert str(info.value).startswith("features partition as_of_date=2026-03-31 still has fewer than 1 row(s)")
    assert "built by DAG 'recsys_features'" in str(info.value)
    assert "airflow backfill create --dag-id recsys_features --from-date 2026-03-31 --to-date 2026-03-31" in str(
        info.value
    )


def test_champion_sensor_timeout_says_where_a_champion_comes_from():
    with DAG("sensors", schedule=None):
        sensor = ChampionModelSensor(task_id="champion_ready", model_name="recsys", mode="poke", timeout=0)
    ti = types.SimpleNamespace(dag_id="sensors", task_id="champion_ready", run_id="r", try_number=1)
    with pytest.raises(AirflowSensorTimeout, match=r"model 'recsys' still has no champion in ml_models"):
        sensor.execute({"ti": ti})
