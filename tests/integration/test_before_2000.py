"""A history from the late 1990s: any start_date is valid, and the CLI and the DAG's tasks honour it alike.

The small demo world moved back to 1997, with ``start_date: 1997-11-01`` (its first day of
events). The feature history, training and recommendations run through ``airflow-ml``; the
features DAG's tasks (the real ``dags/recsys_features.py``, with this contract) and batch
inference run as a worker runs them, with a 1997 logical date. A date before start_date fails
on both paths naming the key; the features DAG sets no Airflow start_date, so Airflow creates
its tasks for such old dates at all.
"""

from __future__ import annotations

import datetime as dt
import json
import runpy
import sys
import types
from pathlib import Path
from typing import Any

import pendulum
import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.contract.spec import load_spec, parse_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from tests.integration.byod_world import small_contract
from tests.paths import DAGS_DIR, PIPELINE, SQL_DIR

pytestmark = pytest.mark.integration

START = dt.date(1997, 11, 1)
DAY = dt.date(1997, 12, 22)  # the world ends on 1997-12-31: this day's label horizon has passed


class World:
    def __init__(self, root: Path) -> None:
        self.warehouse = root / "warehouse.duckdb"
        self.artifacts = root / "artifacts"
        world = generate(DemoConfig(users=150, items=60, days=61, end_date=dt.date(1997, 12, 31)))
        wh = DuckDBWarehouse(self.warehouse)
        for name in ("users", "items", "events"):
            wh.replace_table(name, getattr(world, name))
        self.pipeline = small_contract(root / "dags" / "recsys", start_date=START.isoformat())
        self.spec = load_spec(self.pipeline)

    def cli(self, *args: str) -> int:
        return main([*args, "--warehouse", str(self.warehouse), "--pipeline", str(self.pipeline)])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("before-2000"))


@pytest.fixture(autouse=True)
def connection(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"warehouse_path": str(world.warehouse), "artifact_root": world.artifacts.as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))


def features_dag(pipeline: Path) -> Any:
    """The reference features DAG, its tasks pointed at ``pipeline`` and the repo's SQL."""
    sys.path.insert(0, str(DAGS_DIR))  # as Airflow's DAG processor does (for recsys.assets)
    try:
        namespace = runpy.run_path(str(DAGS_DIR / "recsys_features.py"))
    finally:
        sys.path.remove(str(DAGS_DIR))
    dag = namespace["features"].dag  # the file's DAG, through one of its tasks
    for task in dag.tasks:
        task.pipeline = str(pipeline)
    dag.template_searchpath = [str(SQL_DIR)]
    return dag


def run_task(task: Any, day: dt.date, **extra: Any) -> Any:
    """Pre-execute (the start_date guard), render and execute ``task`` for logical date ``day``, as a worker does."""
    ti = types.SimpleNamespace(dag_id=task.dag_id, task_id=task.task_id, run_id=f"manual__{day}", try_number=1)
    logical = pendulum.datetime(day.year, day.month, day.day, tz="UTC")
    context: dict[str, Any] = {
        "ds": day.isoformat(),
        "logical_date": logical,
        "ti": ti,
        "params": {"steps": "", "force_replace": False},
    }
    context.update(extra)
    task.pre_execute(context)
    task.render_template_fields(context)
    return task.execute(context)


def test_any_start_date_is_valid_and_none_means_every_date():
    raw = yaml.safe_load(PIPELINE.read_text())
    for start in ("1850-01-01", "1997-09-01", "1999-12-31"):
        raw["start_date"] = start
        assert parse_spec(yaml.safe_dump(raw), "p.yaml").start_date == dt.date.fromisoformat(start)
    raw.pop("start_date")
    assert parse_spec(yaml.safe_dump(raw), "p.yaml").start_date is None


def test_the_cli_refuses_a_date_before_start_date_naming_the_key(world: World, capsys):
    assert world.cli("features", "--date", "1997-10-31", "--sql-dir", str(SQL_DIR)) == 1
    err = capsys.readouterr().err
    assert "--date 1997-10-31 is before the pipeline's start_date 1997-11-01" in err
    assert f"{world.pipeline}: start_date" in err
    assert not DuckDBWarehouse(world.warehouse).table_exists("user_features")


def test_the_features_dag_runs_1997_dates_and_refuses_earlier_ones(world: World):
    from airflow.sdk.exceptions import AirflowFailException

    dag = features_dag(world.pipeline)
    logical = pendulum.datetime(DAY.year, DAY.month, DAY.day, tz="UTC")
    # Airflow creates a task for a logical date only from the task's start_date on.
    assert all(t.start_date is None or t.start_date <= logical for t in dag.tasks)
    for task_id in ("source_checks", "user_features", "item_features", "candidates", "features", "data_checks"):
        run_task(dag.get_task(task_id), DAY)
    rows = (
        DuckDBWarehouse(world.warehouse)
        .query("SELECT COUNT(*) AS n FROM features WHERE as_of_date = @d", {"d": DAY})
        .to_pylist()
    )
    assert rows[0]["n"] > 0
    with pytest.raises(AirflowFailException, match="logical date 1997-10-31 is before the pipeline's start_date"):
        run_task(dag.get_task("user_features"), dt.date(1997, 10, 31))


def test_features_train_and_recommend_through_the_cli_then_the_dag(world: World):
    from airflow.sdk import DAG

    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    train, valid = world.spec.training_dates(DAY)
    dates = sorted([*train, *valid])
    sql = ("--sql-dir", str(SQL_DIR))
    assert dates[0] >= START
    assert (
        world.cli("features", "--date", str(dates[0]), "--to", str(dates[-1]), "--labels", "--no-preflight", *sql) == 0
    )
    assert world.cli("train", "--date", str(DAY), "--artifacts", str(world.artifacts), *sql) == 0
    assert world.cli("recommend", "--date", str(DAY)) == 0
    cli_rows = (
        DuckDBWarehouse(world.warehouse)
        .query(
            "SELECT user_id, item_id, rank FROM recommendations WHERE prediction_date = @d ORDER BY 1, 3", {"d": DAY}
        )
        .to_pylist()
    )
    assert cli_rows

    with DAG("recsys_batch_inference", schedule=None):
        task = BatchRecommendOperator(task_id="recommend", pipeline=str(world.pipeline))
    run_task(task, DAY)
    dag_rows = (
        DuckDBWarehouse(world.warehouse)
        .query(
            "SELECT user_id, item_id, rank FROM recommendations WHERE prediction_date = @d ORDER BY 1, 3", {"d": DAY}
        )
        .to_pylist()
    )
    assert dag_rows == cli_rows
