"""Platform configuration from the ``ml_platform`` connection's extras."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_ml_provider.core.contract.config import PlatformConfig, ml_home
from airflow_ml_provider.exceptions import ContractError


@pytest.fixture
def homes(monkeypatch, tmp_path):
    """Point both home variables at tmp_path; tests unset what they need unset."""
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(tmp_path / "mlhome"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path


def test_no_extras_means_the_local_backend(homes):
    cfg = PlatformConfig.from_extras(None)
    assert cfg.backend == "local"
    assert cfg == PlatformConfig.from_extras({})
    assert cfg.lock_timeout_seconds == 120.0
    assert cfg.maximum_bytes_billed is None


def test_warehouse_file_under_airflow_ml_home(homes):
    cfg = PlatformConfig.from_extras({})
    assert cfg.warehouse_file == homes / "mlhome" / "warehouse.duckdb"


def test_warehouse_file_falls_back_to_airflow_home_ml(homes, monkeypatch):
    monkeypatch.delenv("AIRFLOW_ML_HOME")
    assert PlatformConfig.from_extras({}).warehouse_file == homes / "airflow" / "ml" / "warehouse.duckdb"


def test_empty_airflow_ml_home_counts_as_unset(homes, monkeypatch):
    monkeypatch.setenv("AIRFLOW_ML_HOME", "")
    assert ml_home() == homes / "airflow" / "ml"


def test_without_any_home_variable_it_is_under_the_user_home(homes, monkeypatch):
    monkeypatch.delenv("AIRFLOW_ML_HOME")
    monkeypatch.delenv("AIRFLOW_HOME")
    assert PlatformConfig.from_extras({}).warehouse_file == homes / "user" / "airflow" / "ml" / "warehouse.duckdb"


def test_explicit_warehouse_path_wins_and_expands_the_user(homes):
    cfg = PlatformConfig.from_extras({"warehouse_path": "~/data/wh.duckdb"})
    assert cfg.warehouse_file == homes / "user" / "data" / "wh.duckdb"


def test_local_artifacts_uri_is_a_file_uri_under_ml_home(homes):
    uri = PlatformConfig.from_extras({}).artifacts_uri
    assert uri == (homes / "mlhome" / "artifacts").as_uri()
    assert uri.startswith("file:///")


def test_gcp_artifacts_uri_is_under_the_staging_bucket(homes):
    extras = {"backend": "gcp", "project": "my-ml-project", "dataset": "recsys"}
    assert PlatformConfig.from_extras({**extras, "staging_bucket": "gs://bkt/"}).artifacts_uri == "gs://bkt/airflow-ml"
    assert PlatformConfig.from_extras({**extras, "staging_bucket": "gs://bkt"}).artifacts_uri == "gs://bkt/airflow-ml"


def test_artifact_root_overrides_everything(homes):
    extras = {"backend": "gcp", "project": "my-ml-project", "dataset": "recsys", "staging_bucket": "gs://bkt"}
    cfg = PlatformConfig.from_extras({**extras, "artifact_root": "gs://other/models"})
    assert cfg.artifacts_uri == "gs://other/models"


def test_gcp_config_is_parsed():
    cfg = PlatformConfig.from_extras(
        {"backend": "gcp", "project": "my-ml-project", "dataset": "recsys", "maximum_bytes_billed": "1000000"}
    )
    assert (cfg.backend, cfg.project, cfg.dataset, cfg.location) == ("gcp", "my-ml-project", "recsys", "US")
    assert cfg.maximum_bytes_billed == 1_000_000


@pytest.mark.parametrize(
    ("extras", "missing"),
    [
        ({"backend": "gcp"}, "project and dataset"),
        ({"backend": "gcp", "project": "my-ml-project"}, "dataset"),
        ({"backend": "gcp", "dataset": "recsys"}, "project"),
        ({"backend": "gcp", "project": "", "dataset": "recsys"}, "project"),
    ],
)
def test_gcp_needs_project_and_dataset(extras, missing):
    with pytest.raises(ContractError) as info:
        PlatformConfig.from_extras(extras, source="connection 'ml_platform'")
    msg = str(info.value)
    assert msg.startswith("connection 'ml_platform':")
    assert f"needs {missing} in the connection extras" in msg


@pytest.mark.parametrize("value", [0, -1, "lots", 1.5])
def test_bad_maximum_bytes_billed_names_the_key(value):
    with pytest.raises(ContractError) as info:
        PlatformConfig.from_extras({"maximum_bytes_billed": value}, source="connection 'ml_platform'")
    msg = str(info.value)
    assert msg.startswith("connection 'ml_platform': maximum_bytes_billed:")
    assert repr(value) in msg


@pytest.mark.parametrize("value", [0, -5, "soon"])
def test_bad_lock_timeout_names_the_key(value):
    with pytest.raises(ContractError, match="lock_timeout_seconds"):
        PlatformConfig.from_extras({"lock_timeout_seconds": value})


def test_unknown_extra_key_is_named():
    with pytest.raises(ContractError) as info:
        PlatformConfig.from_extras({"backend": "local", "warehouse_pth": "/tmp/x.duckdb"})
    assert "warehouse_pth: unknown key" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("project", "My_Project"), ("project", "p; DROP"), ("dataset", "rec-sys"), ("dataset", "a.b")],
)
def test_bad_project_or_dataset_is_named(key, value):
    with pytest.raises(ContractError) as info:
        PlatformConfig.from_extras({key: value})
    assert f"{key}:" in str(info.value) and repr(value) in str(info.value)


def test_unknown_backend_is_named():
    with pytest.raises(ContractError) as info:
        PlatformConfig.from_extras({"backend": "snowflake"})
    assert "backend:" in str(info.value) and "'local'" in str(info.value)


def test_several_errors_are_all_reported():
    with pytest.raises(ContractError) as info:
        PlatformConfig.from_extras({"maximum_bytes_billed": 0, "lock_timeout_seconds": -1, "extra": 1})
    msg = str(info.value)
    assert "maximum_bytes_billed" in msg and "lock_timeout_seconds" in msg and "extra: unknown key" in msg


def test_ml_home_type():
    assert isinstance(ml_home(), Path)
