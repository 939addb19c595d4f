"""The e2e harness itself: the production layout is what runs, and the API requires a token.

That stopping the cluster leaves no Airflow, PostgreSQL or Redis process behind is asserted by
the session world's teardown (``stop_and_check`` in conftest.py): one cluster serves every
e2e test, so the check runs once, after all of them.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.timeout(300)


def test_the_api_requires_a_token_and_the_cluster_runs_the_production_layout(recsys):
    cluster = recsys.cluster
    assert httpx.get(f"{cluster.url}/api/v2/dags").status_code == 401
    wrong = httpx.post(f"{cluster.url}/auth/token", json={"username": "admin", "password": "not-it"})
    assert wrong.status_code == 401
    client = recsys.client
    assert client.get("/api/v2/version")["version"].startswith("3.")
    health = client.get("/api/v2/monitor/health")
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"
    pids = cluster.alive()
    assert {cluster.procs[name].pid for name in cluster.components} <= set(pids)
    # The production layout's backing services run too, and are this cluster's to stop.
    assert {cluster.postgres.proc.pid, cluster.redis.proc.pid} <= set(pids)
    assert cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert cluster.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert cluster.postgres.dir is not None and cluster.postgres.dir.is_dir()
