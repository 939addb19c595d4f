"""FeatureExtractOperator against a real DuckDB warehouse, run in-process.

The connection comes from an ``AIRFLOW_CONN_*`` variable, as a deployment would set it.
"""

from __future__ import annotations

import datetime as dt
import json
import types

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.operators.features import FeatureExtractOperator
from tests.paths import PIPELINE, SQL_DIR

AS_OF = "2026-03-24"


@pytest.fixture
def warehouse(tmp_path, monkeypatch) -> DuckDBWarehouse:
    path = tmp_path / "warehouse.duckdb"
    extra = {"backend": "local", "warehouse_path": str(path), "dataset": "recsys"}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    wh = DuckDBWarehouse(path, schema="recsys")
    world = generate(DemoConfig(users=300, items=80, days=40))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    return wh


def run(task_id: str, searchpath=SQL_DIR, ds: str = AS_OF, **kwargs) -> dict:
    """Render and execute one operator as the task runner would."""
    with DAG(f"test_{task_id}", schedule=None, template_searchpath=[str(searchpath)]):
        op = FeatureExtractOperator(task_id=task_id, pipeline=str(PIPELINE), **kwargs)
    context = {"ds": ds, "ti": types.SimpleNamespace(dag_id=f"test_{task_id}", task_id=task_id, run_id="manual__1")}
    op.render_template_fields(context)
    return op.execute(context)


def checksum(wh: DuckDBWarehouse, table: str) -> tuple:
    """Row count and an order-independent hash of every row."""
    with wh.connect(read_only=True) as con:
        return con.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t").fetchone()


def test_writes_partition_from_contract_step(warehouse):
    result = run("user_features", table="user_features")
    assert result["table"] == "user_features"
    assert result["partition"] == AS_OF
    assert result["rows"] > 100
    got = warehouse.query("SELECT as_of_date, COUNT(*) AS n FROM user_features GROUP BY 1").to_pylist()
    assert got == [{"as_of_date": dt.date(2026, 3, 24), "n": result["rows"]}]
    json.dumps(result)  # small JSON for XCom


def test_rerun_for_same_date_leaves_same_rows(warehouse):
    for table in ("user_features", "item_features", "candidates", "features"):
        run(table, table=table)
    before = {t: checksum(warehouse, t) for t in ("candidates", "features")}
    run("features", table="features")
    run("candidates", table="candidates")
    assert {t: checksum(warehouse, t) for t in ("candidates", "features")} == before


def test_features_match_declared_schema(warehouse):
    from airflow_ml_provider.core.contract.spec import FEATURE_TYPES, load_spec

    for table in ("user_features", "item_features", "candidates", "features"):
        run(table, table=table)
    spec = load_spec(PIPELINE)
    cols = warehouse.table_columns("features")
    declared = {f.name: f.type for f in spec.features}
    produced = {c: t for c, t in cols.items() if c not in ("as_of_date", "user_id", "item_id")}
    assert set(produced) == set(declared)
    for name, bq_type in declared.items():
        assert produced[name] in FEATURE_TYPES[bq_type], name
    nulls = warehouse.query(
        "SELECT "
        + ", ".join(f"COUNTIF({f.name} IS NULL) AS {f.name}" for f in spec.features if not f.nullable)
        + " FROM features"
    ).to_pylist()[0]
    assert all(v == 0 for v in nulls.values()), nulls


def test_malformed_sql_file_names_the_file(warehouse, tmp_path):
    (tmp_path / "broken.sql").write_text("SELECT user_id, FROM events WHERE")
    with pytest.raises(AirflowFailException, match=r"broken\.sql.*does not parse as GoogleSQL"):
        run("broken", searchpath=tmp_path, table="broken", sql="broken.sql")
    assert not warehouse.table_exists("broken")


def test_unknown_table_names_the_file_and_table(warehouse, tmp_path):
    (tmp_path / "unknown.sql").write_text("SELECT user_id FROM no_such_table WHERE DATE(ts) <= @as_of")
    with pytest.raises(AirflowFailException, match=r"unknown\.sql.*no_such_table"):
        run("unknown", searchpath=tmp_path, table="unknown_out", sql="unknown.sql")


def test_missing_sql_file_names_it(warehouse, tmp_path):
    with pytest.raises(AirflowFailException, match=r"'nope\.sql'.*not found under the DAG's template_searchpath"):
        run("nope", searchpath=tmp_path, table="nope", sql="nope.sql")


def test_missing_column_leaves_table_untouched(warehouse, tmp_path):
    run("user_features", table="user_features")
    before = checksum(warehouse, "user_features")
    (tmp_path / "narrow.sql").write_text("SELECT user_id FROM events WHERE DATE(event_ts) <= @as_of GROUP BY user_id")
    with pytest.raises(
        AirflowFailException, match=r"narrow\.sql.*user_events: table has BIGINT, rows have no such column"
    ):
        run("narrow", searchpath=tmp_path, table="user_features", sql="narrow.sql")
    assert checksum(warehouse, "user_features") == before


def test_empty_result_fails_and_keeps_partition(warehouse):
    run("user_features", table="user_features")
    before = checksum(warehouse, "user_features")
    # No events before the demo window: the query returns nothing for that date.
    with pytest.raises(AirflowFailException, match=r"EmptyResultError.*produced no rows"):
        run(
            "user_features",
            table="user_features",
            ds="2025-01-01",
            partition_date="2026-03-24",
            query_params={"as_of": dt.date(2025, 1, 1)},
        )
    assert checksum(warehouse, "user_features") == before


def test_quote_laden_values_travel_as_parameters(warehouse, tmp_path):
    (tmp_path / "param.sql").write_text("SELECT @who AS who, COUNT(*) AS n FROM events WHERE DATE(event_ts) <= @as_of")
    evil = "O'Brien'); DROP TABLE events; --"
    run("param", searchpath=tmp_path, table="param_out", sql="param.sql", query_params={"who": evil})
    assert warehouse.query("SELECT who FROM param_out").to_pylist() == [{"who": evil}]
    assert warehouse.table_exists("events")


def test_bad_partition_date_is_a_clear_error(warehouse):
    with pytest.raises(AirflowFailException, match="partition_date must render to a YYYY-MM-DD date, got 'yesterday'"):
        run("user_features", table="user_features", partition_date="yesterday")


def test_injection_in_table_name_is_refused(warehouse):
    with pytest.raises(AirflowFailException, match="not a valid identifier"):
        run("user_features", table="user_features", sql="recsys/user_features.sql", partition_column="d; DROP TABLE x")


def test_missing_named_connection_is_a_clear_error(warehouse):
    with pytest.raises(AirflowFailException, match="connection 'ml_gcp' does not exist"):
        run("user_features", table="user_features", ml_conn_id="ml_gcp")


def test_gcp_connection_without_project_is_a_clear_error(warehouse, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ML_GCP", json.dumps({"conn_type": "ml_platform", "extra": {"backend": "gcp"}}))
    with pytest.raises(AirflowFailException, match="backend 'gcp' needs project and dataset"):
        run("user_features", table="user_features", ml_conn_id="ml_gcp")


def test_labels_before_their_horizon_are_refused_naming_the_ready_day(warehouse):
    """Events end 03-31: labels of 03-28 would count 04-01..04-04 as 'nothing happened'."""
    with pytest.raises(AirflowFailException, match="becomes ready on 2026-04-05"):
        run("labels", table="labels", ds="2026-03-28")
    assert not warehouse.table_exists("labels")
