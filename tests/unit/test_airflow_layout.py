"""docker-compose.yaml and the e2e test cluster run the same Airflow layout, from one file.

``airflow-layout.env`` holds the executor and the ML pool; compose loads it into every
Airflow service (``env_file``) and ``tests/e2e/cluster.py`` into every component. These
tests fail when the two drift apart: a key set differently on one side, a component one
side lacks, a database, broker or result-backend URL of another kind, or another worker
concurrency. Nothing is started (constructing a cluster only picks free ports).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e.cluster import COMPONENTS, AirflowCluster, component_command
from tests.e2e.layout import LAYOUT_FILE, WORKER_CONCURRENCY, pool, read_layout
from tests.paths import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
AIRFLOW_SERVICES = [
    name for name, svc in COMPOSE["services"].items() if str(svc.get("image", "")).startswith("${AIRFLOW_ML_IMAGE")
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> AirflowCluster:
    return AirflowCluster(tmp_path_factory.mktemp("layout"))


def url_shape(url: str) -> tuple[str, str]:
    """(scheme, path) of a URL: what must agree; host, port and credentials may differ."""
    parts = urlsplit(url)
    return parts.scheme, parts.path if parts.scheme.startswith("redis") else ""


def test_the_layout_declares_celery_and_a_one_slot_ml_pool():
    layout = read_layout()
    assert layout["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert pool(layout) == ("ml_warehouse", 1)


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_every_airflow_service_loads_the_layout_and_overrides_none_of_it(service: str):
    svc = COMPOSE["services"][service]
    env_files = [svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file", [])
    assert [REPO / f for f in env_files] == [LAYOUT_FILE], f"{service}: env_file should be airflow-layout.env"
    overridden = set(svc.get("environment") or {}) & set(read_layout())
    assert not overridden, f"{service} sets {sorted(overridden)} itself; they belong in airflow-layout.env only"


def test_the_cluster_runs_every_layout_setting_as_the_file_says(cluster: AirflowCluster):
    layout = read_layout()
    assert {k: cluster.env.get(k) for k in layout} == layout


def test_the_cluster_starts_the_components_compose_runs():
    compose = {svc["command"] for svc in COMPOSE["services"].values() if isinstance(svc.get("command"), str)}
    compose -= {"bash"}
    assert {" ".join(component_command(c)) for c in COMPONENTS} == compose


def test_database_broker_and_result_backend_are_of_the_same_kind(cluster: AirflowCluster):
    compose = {k: str(v) for k, v in COMPOSE["x-airflow-common"]["environment"].items()}
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CELERY__BROKER_URL",
    ):
        assert url_shape(cluster.env[key]) == url_shape(compose[key]), key


def test_the_worker_has_as_many_slots_as_compose_gives_it_by_default(cluster: AirflowCluster):
    value = COMPOSE["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
    assert value == f"${{AIRFLOW_WORKER_CONCURRENCY:-{WORKER_CONCURRENCY}}}"
    assert cluster.env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == str(WORKER_CONCURRENCY)


def test_the_cluster_creates_the_pool_with_the_arguments_compose_init_uses(cluster: AirflowCluster):
    name, slots, description = cluster.pool_args()
    assert (name, int(slots)) == pool(read_layout())
    init = "\n".join(COMPOSE["services"]["airflow-init"]["command"])
    assert 'airflow pools set "$${AIRFLOW__ML_PLATFORM__POOL}" "$${AIRFLOW_ML_POOL_SLOTS}"' in init
    assert f'"{description}"' in init, "the pool's description differs from compose's airflow-init"


@pytest.mark.parametrize("line", ['AIRFLOW__CORE__EXECUTOR="CeleryExecutor"', "X=${Y}", "X=a # comment", "no equals"])
def test_a_line_compose_would_read_differently_is_refused(tmp_path: Path, line: str):
    path = tmp_path / "layout.env"
    path.write_text(f"# ok\n{line}\n")
    with pytest.raises(ValueError, match=r"layout.env:2: .*plain KEY=VALUE"):
        read_layout(path)
