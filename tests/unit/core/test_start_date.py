"""The contract's start_date: any date (none: no limit), and enforced per logical date."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from airflow_ml_provider.core.contract.dates import check_run_date
from airflow_ml_provider.core.contract.spec import load_spec, parse_spec
from airflow_ml_provider.exceptions import ContractError
from tests.paths import DAGS_DIR

CONTRACT = DAGS_DIR / "recsys" / "pipeline.yaml"


def _with(**keys) -> str:
    raw = yaml.safe_load(CONTRACT.read_text())
    raw.pop("start_date", None)
    raw.update(keys)
    return yaml.safe_dump(raw)


def test_reference_contract_starts_when_the_demo_data_does():
    assert load_spec(CONTRACT).start_date == dt.date(2026, 1, 17)


def test_any_start_date_is_valid_and_none_means_no_limit():
    """Data from 1997 is data: a 2000-01-01 floor once refused it without a reason."""
    assert parse_spec(_with(start_date="1997-09-01"), "p.yaml").start_date == dt.date(1997, 9, 1)
    assert parse_spec(_with(), "p.yaml").start_date is None


def test_a_date_before_the_start_fails_naming_the_date_and_the_fix():
    start = dt.date(2026, 3, 1)
    check_run_date(start, start, "p.yaml")
    check_run_date(None, start, "p.yaml")  # an asset-triggered run has no logical date
    with pytest.raises(ContractError) as err:
        check_run_date(dt.date(2026, 2, 28), start, "dags/recsys/pipeline.yaml")
    assert "2026-02-28 is before the pipeline's start_date 2026-03-01" in str(err.value)
    assert "dags/recsys/pipeline.yaml: start_date" in str(err.value)
