"""BigQueryWarehouse against real BigQuery: partition writes are idempotent and never mix.

Runs only when ``SYSTEM_TESTS_GCP_PROJECT`` is set (Airflow's system-test convention), with
credentials from ``google_cloud_default`` (Application Default Credentials unless the
connection is defined). Each run uses its own dataset and deletes it afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
from google.cloud import bigquery

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.core.config import PlatformConfig
from airflow_ml_provider.core.labels import job_labels
from airflow_ml_provider.core.warehouse import WriteResult

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not os.environ.get("SYSTEM_TESTS_GCP_PROJECT"),
        reason="system test: set SYSTEM_TESTS_GCP_PROJECT (and credentials) to run against real BigQuery",
    ),
]

DAY = dt.date(2024, 5, 1)
TABLE = "recommendations"
# Rows depend on @n and @variant, so a second write with other values is told apart from the first.
ROWS_SQL = """
SELECT
  CONCAT('u', CAST(n AS STRING)) AS user_id,
  CONCAT('i', CAST(n * @variant AS STRING)) AS item_id,
  n / 10 AS score
FROM UNNEST(GENERATE_ARRAY(1, @n)) AS n
"""
SUMMARY_SQL = """
SELECT COUNT(*) AS n, BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(t))) AS checksum
FROM recommendations AS t
WHERE prediction_date = @day
"""
ITEMS_SQL = "SELECT item_id FROM recommendations WHERE prediction_date = @day ORDER BY item_id"


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[BigQueryWarehouse]:
    if not os.environ.get("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"):
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", "google-cloud-platform://")
    project = os.environ["SYSTEM_TESTS_GCP_PROJECT"]
    location = os.environ.get("SYSTEM_TESTS_GCP_LOCATION", "US")
    dataset_name = f"aml_system_{uuid.uuid4().hex[:12]}"
    config = PlatformConfig(
        backend="gcp",
        project=project,
        dataset=dataset_name,
        location=location,
        maximum_bytes_billed=10 * 2**30,
    )
    labels = job_labels("system_tests", "test_bigquery_system", f"manual-{uuid.uuid4().hex[:8]}")
    wh = BigQueryWarehouse(config, labels=labels)
    dataset = bigquery.Dataset(f"{project}.{dataset_name}")
    dataset.location = location
    dataset.default_table_expiration_ms = 24 * 3600 * 1000  # belt and braces if the finally never runs
    wh.client.create_dataset(dataset)
    try:
        yield wh
    finally:
        wh.client.delete_dataset(dataset.reference, delete_contents=True, not_found_ok=True)


def _write(wh: BigQueryWarehouse, day: dt.date, n: int, variant: int) -> WriteResult:
    return wh.replace_partition(
        TABLE,
        "prediction_date",
        day,
        ROWS_SQL,
        {"n": n, "variant": variant},
        sql_source="tests/system/rows.sql",
        cluster_by=("user_id",),
    )


def _summary(wh: BigQueryWarehouse, day: dt.date) -> dict[str, object]:
    return wh.query(SUMMARY_SQL, {"day": day}).to_pylist()[0]


def _items(wh: BigQueryWarehouse, day: dt.date) -> list[str]:
    return wh.query(ITEMS_SQL, {"day": day}).column("item_id").to_pylist()


def test_replace_partition_is_idempotent_and_never_mixes(warehouse: BigQueryWarehouse) -> None:
    wh = warehouse
    neighbour = DAY - dt.timedelta(days=1)
    _write(wh, neighbour, n=2, variant=7)
    neighbour_before = _summary(wh, neighbour)

    first = _write(wh, DAY, n=5, variant=1)
    after_first = _summary(wh, DAY)
    second = _write(wh, DAY, n=5, variant=1)
    after_second = _summary(wh, DAY)

    assert first.rows == second.rows == 5
    assert after_first == after_second
    assert after_first["n"] == 5

    _write(wh, DAY, n=3, variant=2)
    assert _items(wh, DAY) == ["i2", "i4", "i6"]
    assert _summary(wh, neighbour) == neighbour_before

    target = wh.client.get_table(f"{wh.project}.{wh.dataset}.{TABLE}")
    assert target.time_partitioning.field == "prediction_date"
    assert target.clustering_fields == ["user_id"]
    assert wh.list_tables() == [TABLE]  # no staging tables left behind


def test_replace_partition_from_arrow_replaces_the_sql_rows(warehouse: BigQueryWarehouse) -> None:
    wh = warehouse
    _write(wh, DAY, n=4, variant=1)
    rows = pa.table({"user_id": ["a", "b"], "item_id": ["x", "y"], "score": [0.9, 0.1]})

    result = wh.replace_partition(TABLE, "prediction_date", DAY, rows, cluster_by=("user_id",))

    assert result.rows == 2
    assert _items(wh, DAY) == ["x", "y"]
