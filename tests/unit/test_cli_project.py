"""The command line a new user meets: contract discovery, a missing --warehouse, aligned tables, progress lines."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from airflow_ml_provider.cli import main
from airflow_ml_provider.cli_common import format_table, progress
from airflow_ml_provider.core.contract.project import PACKAGE_ROOT, find_pipeline
from airflow_ml_provider.exceptions import ContractError


def _contract(root: Path, name: str) -> Path:
    path = root / "dags" / name / "pipeline.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("name: x\n")
    return path


def test_nearest_dags_folder_from_a_subfolder(tmp_path):
    contract = _contract(tmp_path / "project", "shop")
    deep = tmp_path / "project" / "sql" / "shop"
    deep.mkdir(parents=True)
    found, where = find_pipeline(deep, {})
    assert found == contract.resolve() and "nearest dags/ folder" in where


def test_inside_the_pipeline_folder(tmp_path):
    contract = _contract(tmp_path, "shop")
    assert find_pipeline(contract.parent, {})[0] == contract.resolve()


def test_dags_folder_from_the_environment(tmp_path):
    contract = _contract(tmp_path / "airflow", "shop")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found, where = find_pipeline(elsewhere, {"AIRFLOW__CORE__DAGS_FOLDER": str(contract.parent.parent)})
    assert found == contract and where.startswith("AIRFLOW__CORE__DAGS_FOLDER=")


def test_never_the_package_checkout(tmp_path):
    """DAGS_FOLDER pointing into the package's own checkout is ignored when working elsewhere."""
    assert (PACKAGE_ROOT / "dags" / "recsys" / "pipeline.yaml").exists()
    with pytest.raises(ContractError, match=r"no pipeline\.yaml found: .*Pass --pipeline PATH"):
        find_pipeline(tmp_path, {"AIRFLOW__CORE__DAGS_FOLDER": str(PACKAGE_ROOT / "dags")})


def test_the_error_says_why_the_dags_folders_contract_was_skipped(tmp_path):
    """Outside the checkout, DAGS_FOLDER=<checkout>/dags has a contract: the error names it and why it was not used."""
    contract = PACKAGE_ROOT / "dags" / "recsys" / "pipeline.yaml"
    with pytest.raises(ContractError) as err:
        find_pipeline(tmp_path, {"AIRFLOW__CORE__DAGS_FOLDER": str(PACKAGE_ROOT / "dags")})
    message = str(err.value)
    assert f"skipped {contract}: in airflow-ml-provider's own checkout ({PACKAGE_ROOT.resolve()})" in message
    assert "pass --pipeline to use it anyway" in message


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        (None, "that folder does not exist"),
        ("pipeline.yaml", "a contract must be exactly one folder down"),
        ("team/shop/pipeline.yaml", "a contract must be exactly one folder down"),
        ("shop/README.md", "it has no NAME/pipeline.yaml"),
    ],
)
def test_the_error_says_what_the_dags_folder_held(tmp_path, layout, reason):
    dags = tmp_path / "airflow" / "dags"
    if layout:
        (dags / layout).parent.mkdir(parents=True)
        (dags / layout).write_text("name: x\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ContractError) as err:
        find_pipeline(elsewhere, {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
    assert f"in AIRFLOW__CORE__DAGS_FOLDER={dags}: " in str(err.value) and reason in str(err.value)
    if layout and layout.endswith("pipeline.yaml"):
        assert f"skipped {dags / layout}" in str(err.value)


def test_several_contracts_are_named(tmp_path):
    _contract(tmp_path, "a")
    _contract(tmp_path, "b")
    with pytest.raises(ContractError, match=r"2 pipelines found in .*dags/a/pipeline\.yaml, .*dags/b/pipeline\.yaml"):
        find_pipeline(tmp_path, {})


def test_cli_logs_the_contract_it_found(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER", raising=False)
    _contract(tmp_path, "shop")
    with caplog.at_level(logging.INFO, logger="airflow_ml"):
        assert main(["validate", "--json"]) == 1  # a one-line contract is invalid: the point is which file
    assert f"Using contract {tmp_path / 'dags' / 'shop' / 'pipeline.yaml'}" in caplog.text


def test_missing_warehouse_is_an_error_and_leaves_no_file(tmp_path, capsys):
    missing = tmp_path / "nope" / "w.duckdb"
    missing.parent.mkdir()
    assert main(["tables", "--warehouse", str(missing), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"airflow-ml tables: error: --warehouse {missing}: no such warehouse file" in err
    assert "airflow-ml seed-demo --warehouse" in err
    assert os.listdir(missing.parent) == []


def test_tables_columns_align_with_long_names():
    lines = format_table(
        [("recommendation_outcomes", 12, None), ("x", 123456, 3)], ("table", "rows", "parts"), ("rows",)
    )
    ends = {line.rstrip().rfind(v) + len(v) for line, v in zip(lines[1:], ("12", "123456"), strict=True)}
    assert len(ends) == 1  # right-aligned numbers end in one column
    assert lines[1].index("12") > len("  recommendation_outcomes")


def test_progress_lines_during_a_silent_step(caplog):
    import time

    with caplog.at_level(logging.INFO, logger="airflow_ml"), progress("waiting", every=0.05):
        time.sleep(0.18)
    assert caplog.text.count("still waiting") >= 2
