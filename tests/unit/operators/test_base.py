"""Every ML operator runs in the pool ``[ml_platform] pool`` names, when it names one."""

from __future__ import annotations

import pytest

from airflow_ml_provider.operators.features import FeatureExtractOperator


def test_ml_tasks_run_in_the_configured_pool(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__ML_PLATFORM__POOL", "ml_warehouse")
    assert FeatureExtractOperator(task_id="f", table="features").pool == "ml_warehouse"


def test_a_pool_given_to_the_task_wins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__ML_PLATFORM__POOL", "ml_warehouse")
    assert FeatureExtractOperator(task_id="f", table="features", pool="other").pool == "other"


def test_without_the_setting_tasks_use_airflows_default_pool(monkeypatch: pytest.MonkeyPatch):
    # A pool that does not exist would leave the task unscheduled forever, so none is invented.
    monkeypatch.delenv("AIRFLOW__ML_PLATFORM__POOL", raising=False)
    assert FeatureExtractOperator(task_id="f", table="features").pool == "default_pool"
