"""BigQueryWarehouse against real BigQuery: the same behaviours tests/unit/backends/test_bigquery.py
checks on the local endpoint, so the two stay comparable.

Runs only when ``SYSTEM_TESTS_GCP_PROJECT`` is set (Airflow's system-test convention; see
tests/system/conftest.py and docs/gcp.md). Each test uses its own dataset and deletes it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pytest

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.warehouse.interface import WriteResult
from airflow_ml_provider.core.warehouse.labels import job_labels
from airflow_ml_provider.exceptions import SchemaMismatchError

pytestmark = pytest.mark.system

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
def warehouse(real_gcp) -> BigQueryWarehouse:
    config = PlatformConfig(
        backend="gcp",
        project=real_gcp.project,
        dataset=real_gcp.dataset,
        location=real_gcp.location,
        maximum_bytes_billed=10 * 2**30,
    )
    labels = job_labels("system_tests", "test_bigquery_system", f"manual-{uuid.uuid4().hex[:8]}")
    return BigQueryWarehouse(config, labels=labels)


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


def test_required_columns_are_refused_with_the_column_named(warehouse: BigQueryWarehouse) -> None:
    wh = warehouse
    wh.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (prediction_date DATE NOT NULL, user_id STRING NOT NULL, "
        "item_id STRING, score FLOAT64) PARTITION BY prediction_date CLUSTER BY user_id"
    )
    with pytest.raises(SchemaMismatchError, match="user_id is REQUIRED"):
        _write(wh, DAY, n=2, variant=1)


def test_candidates_stream_through_the_storage_read_api(warehouse: BigQueryWarehouse) -> None:
    wh = warehouse
    _write(wh, DAY, n=2000, variant=1)
    with wh.query_batches(ITEMS_SQL, {"day": DAY}, batch_rows=500) as batches:
        sizes = [b.num_rows for b in batches]
    assert sum(sizes) == 2000 and max(sizes) <= 500


def test_each_export_writes_its_own_folder(warehouse: BigQueryWarehouse, real_gcp, real_bucket: str) -> None:
    import gcsfs

    wh = warehouse
    _write(wh, DAY, n=50, variant=1)
    base = f"gs://{real_bucket}/{real_gcp.prefix}/data"
    first = wh.export_parquet(ITEMS_SQL, {"day": DAY}, base)
    second = wh.export_parquet(ITEMS_SQL, {"day": DAY}, base)
    assert first != second
    fs = gcsfs.GCSFileSystem(project=real_gcp.project)
    assert fs.find(first.removeprefix("gs://")) and fs.find(second.removeprefix("gs://"))
