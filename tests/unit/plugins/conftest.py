"""Fixtures of the ML page tests: Airflow's real auth tokens and a seeded DuckDB warehouse."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from tests.unit.plugins.world import make_client, seed, seed_pages


@pytest.fixture(scope="session")
def tokens(airflow_db) -> dict[str, str]:
    """JWTs signed by Airflow's configured auth manager (SimpleAuthManager in the test home)."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = create_auth_manager()
    return {
        role or "none": manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}-user", role=role))
        for role in ("viewer", "admin", None)
    }


@pytest.fixture(scope="session")
def seeded(tmp_path_factory) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path_factory.mktemp("ui") / "warehouse.duckdb", lock_timeout=10)
    seed(warehouse)
    seed_pages(warehouse, tmp_path_factory.mktemp("artifacts"))
    return warehouse


@pytest.fixture
def client(seeded) -> TestClient:
    return make_client(seeded)
