"""The contract refuses ``windows.training_days < windows.validation_days``, naming both keys and the fix.

``airflow-ml validate`` reported it before, but ``train`` and the DAGs loaded such a contract
and trained on fewer as-of dates than the model was judged on. Now loading it fails, so every
entry point (validate included, as its contract check) says the same thing.
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import Windows, parse_spec
from airflow_ml_provider.core.validate.pipeline import validate_pipeline
from airflow_ml_provider.exceptions import ContractError
from tests.paths import PIPELINE, SQL_DIR


def contract(**windows) -> str:
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["windows"] = {k: v for k, v in {**raw["windows"], **windows}.items() if v is not None}
    return yaml.safe_dump(raw)


@pytest.mark.parametrize(
    ("windows", "training", "validation"),
    [
        ({"training_days": 3, "validation_days": 7}, 3, 7),
        ({"training_days": 13, "validation_days": 14}, 13, 14),
        # validation_days left out takes its default (7): the message names the value in force.
        ({"training_days": 5, "validation_days": None}, 5, 7),
    ],
    ids=["much-shorter", "one-day-shorter", "default-validation"],
)
def test_training_shorter_than_validation_is_refused_naming_both_keys(windows, training, validation):
    with pytest.raises(ContractError) as err:
        parse_spec(contract(**windows), "dags/recsys/pipeline.yaml")
    message = str(err.value)
    assert message.startswith("dags/recsys/pipeline.yaml: windows: ")
    assert f"windows.training_days ({training}) is shorter than windows.validation_days ({validation})" in message, (
        message
    )
    assert "raise training_days or lower validation_days" in message


@pytest.mark.parametrize("days", [1, 7, 30])
def test_training_as_long_as_validation_is_fine(days):
    spec = parse_spec(contract(training_days=days, validation_days=days), "pipeline.yaml")
    fit, _, test = spec.evaluation_windows(dt.date(2026, 3, 31))
    assert len(fit) == len(test) == days


def test_the_defaults_keep_the_rule():
    w = Windows()
    assert w.training_days >= w.validation_days


def test_validate_reports_it_as_the_contracts_failure(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(contract(training_days=3, validation_days=7))
    report = validate_pipeline(path, SQL_DIR, DuckDBWarehouse(tmp_path / "sample.duckdb"))
    checks = {c.check: (c.status, c.detail) for c in report.checks}
    status, detail = checks["contract"]
    assert status == "FAIL" and not report.ok
    assert "windows.training_days (3) is shorter than windows.validation_days (7)" in detail
    assert checks["windows"][0] == "SKIP"
