"""BigQueryWarehouse through the real google-cloud-bigquery client and BigQueryHook, against a local BigQuery.

The endpoint (``tests/fakes/bigquery.py``) records the requests BigQuery would receive and
refuses what BigQuery documents it refuses: copies of a non-partitioned table into a
column-partitioned one, NULLABLE rows into REQUIRED columns, rows outside a partition
decorator, bytes over ``maximumBytesBilled``. Each defect found when the gcp path first met
real clients has a test here that fails on the code before the fix.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core.exceptions import BadRequest
from google.cloud import bigquery

from airflow_ml_provider.backends import get_warehouse
from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.backends.bigquery_schema import human_bytes, schema_differences
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.warehouse.ddl import ensure_tables
from airflow_ml_provider.exceptions import (
    BytesBudgetExceeded,
    ContractError,
    EmptyResultError,
    IdentifierError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    WarehouseError,
)
from tests.fakes.gcp import DATASET, PROJECT, LocalGcp

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 5, 1)
LABELS = {"airflow-dag": "recsys_batch_inference", "airflow-run": "scheduled-2024-05-01", "managed-by": "airflow-ml"}
ROWS_SQL = """
SELECT
  CONCAT('u', CAST(n AS STRING)) AS user_id,
  CONCAT('i', CAST(n * @variant AS STRING)) AS item_id,
  n / 10 AS score
FROM UNNEST(GENERATE_ARRAY(1, @n)) AS n
"""
TARGET = f"{PROJECT}.{DATASET}.recommendations"


def _warehouse(**extra: Any) -> BigQueryWarehouse:
    config = PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US", **extra)
    return BigQueryWarehouse(config, labels=LABELS)


@pytest.fixture
def wh(gcp: LocalGcp) -> BigQueryWarehouse:
    return _warehouse()


def _write(wh: BigQueryWarehouse, day: dt.date = DAY, n: int = 5, variant: int = 1, **kwargs: Any):
    return wh.replace_partition(
        "recommendations",
        "prediction_date",
        day,
        ROWS_SQL,
        {"n": n, "variant": variant},
        sql_source="sql/rows.sql",
        cluster_by=("user_id",),
        **kwargs,
    )


def _rows(gcp: LocalGcp, table: str = "recommendations") -> list[dict[str, Any]]:
    data = gcp.bigquery.rows(PROJECT, DATASET, table)
    return sorted(data.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def _non_dry(gcp: LocalGcp, kind: str = "query") -> list[dict[str, Any]]:
    return gcp.bigquery.job_configs(kind)


def test_get_warehouse_gcp_returns_bigquery_warehouse() -> None:
    wh = get_warehouse(PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET))
    assert isinstance(wh, BigQueryWarehouse)


def test_requests_carry_the_connections_service_account_token(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    wh.query("SELECT 1 AS one")
    kinds = [r.path for r in gcp.bigquery.requests]
    assert kinds[0] == "/token", "the hook's credentials (keyfile_dict) are exchanged for a token first"
    api = [r for r in gcp.bigquery.requests if r.path.startswith("/bigquery/")]
    assert api and all(r.headers["authorization"].startswith("Bearer fake-token-") for r in api)


# --- the partition write (defect 1: a copy into a column-partitioned table is refused) ---


def test_copy_from_a_non_partitioned_table_into_a_partition_is_refused_as_bigquery_does(
    gcp: LocalGcp,
    wh: BigQueryWarehouse,
) -> None:
    """The rule that broke the old write path, asserted through the real client."""
    _write(wh)
    staging = bigquery.Table(f"{TARGET}_flat", schema=wh.client.get_table(TARGET).schema)
    wh.client.create_table(staging)
    with pytest.raises(BadRequest, match="Non partitioned table to Column partitioned table"):
        wh.client.copy_table(f"{TARGET}_flat", f"{TARGET}${DAY:%Y%m%d}").result()


def test_sql_partition_is_published_by_a_query_into_the_partition_decorator(
    gcp: LocalGcp,
    wh: BigQueryWarehouse,
) -> None:
    result = _write(wh)

    assert result.rows == 5
    staging, publish = _non_dry(gcp)
    assert staging["useLegacySql"] is False
    assert staging["defaultDataset"] == {"projectId": PROJECT, "datasetId": DATASET}
    assert staging["query"].startswith(
        f"CREATE OR REPLACE TABLE `{PROJECT}.{DATASET}._staging_recommendations_20240501_"
    )
    assert "expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 24 HOUR)" in staging["query"]
    params = {p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"]) for p in staging["queryParameters"]}
    assert params == {"n": ("INT64", "5"), "variant": ("INT64", "1"), "__partition": ("DATE", "2024-05-01")}
    assert publish["destinationTable"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
        "tableId": "recommendations$20240501",
    }
    assert publish["writeDisposition"] == "WRITE_TRUNCATE"
    assert publish["createDisposition"] == "CREATE_NEVER"
    assert publish["timePartitioning"] == {"type": "DAY", "field": "prediction_date"}
    assert publish["clustering"] == {"fields": ["user_id"]}
    assert "`prediction_date`, `user_id`, `item_id`, `score`" in publish["query"]
    assert _non_dry(gcp, "copy") == []
    jobs = [j for j in gcp.bigquery.jobs.values()]
    assert all(j.resource["configuration"]["labels"] == LABELS for j in jobs)


def test_rewrites_are_idempotent_and_never_touch_other_partitions(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh, DAY - dt.timedelta(days=1), n=2, variant=7)
    neighbour = [r for r in _rows(gcp) if r["prediction_date"] != DAY]

    _write(wh, n=5, variant=1)
    first = _rows(gcp)
    _write(wh, n=5, variant=1)
    assert _rows(gcp) == first
    _write(wh, n=3, variant=2)

    rows = _rows(gcp)
    assert sorted(r["item_id"] for r in rows if r["prediction_date"] == DAY) == ["i2", "i4", "i6"]
    assert [r for r in rows if r["prediction_date"] != DAY] == neighbour
    meta = gcp.bigquery.meta(PROJECT, DATASET, "recommendations")
    assert (meta.partition_field, meta.clustering) == ("prediction_date", ["user_id"])
    assert wh.list_tables() == ["recommendations"]  # no staging table left behind


def _staging_tables(gcp: LocalGcp) -> list[Any]:
    return [m for k, m in gcp.bigquery.tables.items() if k[2].startswith("_staging_")]


class _Killed(BaseException):
    """The task process dies (``kill -9``): no ``finally`` of ours runs after it."""


def _kill_after_staging(monkeypatch: pytest.MonkeyPatch, wh: BigQueryWarehouse) -> None:
    """Kill the task at the first request after its staging table exists (before any cleanup can run)."""
    real_get = wh.client.get_table

    def get_table(table: Any, *args: Any, **kwargs: Any) -> Any:
        if "_staging_" in str(table):
            raise _Killed()
        return real_get(table, *args, **kwargs)

    monkeypatch.setattr(wh.client, "get_table", get_table)
    monkeypatch.setattr(wh.client, "delete_table", lambda *a, **k: None)  # a dead process deletes nothing


@pytest.mark.parametrize("source", ["sql", "arrow"])
def test_staging_tables_expire_from_creation_so_a_killed_task_leaves_nothing(
    gcp: LocalGcp, wh: BigQueryWarehouse, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Defect 4: the expiry came from a PATCH after the staging job; a kill before it left the table forever."""
    _write(wh)
    _kill_after_staging(monkeypatch, wh)
    with pytest.raises(_Killed):
        if source == "sql":
            _write(wh, n=3)
        else:
            rows = pa.table({"user_id": ["a"], "item_id": ["x"], "score": [0.9]})
            wh.replace_partition("recommendations", "prediction_date", DAY, rows, cluster_by=("user_id",))
    (left,) = _staging_tables(gcp)
    assert left.expires_at_creation is not None, "the staging table existed without an expiry"
    expires = dt.datetime.fromtimestamp(int(left.expires_at_creation) / 1000, dt.UTC)
    assert dt.timedelta(hours=23) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)

    gcp.bigquery.advance(dt.timedelta(days=1, minutes=1).total_seconds())
    assert _staging_tables(gcp) == []  # BigQuery deleted it when it expired
    assert [r["item_id"] for r in _rows(gcp)] == ["i1", "i2", "i3", "i4", "i5"]  # the target never changed


def test_staging_table_is_deleted_after_the_publish(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    assert [r for r in gcp.bigquery.requests if r.method == "PATCH"] == []  # the expiry came with the table
    deletes = [r.path for r in gcp.bigquery.requests if r.method == "DELETE"]
    assert len(deletes) == 1 and "/tables/_staging_recommendations_20240501_" in deletes[0]
    assert _staging_tables(gcp) == []


def test_the_endpoint_deletes_a_table_when_its_expiry_passes(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    table = bigquery.Table(f"{TARGET}_tmp", schema=[bigquery.SchemaField("x", "STRING")])
    table.expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    wh.client.create_table(table)
    assert wh.table_exists("recommendations_tmp")
    gcp.bigquery.advance(3601)
    assert not wh.table_exists("recommendations_tmp")


def test_staging_is_deleted_when_the_write_fails(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    with pytest.raises(SchemaMismatchError):
        wh.replace_partition(
            "recommendations", "prediction_date", DAY, "SELECT 'u' AS user_id", cluster_by=("user_id",)
        )
    assert wh.list_tables() == ["recommendations"]


def test_empty_result_raises_and_leaves_the_partition_untouched(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    before = _rows(gcp)
    with pytest.raises(EmptyResultError, match=r"sql/rows.sql: produced no rows .* partition 2024-05-01"):
        _write(wh, n=0)
    assert _rows(gcp) == before


def test_allow_empty_empties_the_partition(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    _write(wh, DAY + dt.timedelta(days=1), n=1)
    result = _write(wh, n=0, allow_empty=True)
    assert result.rows == 0
    assert {r["prediction_date"] for r in _rows(gcp)} == {DAY + dt.timedelta(days=1)}


def test_schema_mismatch_names_the_columns_and_writes_nothing(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    before = _rows(gcp)
    with pytest.raises(SchemaMismatchError) as err:
        wh.replace_partition(
            "recommendations",
            "prediction_date",
            DAY,
            "SELECT 'u' AS user_id, 1 AS item_id, 0.5 AS score, 'x' AS extra",
            sql_source="sql/bad.sql",
        )
    message = str(err.value)
    assert "sql/bad.sql" in message and "item_id is STRING in the table but INT64" in message
    assert "extra (STRING) is in the new rows but not in the table" in message
    assert _rows(gcp) == before


# --- defect 2: REQUIRED columns ------------------------------------------------------


REQUIRED_DDL = f"""
CREATE TABLE IF NOT EXISTS `{TARGET}` (
  user_id STRING NOT NULL,
  prediction_date DATE NOT NULL,
  item_id STRING,
  score FLOAT64
)
PARTITION BY prediction_date
CLUSTER BY user_id
"""


def test_a_required_column_is_a_schema_error_naming_it_before_bigquery_refuses(
    gcp: LocalGcp,
    wh: BigQueryWarehouse,
) -> None:
    wh.execute(REQUIRED_DDL)
    with pytest.raises(SchemaMismatchError) as err:
        _write(wh)
    assert "user_id is REQUIRED (NOT NULL) in the table but NULLABLE" in str(err.value)
    assert "DROP NOT NULL" in str(err.value)
    assert "_staging_" in _non_dry(gcp)[-1]["query"] and "destinationTable" not in _non_dry(gcp)[-1]  # no publish


def test_the_endpoint_refuses_nullable_rows_into_required_columns(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    """What happens without the check above: BigQuery's own refusal."""
    wh.execute(REQUIRED_DDL)
    config = bigquery.QueryJobConfig(
        destination=f"{TARGET}${DAY:%Y%m%d}", write_disposition="WRITE_TRUNCATE", use_legacy_sql=False
    )
    sql = "SELECT 'u' AS user_id, DATE '2024-05-01' AS prediction_date, 'i' AS item_id, 0.5 AS score"
    with pytest.raises(BadRequest, match="Field user_id has changed mode from REQUIRED to NULLABLE"):
        wh.client.query(sql, job_config=config).result()


def test_partition_tables_from_the_repo_ddl_accept_partition_writes(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    """sql/ddl keeps the columns of partition-written tables NULLABLE, so writes and DDL agree."""
    ensure_tables(wh, "recommendations")
    rows = pa.table(
        {
            "user_id": ["u1"],
            "item_id": ["i1"],
            "rank": pa.array([1], pa.int64()),
            "score": [0.9],
            "model_name": ["recsys"],
            "model_version": ["v1"],
            "run_id": ["r"],
            "generated_at": pa.array([dt.datetime(2024, 5, 1, 6, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")),
            "source": ["model"],
        }
    )
    assert wh.replace_partition("recommendations", "prediction_date", DAY, rows, cluster_by=("user_id",)).rows == 1
    assert _rows(gcp)[0]["item_id"] == "i1"


def test_partition_column_elsewhere_in_a_ddl_table_is_published_by_name(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    wh.execute(REQUIRED_DDL.replace(" NOT NULL", ""))
    _write(wh)
    assert list(gcp.bigquery.rows(PROJECT, DATASET, "recommendations").column_names) == [
        "user_id",
        "prediction_date",
        "item_id",
        "score",
    ]
    assert len(_rows(gcp)) == 5


def test_a_table_partitioned_otherwise_is_refused_with_the_fix(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    wh.execute(f"CREATE TABLE IF NOT EXISTS `{TARGET}` (prediction_date DATE, user_id STRING)")
    with pytest.raises(
        SchemaMismatchError, match=r"is not partitioned.*Recreate it partitioned by day on prediction_date"
    ):
        _write(wh)


# --- Arrow sources --------------------------------------------------------------------


def test_arrow_partition_loads_parquet_and_adds_the_partition_column(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    rows = pa.table({"user_id": ["a", "b"], "item_id": ["x", "y"], "score": [0.9, 0.1]})
    assert wh.replace_partition("recommendations", "prediction_date", DAY, rows, cluster_by=("user_id",)).rows == 2
    (load,) = _non_dry(gcp, "load")
    # Appended to a staging table created (with its expiry) just before: a load cannot set an expiry.
    assert load["sourceFormat"] == "PARQUET" and load["writeDisposition"] == "WRITE_APPEND"
    assert load["destinationTable"]["tableId"].startswith("_staging_")
    (insert,) = [r.json() for r in gcp.bigquery.requests if r.method == "POST" and r.path.endswith("/tables")][1:]
    assert insert["tableReference"]["tableId"] == load["destinationTable"]["tableId"] and insert["expirationTime"]
    assert sorted(r["item_id"] for r in _rows(gcp)) == ["x", "y"]


def test_arrow_partition_with_another_date_is_refused(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    rows = pa.table({"prediction_date": [DAY, DAY + dt.timedelta(days=1)], "user_id": ["a", "b"]})
    with pytest.raises(SchemaMismatchError, match="other values in prediction_date"):
        wh.replace_partition("recommendations", "prediction_date", DAY, rows)
    assert gcp.bigquery.jobs == {}


def test_arrow_partition_type_mismatch_writes_nothing(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    before = _rows(gcp)
    rows = pa.table({"user_id": ["a"], "item_id": ["x"], "score": ["high"]})
    with pytest.raises(SchemaMismatchError, match="score is FLOAT64 in the table but STRING"):
        wh.replace_partition("recommendations", "prediction_date", DAY, rows)
    assert _rows(gcp) == before


# --- inputs refused before any request ----------------------------------------------


def test_missing_query_parameter_is_refused_before_any_request(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    with pytest.raises(SQLTemplateError, match="@variant"):
        wh.replace_partition("recommendations", "prediction_date", DAY, ROWS_SQL, {"n": 1})
    assert gcp.bigquery.jobs == {}


@pytest.mark.parametrize("table", ["recs; DROP TABLE x", "recs`", "a.b"])
def test_identifier_injection_is_refused_before_any_request(gcp: LocalGcp, wh: BigQueryWarehouse, table: str) -> None:
    with pytest.raises(IdentifierError):
        wh.replace_partition(table, "prediction_date", DAY, ROWS_SQL, {"n": 1, "variant": 1})
    with pytest.raises(IdentifierError):
        wh.table_exists(table)
    assert not [r for r in gcp.bigquery.requests if r.path.startswith("/bigquery/")]


def test_datetime_partition_is_refused(wh: BigQueryWarehouse) -> None:
    with pytest.raises(TypeError, match=r"must be a datetime\.date"):
        wh.replace_partition("recommendations", "prediction_date", dt.datetime(2024, 5, 1), ROWS_SQL)


# --- queries, byte budget and errors --------------------------------------------------


def test_query_parameters_travel_typed_and_come_back_as_arrow(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    params = {"b": True, "i": 7, "f": 0.25, "s": "it's", "d": DAY, "ts": dt.datetime(2024, 5, 1, 6, tzinfo=dt.UTC)}
    out = wh.query("SELECT @b AS b, @i AS i, @f AS f, @s AS s, @d AS d, @ts AS ts", {**params, "unused": 1})
    assert out.to_pylist() == [params]
    sent = {p["name"]: p["parameterType"]["type"] for p in _non_dry(gcp)[-1]["queryParameters"]}
    assert sent == {"b": "BOOL", "i": "INT64", "f": "FLOAT64", "s": "STRING", "d": "DATE", "ts": "TIMESTAMP"}


def test_query_of_a_missing_table_names_the_sql_file(wh: BigQueryWarehouse) -> None:
    with pytest.raises(TableNotFoundError, match=r"sql/features\.sql: BigQuery could not find"):
        wh.query("SELECT * FROM events", source="sql/features.sql")


def test_a_query_bigquery_rejects_names_the_sql_file(wh: BigQueryWarehouse) -> None:
    with pytest.raises(SQLTemplateError, match=r"sql/x\.sql: BigQuery rejected the query"):
        wh.execute("SELECT no_such_column FROM UNNEST([1]) AS n", source="sql/x.sql")


def test_byte_cap_dry_runs_first_and_refuses_before_any_real_job(gcp: LocalGcp) -> None:
    wh = _warehouse(maximum_bytes_billed=100)
    _warehouse().replace_partition("recommendations", "prediction_date", DAY, ROWS_SQL, {"n": 50, "variant": 1})
    jobs_before = len(gcp.bigquery.jobs)
    with pytest.raises(BytesBudgetExceeded, match="maximum_bytes_billed=100"):
        wh.query("SELECT * FROM recommendations", source="sql/scan.sql")
    assert len(gcp.bigquery.jobs) == jobs_before  # only the dry run, which is not a job
    dry = [r for r in gcp.bigquery.requests if r.path.endswith("/jobs") and r.json()["configuration"].get("dryRun")]
    assert len(dry) == 1


def test_no_dry_run_without_a_byte_cap(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    assert not [
        r for r in gcp.bigquery.requests if r.path.endswith("/jobs") and r.json()["configuration"].get("dryRun")
    ]
    assert all("maximumBytesBilled" not in c for c in _non_dry(gcp))


def test_the_10_mb_minimum_bill_hits_the_cap_at_run_time_as_a_budget_error(gcp: LocalGcp) -> None:
    """BigQuery bills at least 10 MB per referenced table: a tiny cap passes the dry run, then fails."""
    _warehouse().replace_partition("recommendations", "prediction_date", DAY, ROWS_SQL, {"n": 3, "variant": 1})
    wh = _warehouse(maximum_bytes_billed=5 * 2**20)
    with pytest.raises(BytesBudgetExceeded, match="stopped the query at maximum_bytes_billed"):
        wh.query("SELECT * FROM recommendations", source="sql/scan.sql")
    assert _non_dry(gcp)[-1]["maximumBytesBilled"] == str(5 * 2**20)


def test_dry_run_bytes_returns_the_estimate(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    estimate = wh.dry_run_bytes("SELECT * FROM recommendations")
    assert estimate == gcp.bigquery.rows(PROJECT, DATASET, "recommendations").nbytes > 0


# --- defect 3: candidates come through the Storage Read API ---------------------------


def test_query_batches_read_arrow_through_the_storage_read_api(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh, n=1200)
    gcp.storage.batch_rows = 500
    with wh.query_batches("SELECT user_id, score FROM recommendations ORDER BY score", batch_rows=300) as batches:
        sizes = [b.num_rows for b in batches]
    assert sum(sizes) == 1200 and max(sizes) <= 300
    (session,) = gcp.storage.sessions
    assert session.parent == f"projects/{PROJECT}"
    assert session.read_session.data_format.name == "ARROW"
    assert gcp.storage.rows_sent == 1200
    pages = [
        r for r in gcp.bigquery.requests if r.path.split("/")[-2] == "queries" and r.query.get("maxResults") != "0"
    ]
    assert all("rows" not in r.query for r in pages)


def test_a_missing_read_session_permission_is_named(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    gcp.storage.deny_read_sessions = True
    refused = pytest.raises(WarehouseError, match=r"bigquery\.readsessions\.create.*roles/bigquery\.readSessionUser")
    with refused, wh.query_batches("SELECT * FROM recommendations", source="candidates") as batches:
        list(batches)


# --- defect 4: a retried export never trains on stale shards ---------------------------


def _parquet_files(gcp: LocalGcp, prefix: str) -> list[str]:
    import gcsfs

    fs = gcsfs.GCSFileSystem(endpoint_url=gcp.gcs_url, token="anon")
    return sorted(p for p in fs.find(f"{gcp.bucket}/{prefix}") if p.endswith(".parquet"))


def test_export_overwrite_keeps_other_files_as_bigquery_documents(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    """Why a shared folder is unsafe: a smaller second export leaves the first one's extra shards."""
    _write(wh, n=30)
    gcp.bigquery.export_shard_rows = 10
    sql = "EXPORT DATA OPTIONS (uri = 'gs://{b}/shared/part-*.parquet', format = 'PARQUET', overwrite = true) AS {q}"
    wh.execute(sql.format(b=gcp.bucket, q="SELECT * FROM recommendations"))
    wh.execute(sql.format(b=gcp.bucket, q="SELECT * FROM recommendations LIMIT 5"))
    assert len(_parquet_files(gcp, "shared")) == 3


def test_each_export_writes_a_folder_of_its_own_and_returns_it(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    import gcsfs

    _write(wh, n=30)
    gcp.bigquery.export_shard_rows = 10
    base = f"gs://{gcp.bucket}/airflow-ml/recsys/v1/data"
    first = wh.export_parquet("SELECT * FROM recommendations", None, base)
    retry = wh.export_parquet("SELECT * FROM recommendations LIMIT 5", None, base)

    assert first != retry and first.startswith(base + "/export-") and retry.startswith(base + "/export-")
    assert len(_parquet_files(gcp, first.removeprefix(f"gs://{gcp.bucket}/"))) == 3
    retry_files = _parquet_files(gcp, retry.removeprefix(f"gs://{gcp.bucket}/"))
    assert len(retry_files) == 1
    fs = gcsfs.GCSFileSystem(endpoint_url=gcp.gcs_url, token="anon")
    with fs.open(retry_files[0], "rb") as f:
        assert pq.read_table(f).num_rows == 5
    assert "overwrite = false" in _non_dry(gcp)[-1]["query"]


def test_export_uri_is_validated(wh: BigQueryWarehouse) -> None:
    with pytest.raises(WarehouseError, match="must be a gs:// folder"):
        wh.export_parquet("SELECT 1", None, "gs://bucket/x'; DROP")


# --- tables ----------------------------------------------------------------------------


def test_table_exists_columns_and_listing(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    assert not wh.table_exists("recommendations")
    assert wh.list_tables() == []
    _write(wh)
    wh.execute("CREATE OR REPLACE VIEW recommendations_latest AS SELECT * FROM recommendations")
    assert wh.table_exists("recommendations")
    assert wh.table_columns("recommendations") == {
        "prediction_date": "DATE",
        "user_id": "STRING",
        "item_id": "STRING",
        "score": "FLOAT64",
    }
    assert wh.list_tables() == ["recommendations"]  # views and staging tables are not listed
    with pytest.raises(TableNotFoundError, match="sql/ddl"):
        wh.table_columns("nope")


def test_list_tables_of_a_missing_dataset_is_empty(gcp: LocalGcp) -> None:
    config = PlatformConfig(backend="gcp", project=PROJECT, dataset="not_there", location="US")
    assert BigQueryWarehouse(config).list_tables() == []


def test_replace_table_loads_over_the_whole_table(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    assert wh.replace_table("items", pa.table({"item_id": ["a", "b", "c"]})) == 3
    assert wh.replace_table("items", pa.table({"item_id": ["z"], "price": [1.5]})) == 1
    assert _rows(gcp, "items") == [{"item_id": "z", "price": 1.5}]


def test_schema_differences_ignore_order_and_name_what_differs() -> None:
    assert schema_differences({"a": "INT64", "b": "STRING"}, {"b": "STRING", "a": "INT64"}) == []
    assert schema_differences({"a": "STRING"}, {"a": "INT64", "b": "DATE"}) == [
        "b (DATE) is in the table but not in the new rows",
        "a is INT64 in the table but STRING in the new rows",
    ]


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB")])
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


# --- data checks on the staged rows (issue 14's gate, on BigQuery) --------------------


def test_checks_run_on_the_staged_rows_and_a_failed_gate_publishes_nothing(
    gcp: LocalGcp, wh: BigQueryWarehouse
) -> None:
    from airflow_ml_provider.core.features.checks import CheckQuery, CheckResult

    _write(wh)
    before = _rows(gcp)
    seen: list[str] = []

    def check(relation: str) -> CheckQuery:
        seen.append(relation)
        sql = f"SELECT COUNTIF(score > @max_score) AS too_high FROM {relation}"
        return CheckQuery("recommendations", sql, {"max_score": 0.25}, judge=lambda row: [row["too_high"]])  # type: ignore[list-item]

    def gate(results: list[CheckResult]) -> None:
        if results[0]:
            raise ValueError(f"{results[0]} scores above the range")

    with pytest.raises(ValueError, match="scores above the range"):
        wh.replace_partition_checked(
            "recommendations", "prediction_date", DAY, ROWS_SQL, {"n": 5, "variant": 2}, check=check, gate=gate
        )
    assert _rows(gcp) == before
    assert seen[0].startswith("`my-project.recsys._staging_recommendations_20240501_")
    assert wh.list_tables() == ["recommendations"]

    written, results = wh.replace_partition_checked(
        "recommendations", "prediction_date", DAY, ROWS_SQL, {"n": 2, "variant": 2}, check=check, gate=gate
    )
    assert written.rows == 2 and results == [0]
    staged = [c for c in _non_dry(gcp) if "GENERATE_ARRAY" in c["query"]]
    assert len(staged) == 3  # the step query ran once per write (the first write, and one per checked write)


# --- defect 5: the publish job names the target's whole partitioning spec --------------------


EXPIRING_DDL = f"""
CREATE TABLE IF NOT EXISTS `{TARGET}` (prediction_date DATE, user_id STRING, item_id STRING, score FLOAT64)
PARTITION BY prediction_date
CLUSTER BY user_id
OPTIONS (partition_expiration_days = 90, require_partition_filter = TRUE)
"""


def test_publish_passes_the_targets_own_partitioning_and_clustering(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    """A target with partition expiration: a publish naming only {DAY, field} is an incompatible spec."""
    wh.execute(EXPIRING_DDL)
    assert _write(wh).rows == 5
    publish = _non_dry(gcp)[-1]
    assert publish["timePartitioning"] == {"type": "DAY", "field": "prediction_date", "expirationMs": "7776000000"}
    assert publish["clustering"] == {"fields": ["user_id"]}
    meta = gcp.bigquery.meta(PROJECT, DATASET, "recommendations")
    assert (meta.partition_expiration_ms, meta.require_partition_filter) == ("7776000000", True)


def test_the_endpoint_compares_the_whole_partitioning_spec(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    wh.execute(EXPIRING_DDL)
    config = bigquery.QueryJobConfig(
        destination=f"{TARGET}${DAY:%Y%m%d}",
        write_disposition="WRITE_TRUNCATE",
        time_partitioning=bigquery.TimePartitioning(field="prediction_date"),
        use_legacy_sql=False,
    )
    sql = "SELECT DATE '2024-05-01' AS prediction_date, 'u' AS user_id, 'i' AS item_id, 0.5 AS score"
    with pytest.raises(BadRequest, match=r"Incompatible table partitioning specification.*expiration_ms: 7776000000"):
        wh.client.query(sql, job_config=config).result()


# --- EXPORT DATA writes only to a bucket colocated with the dataset ---------------------------


def test_export_to_a_bucket_in_another_region_is_refused_as_bigquery_does(gcp: LocalGcp) -> None:
    """https://cloud.google.com/bigquery/docs/exporting-data#data-locations: a regional dataset, same region."""
    gcp.bigquery.create_dataset(PROJECT, "tokyo", "asia-northeast1")
    tokyo = BigQueryWarehouse(
        PlatformConfig(backend="gcp", project=PROJECT, dataset="tokyo", location="asia-northeast1"), labels=LABELS
    )
    tokyo.execute("CREATE TABLE t (x INT64)")
    with pytest.raises(ContractError, match=r"(?s)Cannot read and write in different locations.*validate --conn-id"):
        tokyo.export_parquet("SELECT * FROM t", None, f"gs://{gcp.bucket}/exports")  # my-bucket: us-central1


def test_a_us_dataset_exports_to_a_regional_bucket(gcp: LocalGcp, wh: BigQueryWarehouse) -> None:
    _write(wh)
    folder = wh.export_parquet("SELECT * FROM recommendations", None, f"gs://{gcp.bucket}/exports")
    assert len(_parquet_files(gcp, folder.removeprefix(f"gs://{gcp.bucket}/"))) == 1
