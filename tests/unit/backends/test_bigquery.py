"""BigQueryWarehouse against a fake of the cloud edge: assert the requests BigQuery would receive."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from unittest.mock import MagicMock, create_autospec

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
from google.api_core.exceptions import BadRequest, NotFound
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_ml_provider.backends import get_warehouse
from airflow_ml_provider.backends.bigquery import BigQueryWarehouse, human_bytes, schema_differences
from airflow_ml_provider.core.config import PlatformConfig
from airflow_ml_provider.exceptions import (
    BytesBudgetExceeded,
    EmptyResultError,
    IdentifierError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    WarehouseError,
)

PROJECT, DATASET = "my-project", "recsys"
TARGET = f"{PROJECT}.{DATASET}.recommendations"
DAY = dt.date(2024, 5, 1)
LABELS = {"airflow-dag": "recsys_batch_inference", "airflow-run": "scheduled-2024-05-01", "managed-by": "x"}
SQL = "SELECT user_id, score FROM scores WHERE as_of = @as_of"
RESULT_SCHEMA = [SchemaField("user_id", "STRING"), SchemaField("score", "FLOAT")]
_ARROW_TO_BQ = {
    pa.string(): "STRING",
    pa.large_string(): "STRING",
    pa.int64(): "INTEGER",
    pa.float64(): "FLOAT",
    pa.date32(): "DATE",
    pa.bool_(): "BOOLEAN",
}


def _table(table_id: str, schema: list[SchemaField], rows: int) -> bigquery.Table:
    table = bigquery.Table(table_id, schema=schema)
    table._properties["numRows"] = str(rows)
    return table


def _job(kind: type, job_id: str, total_bytes: int | None = None) -> MagicMock:
    job = create_autospec(kind, instance=True)
    job.job_id = job_id
    job.total_bytes_processed = total_bytes
    return job


class FakeBigQuery:
    """Just enough BigQuery behaviour (tables, jobs) to follow a write; records every request."""

    def __init__(self, client: MagicMock) -> None:
        self.client = client
        self.tables: dict[str, bigquery.Table] = {}
        self.queries: list[tuple[str, bigquery.QueryJobConfig]] = []
        self.loads: list[tuple[str, bigquery.LoadJobConfig, pa.Table]] = []
        self.copies: list[tuple[str, str, bigquery.CopyJobConfig]] = []
        self.created: list[bigquery.Table] = []
        self.deleted: list[str] = []
        self.expires: dict[str, dt.datetime] = {}
        self.estimate = 1_000
        self.result_rows = 3
        self.query_error: Exception | None = None
        self.copy_error: Exception | None = None
        client.query.side_effect = self.query
        client.get_table.side_effect = self.get_table
        client.update_table.side_effect = self.update_table
        client.create_table.side_effect = self.create_table
        client.delete_table.side_effect = self.delete_table
        client.copy_table.side_effect = self.copy_table
        client.load_table_from_file.side_effect = self.load_table_from_file

    @property
    def real_queries(self) -> list[tuple[str, bigquery.QueryJobConfig]]:
        return [(sql, cfg) for sql, cfg in self.queries if not cfg.dry_run]

    def query(self, sql: str, job_config: bigquery.QueryJobConfig, **_: Any) -> MagicMock:
        self.queries.append((sql, job_config))
        job = _job(bigquery.QueryJob, f"job_{len(self.queries)}", self.estimate if job_config.dry_run else 1234)
        if job_config.dry_run:
            return job
        if self.query_error is not None:
            job.result.side_effect = self.query_error
            return job
        job.result.return_value.to_arrow.return_value = pa.table({"user_id": ["u1"], "score": [0.5]})
        if job_config.destination is not None:
            destination = str(job_config.destination)
            self.tables[destination] = _table(destination, self._result_schema(sql), self.result_rows)
        return job

    def _result_schema(self, sql: str) -> list[SchemaField]:
        reorder = re.fullmatch(r"SELECT (.+) FROM `(.+)`", sql)
        if reorder:  # SELECT `a`, `b` FROM `staging`
            fields = {f.name: f for f in self.tables[reorder.group(2)].schema}
            return [fields[c.strip("` ")] for c in reorder.group(1).split(",")]
        column = re.search(r"@__partition AS (\w+)", sql)
        return ([SchemaField(column.group(1), "DATE")] if column else []) + RESULT_SCHEMA

    def get_table(self, table: str | bigquery.Table) -> bigquery.Table:
        table_id = table if isinstance(table, str) else str(table.reference)
        if table_id not in self.tables:
            raise NotFound(f"Not found: Table {table_id}")
        return self.tables[table_id]

    def update_table(self, table: bigquery.Table, fields: list[str]) -> bigquery.Table:
        assert fields == ["expires"]
        self.expires[str(table.reference)] = table.expires
        return table

    def create_table(self, table: bigquery.Table, exists_ok: bool = False) -> bigquery.Table:
        assert exists_ok, "a concurrent first write must not fail on create"
        self.created.append(table)
        self.tables[str(table.reference)] = table
        return table

    def delete_table(self, table: str, not_found_ok: bool = False) -> None:
        self.deleted.append(table)
        self.tables.pop(table, None)

    def copy_table(self, source: str, destination: str, job_config: bigquery.CopyJobConfig, **_: Any) -> MagicMock:
        self.copies.append((source, destination, job_config))
        job = _job(bigquery.CopyJob, "copy_1")
        if self.copy_error is not None:
            job.result.side_effect = self.copy_error
        return job

    def load_table_from_file(
        self, file_obj: Any, destination: str, job_config: bigquery.LoadJobConfig, **_: Any
    ) -> MagicMock:
        data = pq.read_table(file_obj)
        self.loads.append((destination, job_config, data))
        schema = [SchemaField(f.name, _ARROW_TO_BQ[f.type]) for f in data.schema]
        self.tables[destination] = _table(destination, schema, data.num_rows)
        return _job(bigquery.LoadJob, "load_1")


@pytest.fixture
def client() -> MagicMock:
    return create_autospec(bigquery.Client, instance=True)


@pytest.fixture
def hook_cls(client: MagicMock, monkeypatch: pytest.MonkeyPatch) -> MagicMock:
    hook_cls = create_autospec(BigQueryHook)
    hook_cls.return_value.get_client.return_value = client
    monkeypatch.setattr("airflow_ml_provider.backends.bigquery.BigQueryHook", hook_cls)
    return hook_cls


@pytest.fixture
def bq(client: MagicMock, hook_cls: MagicMock) -> FakeBigQuery:
    return FakeBigQuery(client)


def _warehouse(**extras: Any) -> BigQueryWarehouse:
    config = PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="EU", **extras)
    return BigQueryWarehouse(config, labels=LABELS)


def _existing_target(bq: FakeBigQuery, schema: list[SchemaField] | None = None) -> None:
    schema = schema or [SchemaField("prediction_date", "DATE"), *RESULT_SCHEMA]
    bq.tables[TARGET] = _table(TARGET, schema, 100)


def _write(warehouse: BigQueryWarehouse, source: Any = SQL, **kwargs: Any) -> Any:
    kwargs.setdefault("params", {"as_of": DAY, "unused": 7})
    return warehouse.replace_partition(
        "recommendations", "prediction_date", DAY, source, sql_source="sql/recsys/score.sql", **kwargs
    )


def _params(config: bigquery.QueryJobConfig) -> dict[str, tuple[str, Any]]:
    return {p.name: (p.type_, p.value) for p in config.query_parameters}


# --- the client comes from the Google provider's hook ----------------------------------


def test_get_warehouse_gcp_returns_bigquery_warehouse() -> None:
    warehouse = get_warehouse(PlatformConfig(backend="gcp", project="my-project", dataset="recsys"))
    assert isinstance(warehouse, BigQueryWarehouse)
    assert warehouse.backend == "gcp"


def test_client_is_built_once_by_the_bigquery_hook(hook_cls: MagicMock, client: MagicMock) -> None:
    config = PlatformConfig(
        backend="gcp",
        project=PROJECT,
        dataset=DATASET,
        location="EU",
        gcp_conn_id="gcp_prod",
        impersonation_chain="sa@my-project.iam.gserviceaccount.com",
    )
    warehouse = BigQueryWarehouse(config)
    assert warehouse.client is client
    assert warehouse.client is client
    hook_cls.assert_called_once_with(
        gcp_conn_id="gcp_prod",
        location="EU",
        impersonation_chain="sa@my-project.iam.gserviceaccount.com",
        use_legacy_sql=False,
    )
    hook_cls.return_value.get_client.assert_called_once_with(project_id=PROJECT, location="EU")


# --- replace_partition from SQL -------------------------------------------------------


def test_sql_partition_query_job_config(bq: FakeBigQuery) -> None:
    _write(_warehouse(maximum_bytes_billed=10 * 2**30))

    [(sql, config)] = bq.real_queries
    assert "SELECT @__partition AS prediction_date, src.* FROM (" in sql
    assert SQL in sql
    assert re.fullmatch(rf"{PROJECT}\.{DATASET}\._staging_recommendations_20240501_[0-9a-f]+", str(config.destination))
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert config.use_legacy_sql is False
    assert str(config.default_dataset) == f"{PROJECT}.{DATASET}"
    assert config.labels == LABELS
    assert _params(config) == {"__partition": ("DATE", DAY), "as_of": ("DATE", DAY)}
    assert config.maximum_bytes_billed == 10 * 2**30
    assert config.dry_run is not True


def test_sql_partition_dry_runs_the_same_query_first_when_a_byte_cap_is_set(bq: FakeBigQuery) -> None:
    _write(_warehouse(maximum_bytes_billed=10 * 2**30))

    (dry_sql, dry), (real_sql, _) = bq.queries
    assert dry.dry_run is True and dry.use_query_cache is False
    assert dry_sql == real_sql
    assert _params(dry) == {"__partition": ("DATE", DAY), "as_of": ("DATE", DAY)}
    assert dry.use_legacy_sql is False and dry.labels == LABELS


def test_no_dry_run_and_no_byte_cap_without_maximum_bytes_billed(bq: FakeBigQuery) -> None:
    _write(_warehouse())

    assert [cfg.dry_run for _, cfg in bq.queries] == [None]
    assert "maximumBytesBilled" not in bq.queries[0][1].to_api_repr()["query"]


def test_sql_partition_copies_staging_over_the_partition_decorator(bq: FakeBigQuery) -> None:
    _existing_target(bq)
    result = _write(_warehouse())

    staging = str(bq.real_queries[0][1].destination)
    [(source, destination, config)] = bq.copies
    assert (source, destination) == (staging, f"{TARGET}$20240501")
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert config.create_disposition == bigquery.CreateDisposition.CREATE_NEVER
    assert config.labels == LABELS
    assert result.as_dict() == {
        "table": "recommendations",
        "partition": "2024-05-01",
        "rows": 3,
        "bytes_processed": 1234,
    }
    assert bq.created == []


def test_partition_column_elsewhere_in_the_table_is_matched_by_a_reorder_job(bq: FakeBigQuery) -> None:
    _existing_target(bq, [RESULT_SCHEMA[0], SchemaField("prediction_date", "DATE"), RESULT_SCHEMA[1]])

    _write(_warehouse())

    (_, first), (reorder_sql, reorder) = bq.real_queries
    staging = str(first.destination)
    assert reorder_sql == f"SELECT `user_id`, `prediction_date`, `score` FROM `{staging}`"
    assert str(reorder.destination) == staging
    assert reorder.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert reorder.labels == LABELS
    assert bq.copies[0][:2] == (staging, f"{TARGET}$20240501")


def test_staging_table_expires_and_is_deleted_after_the_copy(bq: FakeBigQuery) -> None:
    _existing_target(bq)
    before = dt.datetime.now(dt.UTC)
    _write(_warehouse())

    staging = str(bq.real_queries[0][1].destination)
    assert dt.timedelta(hours=1) < bq.expires[staging] - before <= dt.timedelta(days=1, minutes=1)
    assert bq.deleted == [staging]
    assert staging not in bq.tables


def test_first_write_creates_a_day_partitioned_clustered_table(bq: FakeBigQuery) -> None:
    _write(_warehouse(), cluster_by=("user_id",))

    [created] = bq.created
    assert str(created.reference) == TARGET
    assert created.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
    assert created.time_partitioning.field == "prediction_date"
    assert created.clustering_fields == ["user_id"]
    assert [(f.name, f.field_type) for f in created.schema] == [
        ("prediction_date", "DATE"),
        ("user_id", "STRING"),
        ("score", "FLOAT"),
    ]
    assert bq.copies[0][1] == f"{TARGET}$20240501"


def test_staging_table_is_deleted_even_when_the_copy_fails(bq: FakeBigQuery) -> None:
    _existing_target(bq)
    bq.copy_error = BadRequest("Incompatible table schemata")

    with pytest.raises(WarehouseError, match=r"recommendations\$20240501.*Incompatible table schemata"):
        _write(_warehouse())
    staging = str(bq.real_queries[0][1].destination)
    assert bq.deleted == [staging]


def test_bytes_guard_refuses_before_any_real_job(bq: FakeBigQuery) -> None:
    bq.estimate = 3 * 2**40

    with pytest.raises(BytesBudgetExceeded) as err:
        _write(_warehouse(maximum_bytes_billed=10 * 2**30))

    message = str(err.value)
    assert "sql/recsys/score.sql" in message
    assert "3.0 TiB" in message and "10.0 GiB" in message
    assert "date filter" in message and "maximum_bytes_billed" in message and "ml_platform" in message
    assert bq.real_queries == [] and bq.copies == [] and bq.created == []


def test_empty_result_raises_and_leaves_the_target_untouched(bq: FakeBigQuery) -> None:
    bq.result_rows = 0

    with pytest.raises(EmptyResultError) as err:
        _write(_warehouse())

    assert all(s in str(err.value) for s in (TARGET, "2024-05-01", "sql/recsys/score.sql", "allow_empty"))
    assert bq.copies == [] and bq.created == []
    assert bq.deleted == [str(bq.real_queries[0][1].destination)]


def test_allow_empty_replaces_the_partition_with_no_rows(bq: FakeBigQuery) -> None:
    _existing_target(bq)
    bq.result_rows = 0

    result = _write(_warehouse(), allow_empty=True)

    assert result.rows == 0
    assert bq.copies[0][1] == f"{TARGET}$20240501"


def test_schema_mismatch_names_the_columns_and_copies_nothing(bq: FakeBigQuery) -> None:
    _existing_target(
        bq,
        [
            SchemaField("prediction_date", "DATE"),
            SchemaField("user_id", "INTEGER"),
            SchemaField("rank", "INT64"),
        ],
    )

    with pytest.raises(SchemaMismatchError) as err:
        _write(_warehouse())

    message = str(err.value)
    assert "user_id is INT64 in the table but STRING in the new rows" in message
    assert "rank (INT64) is in the table but not in the new rows" in message
    assert "score (FLOAT64) is in the new rows but not in the table" in message
    assert "sql/ddl" in message
    assert bq.copies == []
    assert len(bq.deleted) == 1


def test_missing_query_parameter_raises_before_any_client_call(bq: FakeBigQuery, client: MagicMock) -> None:
    with pytest.raises(SQLTemplateError, match="@as_of"):
        _write(_warehouse(), params={})
    assert bq.queries == [] and bq.copies == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"table": "t; DROP TABLE x"},
        {"partition_column": "d) AS x; DROP TABLE y --"},
        {"cluster_by": ("user_id`, `x",)},
    ],
)
def test_identifier_injection_is_refused_before_any_client_call(
    hook_cls: MagicMock, client: MagicMock, kwargs: dict[str, Any]
) -> None:
    args = {"table": "recommendations", "partition_column": "prediction_date", **kwargs}
    with pytest.raises(IdentifierError):
        _warehouse().replace_partition(
            args.pop("table"), args.pop("partition_column"), DAY, SQL, {"as_of": DAY}, **args
        )
    assert client.mock_calls == []
    hook_cls.assert_not_called()


def test_injection_in_table_lookups_is_refused(hook_cls: MagicMock, client: MagicMock) -> None:
    warehouse = _warehouse()
    for call in (warehouse.table_exists, warehouse.table_columns):
        with pytest.raises(IdentifierError):
            call("x.y`; DROP TABLE z")
    with pytest.raises(IdentifierError):
        warehouse.replace_table("t; DROP TABLE x", pa.table({"a": [1]}))
    assert client.mock_calls == []


def test_datetime_partition_is_refused(bq: FakeBigQuery) -> None:
    with pytest.raises(TypeError, match=r"datetime\.date"):
        _warehouse().replace_partition(
            "recommendations", "prediction_date", dt.datetime(2024, 5, 1, 3), SQL, {"as_of": DAY}
        )
    assert bq.queries == []


# --- replace_partition from Arrow ------------------------------------------------------


def test_arrow_partition_prepends_the_partition_column_and_loads_parquet(bq: FakeBigQuery) -> None:
    rows = pa.table({"user_id": ["u1", "u2"], "score": [0.9, 0.1]})

    result = _write(_warehouse(), rows, params=None)

    [(destination, config, loaded)] = bq.loads
    assert re.fullmatch(rf"{PROJECT}\.{DATASET}\._staging_recommendations_20240501_[0-9a-f]+", destination)
    assert config.source_format == bigquery.SourceFormat.PARQUET
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert config.labels == LABELS
    assert loaded.column_names == ["prediction_date", "user_id", "score"]
    assert loaded.column("prediction_date").to_pylist() == [DAY, DAY]
    assert loaded.column("score").to_pylist() == [0.9, 0.1]
    assert bq.copies[0][:2] == (destination, f"{TARGET}$20240501")
    assert bq.deleted == [destination]
    assert bq.queries == []
    assert (result.rows, result.bytes_processed) == (2, None)


def test_arrow_partition_follows_the_existing_table_column_order(bq: FakeBigQuery) -> None:
    _existing_target(bq, [SchemaField("user_id", "STRING"), SchemaField("prediction_date", "DATE"), RESULT_SCHEMA[1]])
    rows = pa.table({"score": [0.9], "user_id": ["u1"]})

    _write(_warehouse(), rows, params=None)

    assert bq.loads[0][2].column_names == ["user_id", "prediction_date", "score"]
    assert len(bq.copies) == 1


def test_arrow_partition_column_with_another_date_is_refused(bq: FakeBigQuery) -> None:
    rows = pa.table({"prediction_date": [DAY, dt.date(2024, 4, 30)], "user_id": ["u1", "u2"], "score": [1.0, 2.0]})

    with pytest.raises(SchemaMismatchError, match=r"prediction_date.*2024, 4, 30"):
        _write(_warehouse(), rows, params=None)
    assert bq.loads == [] and bq.copies == []


def test_arrow_partition_type_mismatch_copies_nothing(bq: FakeBigQuery) -> None:
    _existing_target(bq)
    rows = pa.table({"user_id": [1, 2], "score": [0.9, 0.1]})

    with pytest.raises(SchemaMismatchError, match="user_id is STRING in the table but INT64 in the new rows"):
        _write(_warehouse(), rows, params=None)
    assert bq.copies == []
    assert bq.deleted == [bq.loads[0][0]]


# --- queries, tables ---------------------------------------------------------------------


def test_query_returns_arrow_with_only_the_used_parameters(bq: FakeBigQuery) -> None:
    table = _warehouse().query(SQL, {"as_of": DAY, "k": 10}, source="sql/analytics/top.sql")

    assert table.column_names == ["user_id", "score"]
    [(sql, config)] = bq.queries
    assert sql == SQL
    assert _params(config) == {"as_of": ("DATE", DAY)}
    assert config.destination is None
    assert config.use_legacy_sql is False and str(config.default_dataset) == f"{PROJECT}.{DATASET}"


def test_query_parameter_types(bq: FakeBigQuery) -> None:
    sql = "SELECT @flag AS f, @n AS n, @x AS x, @s AS s, @ts AS ts"
    ts = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    _warehouse().query(sql, {"flag": True, "n": 3, "x": 0.5, "s": "a", "ts": ts})

    assert _params(bq.queries[0][1]) == {
        "flag": ("BOOL", True),
        "n": ("INT64", 3),
        "x": ("FLOAT64", 0.5),
        "s": ("STRING", "a"),
        "ts": ("TIMESTAMP", ts),
    }


def test_query_not_found_names_the_sql_file(bq: FakeBigQuery) -> None:
    bq.query_error = NotFound("Not found: Table my-project:recsys.scores")

    with pytest.raises(TableNotFoundError, match=r"sql/recsys/score\.sql.*recsys\.scores"):
        _warehouse().query(SQL, {"as_of": DAY}, source="sql/recsys/score.sql")


def test_execute_waits_and_bad_request_names_the_sql_file(bq: FakeBigQuery) -> None:
    bq.query_error = BadRequest("Syntax error: Unexpected keyword FROM at [1:8]")

    with pytest.raises(SQLTemplateError, match=r"sql/ddl/x\.sql.*Unexpected keyword FROM.*Fix the SQL"):
        _warehouse().execute("CREATE TABLE IF NOT EXISTS x (a INT64)", source="sql/ddl/x.sql")


def test_billing_limit_hit_at_run_time_is_a_budget_error(bq: FakeBigQuery) -> None:
    bq.query_error = BadRequest(
        "Query exceeded limit for bytes billed: 1000.",
        errors=[{"reason": "bytesBilledLimitExceeded", "message": "Query exceeded limit"}],
    )

    with pytest.raises(BytesBudgetExceeded, match="maximum_bytes_billed"):
        _warehouse().query(SQL, {"as_of": DAY}, source="sql/recsys/score.sql")


def test_dry_run_bytes_returns_the_estimate(bq: FakeBigQuery) -> None:
    bq.estimate = 123_456

    assert _warehouse().dry_run_bytes(SQL, {"as_of": DAY}) == 123_456
    [(_, config)] = bq.queries
    assert config.dry_run is True and config.use_query_cache is False


def test_table_exists_and_columns(bq: FakeBigQuery) -> None:
    _existing_target(
        bq,
        [
            SchemaField("prediction_date", "DATE"),
            SchemaField("rank", "INTEGER"),
            SchemaField("tags", "STRING", mode="REPEATED"),
            SchemaField("meta", "RECORD", fields=[SchemaField("ok", "BOOLEAN")]),
        ],
    )
    warehouse = _warehouse()

    assert warehouse.table_exists("recommendations") is True
    assert warehouse.table_exists("missing") is False
    assert warehouse.table_columns("recommendations") == {
        "prediction_date": "DATE",
        "rank": "INT64",
        "tags": "ARRAY<STRING>",
        "meta": "STRUCT<ok BOOL>",
    }
    with pytest.raises(TableNotFoundError, match=rf"{PROJECT}\.{DATASET}\.missing does not exist"):
        warehouse.table_columns("missing")


def test_list_tables_lists_tables_only_sorted_without_staging(client: MagicMock, hook_cls: MagicMock) -> None:
    def item(name: str, kind: str) -> bigquery.table.TableListItem:
        ref = {"projectId": PROJECT, "datasetId": DATASET, "tableId": name}
        return bigquery.table.TableListItem({"tableReference": ref, "type": kind})

    client.list_tables.return_value = iter(
        [
            item("ml_models", "TABLE"),
            item("_staging_x_20240501_ab", "TABLE"),
            item("latest", "VIEW"),
            item("a", "TABLE"),
        ]
    )

    assert _warehouse().list_tables() == ["a", "ml_models"]
    client.list_tables.assert_called_once_with(f"{PROJECT}.{DATASET}")


def test_list_tables_of_a_missing_dataset_is_empty(client: MagicMock, hook_cls: MagicMock) -> None:
    client.list_tables.side_effect = NotFound("Not found: Dataset my-project:recsys")

    assert _warehouse().list_tables() == []


def test_replace_table_loads_over_the_whole_table(bq: FakeBigQuery) -> None:
    data = pa.table({"item_id": ["a", "b", "c"], "popularity": [3, 2, 1]})

    assert _warehouse().replace_table("item_popularity", data) == 3

    [(destination, config, loaded)] = bq.loads
    assert destination == f"{PROJECT}.{DATASET}.item_popularity"
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    assert loaded.equals(data)
    assert bq.copies == []


# --- pure helpers ------------------------------------------------------------------------


def test_schema_differences_reports_order_only_when_names_and_types_match() -> None:
    assert schema_differences({"a": "INT64", "b": "STRING"}, {"a": "INT64", "b": "STRING"}) == []
    [diff] = schema_differences({"b": "STRING", "a": "INT64"}, {"a": "INT64", "b": "STRING"})
    assert "different order" in diff and "table (a, b), new rows (b, a)" in diff


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB"), (5 * 2**50, "5120.0 TiB")],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text
