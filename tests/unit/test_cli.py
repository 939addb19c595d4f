"""`airflow-ml` end to end on a temporary embedded warehouse."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main


def test_help_lists_commands_and_examples():
    out = subprocess.run(
        [sys.executable, "-m", "airflow_ml_provider.cli", "--help"], capture_output=True, text=True, check=True
    )
    for word in ("seed-demo", "features", "tables", "Examples"):
        assert word in out.stdout


def test_seed_build_and_describe(tmp_path, capsys):
    wh_path = tmp_path / "w.duckdb"
    assert (
        main(["seed-demo", "--warehouse", str(wh_path), "--users", "200", "--items", "40", "--days", "35", "-q"]) == 0
    )
    assert (
        main(["features", "--warehouse", str(wh_path), "--date", "2026-03-20", "--to", "2026-03-21", "--json", "-q"])
        == 0
    )
    written = json.loads(capsys.readouterr().out)
    assert [(r["table"], r["partition"]) for r in written][:4] == [
        ("user_features", "2026-03-20"),
        ("item_features", "2026-03-20"),
        ("candidates", "2026-03-20"),
        ("features", "2026-03-20"),
    ]
    assert len(written) == 8 and all(r["rows"] > 0 for r in written)
    assert main(["tables", "--warehouse", str(wh_path), "--json"]) == 0
    tables = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    assert tables["features"]["partitions"] == 2
    assert tables["events"]["partition_column"] is None
    assert DuckDBWarehouse(wh_path).table_exists("features")


def test_seed_refuses_a_warehouse_with_sources_unless_forced(tmp_path, capsys):
    path = tmp_path / "w.duckdb"
    seed = ["seed-demo", "--warehouse", str(path), "--users", "100", "--items", "30", "--days", "10", "-q"]
    assert main(seed) == 0
    DuckDBWarehouse(path).execute("DELETE FROM events WHERE user_id <> 'u0001'")
    capsys.readouterr()
    assert main([*seed, "--users", "50"]) == 1
    err = capsys.readouterr().err
    assert f"--warehouse {path} already has source tables: users (100 rows), items (30 rows), events (" in err
    assert "Pass --force to replace them" in err
    assert DuckDBWarehouse(path).query("SELECT COUNT(*) AS n FROM users").to_pylist() == [{"n": 100}]
    assert main([*seed, "--users", "50", "--force"]) == 0
    assert DuckDBWarehouse(path).query("SELECT COUNT(*) AS n FROM users").to_pylist() == [{"n": 50}]


def test_seed_is_deterministic(tmp_path):
    sums = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.duckdb"
        main(["seed-demo", "--warehouse", str(path), "--users", "100", "--items", "30", "--days", "10", "-q"])
        with DuckDBWarehouse(path).connect(read_only=True) as con:
            sums.append(con.execute("SELECT count(*), sum(hash(e)) FROM events AS e").fetchone())
    assert sums[0] == sums[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "--date", "2026-03-20", "--pipeline", "missing.yaml"], "missing.yaml: contract file not found"),
        (["seed-demo", "--items", "3"], "demo size too small"),
        (["features", "--date", "2026-03-21", "--to", "2026-03-20"], "before start date"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, capsys, argv, message):
    assert main([*argv, "--warehouse", str(tmp_path / "w.duckdb"), "-q"]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_date_argument_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["features", "--date", "31/03/2026"])
    assert "expected a date as YYYY-MM-DD" in capsys.readouterr().err
