"""The reference pipeline on ``backend: gcp``, run as Airflow runs it, and the invariants its tables must keep.

One driver for two targets: the local endpoints (``tests/integration/test_gcp_pipeline.py``,
in ``make test``) and a real project (``tests/system/test_gcp_pipeline_system.py``). Each DAG
runs through ``dag.test()``, the code path of ``airflow dags test``: real operators, real
hooks, deferral through the trigger, XComs and assets.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.core.contract.spec import PipelineSpec, load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from tests.paths import PIPELINE, SQL_DIR
from tests.small_world import small_world_dags

RUN_DATE = dt.date(2026, 3, 31)
#: Small enough for minutes on two cores, big enough for every SQL step and the gate.
WORLD = DemoConfig(users=200, items=60, days=74, end_date=RUN_DATE)


@dataclass
class PipelineRun:
    """What the run left behind, for the assertions."""

    spec: PipelineSpec
    run_date: dt.date
    states: dict[str, str]


def history_dates(spec: PipelineSpec, run_date: dt.date) -> list[dt.date]:
    """Every as-of date the training run reads (what a backfill of recsys_features writes)."""
    return sorted({d for window in spec.training_dates(run_date) for d in window} | {run_date})


def seed(wh: BigQueryWarehouse, config: DemoConfig = WORLD) -> None:
    """The demo world's users, items and events, loaded as the source tables."""
    world = generate(config)
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))


def run_dag(dag_id: str, run_date: dt.date) -> str:
    """``dag.test()`` of one reference DAG for ``run_date``; the run's final state."""
    import sys

    from airflow.dag_processing.dagbag import DagBag

    # The reference DAGs with the small-world gate (this world has 200 users: tests/small_world.py).
    dags = small_world_dags(Path(tempfile.gettempdir()) / f"aml-small-world-dags-{os.getpid()}")
    os.environ.setdefault("AIRFLOW_ML_SQL_DIR", str(SQL_DIR))
    if str(dags) not in sys.path:
        sys.path.insert(0, str(dags))  # as Airflow's DAG processor does (dags/recsys is a package)
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}, bag.import_errors
    dag = bag.get_dag(dag_id)
    logical = dt.datetime.combine(run_date, dt.time(6), tzinfo=dt.UTC)
    run = dag.test(logical_date=logical)
    return str(run.state)


def run_pipeline(wh: BigQueryWarehouse, run_date: dt.date = RUN_DATE) -> PipelineRun:
    """Seed, build the feature history, then features -> training -> inference -> drift as DAG runs."""
    spec = load_spec(PIPELINE)
    seed(wh)
    build_features(wh, spec, SQL_DIR, history_dates(spec, run_date)[:-1])
    states = {}
    for dag_id in ("recsys_features", "recsys_training", "recsys_batch_inference", "recsys_drift"):
        states[dag_id] = run_dag(dag_id, run_date)
        assert states[dag_id] == "success", f"{dag_id} ended {states[dag_id]}"
    return PipelineRun(spec, run_date, states)


def check_invariants(wh: BigQueryWarehouse, run: PipelineRun) -> dict[str, Any]:
    """The table invariants of the local e2e: one champion, top-k per user, no duplicates, one drift partition."""
    champions = wh.query("SELECT version FROM ml_models WHERE status = 'champion'").to_pylist()
    assert len(champions) == 1, champions
    champion = champions[0]["version"]
    day = {"d": run.run_date}
    recs = wh.query(
        """
        SELECT COUNT(*) AS n, COUNT(DISTINCT user_id) AS users, MAX(rank) AS k,
               COUNT(DISTINCT CONCAT(user_id, '|', item_id)) AS pairs,
               COUNT(DISTINCT CONCAT(user_id, '|', CAST(rank AS STRING))) AS user_ranks,
               COUNT(DISTINCT model_version) AS versions, MIN(model_version) AS version
        FROM recommendations WHERE prediction_date = @d
        """,
        day,
    ).to_pylist()[0]
    assert recs["n"] > 0 and recs["k"] <= run.spec.inference.top_k
    assert recs["pairs"] == recs["n"] == recs["user_ranks"], "a (user, item) or (user, rank) appears twice"
    assert recs["versions"] == 1 and recs["version"] == champion
    per_user = wh.query(
        "SELECT MAX(c) AS most FROM (SELECT COUNT(*) AS c FROM recommendations WHERE prediction_date = @d "
        "GROUP BY user_id)",
        day,
    ).to_pylist()[0]
    assert per_user["most"] <= run.spec.inference.top_k
    drift = wh.query(
        "SELECT COUNT(DISTINCT run_id) AS runs, COUNT(*) AS n FROM drift_results WHERE logical_date = @d", day
    ).to_pylist()[0]
    assert drift["runs"] == 1 and drift["n"] > 0
    runs = wh.query("SELECT status FROM recommendation_runs WHERE prediction_date = @d", day).to_pylist()
    assert {r["status"] for r in runs} == {"success"}
    return {"champion": champion, **recs, "drift_rows": drift["n"]}
