"""Fixtures for the real-Airflow e2e tests; the harness itself is ``tests/e2e/cluster.py``.

``airflow_cluster`` is a factory: ``airflow_cluster(components=("api-server",), env={...})``
starts an ``AirflowCluster`` in a fresh temp home and stops it when the test ends, then
asserts that no process of the cluster is left. Module-scoped worlds build on
``start_cluster`` directly (see test_pipeline.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.e2e.cluster import COMPONENTS, AirflowCluster

#: The test-only cluster policy (tests/e2e/airflow_local_settings.py): a calendar that
#: ends in spring 2026 (no run for the machine's "today"), one quick retry, fast sensors.
FAST_POLICY = {
    "AML_E2E_SCHEDULE_END": "2026-04-30",
    "AML_E2E_RETRIES": "1",
    "AML_E2E_RETRY_DELAY_SECONDS": "2",
    "AML_E2E_POKE_SECONDS": "3",
}


def stop_and_check(cluster: AirflowCluster) -> None:
    cluster.stop()
    left = cluster.alive()
    assert left == [], f"processes of the Airflow cluster still alive after teardown: {left}"


@pytest.fixture
def airflow_cluster(tmp_path: Path) -> Iterator[Callable[..., AirflowCluster]]:
    started: list[AirflowCluster] = []

    def start(
        components: tuple[str, ...] = COMPONENTS, env: Mapping[str, str] | None = None, **kwargs
    ) -> AirflowCluster:
        cluster = AirflowCluster(
            tmp_path / f"cluster{len(started)}", components, {**FAST_POLICY, **(env or {})}, **kwargs
        )
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        stop_and_check(cluster)
