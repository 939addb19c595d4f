"""Data checks on a real DuckDB warehouse: staged-row gates, the data_checks table, the CLI and the operator."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import types

import pytest
from airflow.sdk import DAG

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.features.checks import DataCheckError, raise_on_errors, table_check_query
from airflow_ml_provider.core.features.data_checks import record_checks, run_checks
from airflow_ml_provider.core.features.render import render_sql
from airflow_ml_provider.core.warehouse.interface import Warehouse
from tests.paths import PIPELINE, SQL_DIR

DAY = dt.date(2026, 3, 24)
NOW = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path_factory.mktemp("checks") / "warehouse.duckdb")
    world = generate(DemoConfig(users=120, items=40, days=40, end_date=dt.date(2026, 3, 31)))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    build_features(wh, load_spec(PIPELINE), SQL_DIR, [DAY], labels=True)
    return wh


@pytest.fixture
def wh(built, tmp_path) -> DuckDBWarehouse:
    path = tmp_path / "warehouse.duckdb"
    path.write_bytes(built.path.read_bytes())
    return DuckDBWarehouse(path)


def checksum(wh: DuckDBWarehouse, table: str) -> tuple:
    with wh.connect(read_only=True) as con:
        return con.execute(f"SELECT count(*), sum(hash(t)) FROM {table} AS t").fetchone()


def test_checks_of_a_good_day_pass_and_replace_their_partition(wh):
    spec = load_spec(PIPELINE)
    results = run_checks(wh, spec, DAY, NOW)
    assert not [r for r in results if r.failed], [r.log_line() for r in results if r.failed]
    names = {(r.table, r.name) for r in results}
    assert {
        ("events", "freshness"),
        ("features", "unique(user_id, item_id)"),
        ("labels", "label_completeness(positives)"),
    } <= names
    first = record_checks(wh, DAY, results, "run-1", NOW)
    assert first.rows == len(results)
    record_checks(wh, DAY, results, "run-2", NOW)  # a rerun replaces the date: one set of results
    rows = wh.query("SELECT run_id, COUNT(*) AS n FROM data_checks GROUP BY run_id").to_pylist()
    assert rows == [{"run_id": "run-2", "n": len(results)}]


def test_a_date_without_partitions_reports_skipped_tables(wh):
    results = run_checks(wh, load_spec(PIPELINE), DAY - dt.timedelta(days=1), NOW, scope="tables")
    assert {r.status for r in results} == {"skipped"}
    assert any("has no partition as_of_date=2026-03-23" in r.message for r in results)


@pytest.mark.parametrize("path", ["duckdb-stage", "base-class"])
def test_a_failed_error_check_leaves_the_partition_as_it_was(wh, path):
    """Both the DuckDB override (checks the staged temp table) and the default (checks the query first)."""
    spec = load_spec(PIPELINE)
    step = spec.step("features")
    bad = render_sql(step, SQL_DIR, DAY, spec).rstrip().rstrip(";")
    bad = f"SELECT * REPLACE (CAST(NULL AS STRING) AS item_category) FROM (\n{bad}\n)"
    before = checksum(wh, "features")
    write = Warehouse.replace_partition_checked if path == "base-class" else DuckDBWarehouse.replace_partition_checked
    with pytest.raises(DataCheckError, match=r"features\.item_category has \d+ NULL value\(s\)"):
        write(
            wh,
            "features",
            "as_of_date",
            DAY,
            bad,
            spec.query_params(DAY),
            check=lambda rel: table_check_query(spec, "features", rel, DAY),
            gate=lambda results: raise_on_errors(results, "features"),
        )
    assert checksum(wh, "features") == before
    good = render_sql(step, SQL_DIR, DAY, spec)
    written, results = write(
        wh,
        "features",
        "as_of_date",
        DAY,
        good,
        spec.query_params(DAY),
        check=lambda rel: table_check_query(spec, "features", rel, DAY),
        gate=lambda results: raise_on_errors(results, "features"),
    )
    assert written.rows == before[0] and checksum(wh, "features") == before  # same rows back
    assert results and all(r.status == "pass" for r in results)


def cli(*argv: str) -> tuple[int, str, str]:
    from airflow_ml_provider.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "-q"])
    return code, out.getvalue(), err.getvalue()


def test_cli_check_prints_json_records_and_fails_on_an_error_check(wh):
    code, out, _ = cli("check", "--date", str(DAY), "--warehouse", str(wh.path), "--json", "--record")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["date"] == str(DAY)
    assert {c["name"] for c in report["checks"]} >= {"freshness", "duplicate_events", "not_null(item_category)"}
    assert wh.query("SELECT COUNT(*) AS n FROM data_checks").to_pylist()[0]["n"] == len(report["checks"])

    with wh.connect() as con:
        con.execute("INSERT INTO events SELECT * FROM events")
    before = checksum(wh, "data_checks")
    code, out, err = cli("check", "--date", str(DAY), "--warehouse", str(wh.path), "--record")
    assert code == 1
    assert "data check FAIL: events duplicate_events" in out
    assert "airflow-ml check: error: data checks of 2026-03-24: 1 data check(s) failed, nothing was written" in err
    assert checksum(wh, "data_checks") == before


def test_data_check_operator_records_the_dates_results(wh, monkeypatch):
    from airflow_ml_provider.operators.checks import DataCheckOperator

    conn = {"conn_type": "ml_platform", "extra": {"warehouse_path": str(wh.path)}}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps(conn))
    with DAG("test_checks", schedule=None):
        op = DataCheckOperator(task_id="data_checks", pipeline=str(PIPELINE), partition_date=str(DAY))
    ti = types.SimpleNamespace(dag_id="test_checks", task_id="data_checks", run_id="manual__1")
    result = op.execute({"ds": str(DAY), "ti": ti})
    assert result["date"] == str(DAY) and result["checks"] == result["pass"] + result["warn"] + result["skipped"]
    rows = wh.query("SELECT DISTINCT run_id, check_date FROM data_checks").to_pylist()
    assert rows == [{"run_id": "manual__1", "check_date": DAY}]
