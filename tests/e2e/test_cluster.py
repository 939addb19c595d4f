"""The e2e harness itself: auth is enforced, and stopping leaves no Airflow, PostgreSQL or Redis process behind."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.cluster import AirflowClient, still_alive

pytestmark = pytest.mark.timeout(300)


def test_api_server_alone_requires_a_token_and_stops_without_leftovers(airflow_cluster):
    cluster = airflow_cluster(components=("api-server",))
    assert httpx.get(f"{cluster.url}/api/v2/dags").status_code == 401
    wrong = httpx.post(f"{cluster.url}/auth/token", json={"username": "admin", "password": "not-it"})
    assert wrong.status_code == 401
    client = cluster.client()
    assert client.get("/api/v2/version")["version"].startswith("3.")
    assert client.get("/api/v2/monitor/health")["metadatabase"]["status"] == "healthy"
    pids = cluster.alive()
    assert cluster.procs["api-server"].pid in pids
    # The production layout's backing services run too, and are this cluster's to stop.
    assert {cluster.postgres.proc.pid, cluster.redis.proc.pid} <= set(pids)
    assert cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    pg_dir = cluster.postgres.dir
    assert pg_dir is not None and pg_dir.is_dir()
    cluster.stop()
    assert cluster.alive() == []
    assert still_alive(pids) == []  # gone, not just out of the session
    assert not pg_dir.exists()  # the throwaway PostgreSQL cluster is deleted
    with pytest.raises(httpx.HTTPError):
        AirflowClient(cluster.url, "admin", cluster.password, timeout=2)
