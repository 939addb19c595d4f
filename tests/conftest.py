"""Shared, generic fixtures. Keep this file small: test-specific helpers live in the test module.

- ``airflow_db``: a migrated Airflow metadata DB in the session's throwaway AIRFLOW_HOME.

- ``demo_world``: a small deterministic synthetic world (users, items, events as Arrow), built once.
- ``warehouse``: an empty DuckDBWarehouse on a file in ``tmp_path`` (the file is not created yet).
- ``seeded_warehouse``: ``warehouse`` with the demo world loaded as tables ``users``, ``items``, ``events``.
- ``training_warehouse_file``: a DuckDB file with a small world's features and labels for training on 2026-03-24.
- ``fast_pipeline_file``: the reference contract (and model.py) with fewer, larger boosting steps.
- ``gcs_endpoint``, ``vertex_endpoint`` (tests/fakes/fixtures.py): local Cloud Storage and Vertex AI.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Hermetic Airflow: a throwaway AIRFLOW_HOME and no connections from the caller's
# environment. This runs before any test module imports airflow.
_HOME = Path(tempfile.mkdtemp(prefix="airflow-ml-tests-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = str(_HOME / "airflow")
os.environ["AIRFLOW_ML_HOME"] = str(_HOME / "ml")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
for _key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_key]

from airflow_ml_provider.core.demo import DemoConfig, DemoWorld, generate  # noqa: E402 (env first)

# Local Google Cloud endpoints for any test that needs them (tests/fakes/): ``gcs_endpoint``,
# ``vertex_endpoint`` and ``gcp`` (BigQuery, Storage Read and GCS, with the environment pointing there).
pytest_plugins = ["tests.fakes.fixtures", "tests.fakes.gcp"]

#: Quick to generate, yet big enough for every recsys SQL step to return rows.
SMALL_DEMO = DemoConfig(users=300, items=80, days=40)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) in the test session's AIRFLOW_HOME."""
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def demo_world() -> DemoWorld:
    """The small demo world; Arrow tables are immutable, so one copy serves every test."""
    return generate(SMALL_DEMO)


@pytest.fixture
def warehouse(tmp_path: Path):
    """An empty DuckDB warehouse in ``tmp_path``; a short lock timeout keeps lock bugs from hanging the suite."""
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(tmp_path / "wh" / "warehouse.duckdb", lock_timeout=10)


@pytest.fixture
def seeded_warehouse(warehouse, demo_world: DemoWorld):
    """``warehouse`` with the demo world's ``users``, ``items`` and ``events`` tables."""
    warehouse.replace_table("users", demo_world.users)
    warehouse.replace_table("items", demo_world.items)
    warehouse.replace_table("events", demo_world.events)
    return warehouse


#: The run date ``training_warehouse_file`` holds the training and validation windows of.
TRAINING_RUN_DATE = "2026-03-24"


@pytest.fixture(scope="session")
def training_warehouse_file(tmp_path_factory) -> Path:
    """Features and labels for the training windows of ``TRAINING_RUN_DATE`` on a small world, built once."""
    import datetime as dt

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.features.build import build_features
    from tests.paths import PIPELINE, SQL_DIR

    path = tmp_path_factory.mktemp("training-warehouse") / "warehouse.duckdb"
    wh = DuckDBWarehouse(path)
    world = generate(DemoConfig(users=150, items=60, days=60))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    spec = load_spec(PIPELINE)
    train, valid = spec.training_dates(dt.date.fromisoformat(TRAINING_RUN_DATE))
    build_features(wh, spec, SQL_DIR, [*train, *valid], labels=True)
    return path


@pytest.fixture(scope="session")
def fast_pipeline_file(tmp_path_factory) -> Path:
    """The reference contract with fewer, larger boosting steps (same code path, seconds not minutes)."""
    import yaml

    from tests.paths import PIPELINE
    from tests.small_world import with_small_world_gate

    folder = tmp_path_factory.mktemp("fast-pipeline")
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["model"].update(num_boost_round=40, params={"learning_rate": 0.15})
    with_small_world_gate(raw)  # the 150-user training world: tests/small_world.py
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(PIPELINE.parent / "model.py", folder / "model.py")
    return folder / "pipeline.yaml"
