"""The DAG's tasks and the ``airflow-ml`` commands run each stage the same way: identical tables.

Two copies of one warehouse. On the first, every stage runs as the reference DAGs run it (the
operators' ``execute`` with the task context they read); on the second, as a user runs it from
the command line. After each stage the tables it writes must hold the same rows (run ids,
timestamps and the version names, which say who ran it, aside), and training with the same
data and seed must write the same model file, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import types
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core import storage
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.training.envelope import MODEL_FILE
from tests.conftest import TRAINING_RUN_DATE
from tests.paths import SQL_DIR

pytestmark = pytest.mark.integration

DAY = dt.date.fromisoformat(TRAINING_RUN_DATE)  # served, checked and judged (its horizon is inside the world)
LABEL_DAY = DAY - dt.timedelta(days=20)
FEATURE_TABLES = ("user_features", "item_features", "candidates", "features")
#: Columns that say who ran a stage and when, not what it computed.
VOLATILE = {"run_id", "generated_at", "checked_at", "computed_at", "model_version", "created_at", "evaluated_at"}


class Sides:
    """The DAG's warehouse and the command line's, built from the same copy."""

    def __init__(self, root: Path, source: Path, pipeline: Path) -> None:
        self.pipeline = pipeline
        self.dag, self.cli = root / "dag.duckdb", root / "cli.duckdb"
        self.dag_artifacts, self.cli_artifacts = root / "dag-artifacts", root / "cli-artifacts"
        for path in (self.dag, self.cli):
            shutil.copy(source, path)
        self.versions: dict[str, str] = {}

    def rows(self, side: Path, table: str, where: str, params: dict[str, Any]) -> list[tuple]:
        """The table's rows under ``where``, without the volatile columns, sorted."""
        wh = DuckDBWarehouse(side, lock_timeout=30)
        columns = [c for c in wh.table_columns(table) if c not in VOLATILE]
        got = wh.query(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", params).to_pylist()
        assert got, f"{table} has no rows where {where} on {side.name}"
        return sorted(tuple(json.dumps(r[c], default=str, sort_keys=True) for c in columns) for r in got)

    def same(self, table: str, where: str, params: dict[str, Any]) -> None:
        assert self.rows(self.dag, table, where, params) == self.rows(self.cli, table, where, params), table

    def cli_run(self, *args: str) -> None:
        """One ``airflow-ml`` command on the command line's warehouse; it must succeed."""
        code = main([*args, "--warehouse", str(self.cli), "--pipeline", str(self.pipeline)])
        assert code == 0, args


def _context(task_id: str, run_id: str = "scheduled__parity") -> dict[str, Any]:
    ti = types.SimpleNamespace(dag_id="parity", task_id=task_id, run_id=run_id, try_number=1)
    return {"ds": DAY.isoformat(), "logical_date": None, "ti": ti}


def _run(operator: type, **kwargs: Any) -> Any:
    """Render the task's templates and run it, as a worker would."""
    with DAG("parity", schedule=None, template_searchpath=[str(SQL_DIR)]):
        task = operator(**kwargs)
    context = _context(kwargs["task_id"])
    task.render_template_fields(context)
    return task.execute(context)


@pytest.fixture(scope="module")
def sides(training_warehouse_file, fast_pipeline_file, tmp_path_factory) -> Sides:
    # The fast contract carries the small-world gate (tests/small_world.py): both sides promote,
    # and the stages after the gate (serving, drift, outcomes) have a champion to compare.
    return Sides(tmp_path_factory.mktemp("parity"), training_warehouse_file, fast_pipeline_file)


@pytest.fixture(autouse=True)
def dag_connection(sides: Sides, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DAG side's ml_platform connection: its warehouse and artifact root."""
    extra = {"warehouse_path": str(sides.dag), "artifact_root": sides.dag_artifacts.as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))


def _features_and_labels(sides: Sides) -> None:
    from airflow_ml_provider.operators.checks import DataCheckOperator
    from airflow_ml_provider.operators.features import FeatureExtractOperator

    pipeline = str(sides.pipeline)
    _run(DataCheckOperator, task_id="source_checks", pipeline=pipeline, scope="preflight", record=False)
    for table in FEATURE_TABLES:
        _run(FeatureExtractOperator, task_id=table, table=table, pipeline=pipeline)
    _run(FeatureExtractOperator, task_id="labels", table="labels", pipeline=pipeline, partition_date=str(LABEL_DAY))

    sides.cli_run("features", "--date", str(DAY), "--sql-dir", str(SQL_DIR))
    sides.cli_run("features", "--date", str(LABEL_DAY), "--labels", "--sql-dir", str(SQL_DIR))

    for table in FEATURE_TABLES:
        sides.same(table, "as_of_date = @d", {"d": DAY})
    sides.same("labels", "as_of_date = @d", {"d": LABEL_DAY})


def _training_writes_the_same_model_and_the_gate_decides_the_same(sides: Sides) -> None:
    from airflow_ml_provider.operators.evaluation import EvaluateAndPromoteOperator
    from airflow_ml_provider.operators.training import TrainModelOperator

    pipeline = str(sides.pipeline)
    trained = _run(TrainModelOperator, task_id="train", pipeline=pipeline, run_date=str(DAY))
    promoted = _run(EvaluateAndPromoteOperator, task_id="promote", pipeline=pipeline, version=trained["version"])
    sides.cli_run("train", "--date", str(DAY), "--artifacts", str(sides.cli_artifacts))
    (cli_record,) = ModelRegistry(DuckDBWarehouse(sides.cli)).list("recsys")

    dag_model = storage.read_bytes(storage.join(trained["uri"], MODEL_FILE))
    assert dag_model == storage.read_bytes(storage.join(cli_record.uri, MODEL_FILE))
    assert promoted["promoted"] is True and cli_record.status == "champion"
    assert (
        cli_record.metrics["model"]
        == ModelRegistry(DuckDBWarehouse(sides.dag)).get("recsys", trained["version"]).metrics["model"]
    )


def _recommendations_drift_and_outcomes(sides: Sides) -> None:
    from airflow_ml_provider.operators.drift import DriftCheckOperator
    from airflow_ml_provider.operators.inference import BatchRecommendOperator
    from airflow_ml_provider.operators.outcomes import OutcomeEvaluationOperator

    pipeline = str(sides.pipeline)
    _run(BatchRecommendOperator, task_id="recommend", pipeline=pipeline)
    sides.cli_run("recommend", "--date", str(DAY))
    sides.same("recommendations", "prediction_date = @d", {"d": DAY})

    _run(DriftCheckOperator, task_id="drift", pipeline=pipeline, partition_date=str(DAY), fail_on="never")
    sides.cli_run("drift", "--date", str(DAY), "--fail-on", "never")
    sides.same("drift_results", "logical_date = @d", {"d": DAY})

    _run(OutcomeEvaluationOperator, task_id="outcomes", pipeline=pipeline, prediction_date=str(DAY))
    sides.cli_run("outcomes", "--date", str(DAY), "--sql-dir", str(SQL_DIR))
    sides.same("recommendation_outcomes", "prediction_date = @d", {"d": DAY})


def test_every_stage_writes_the_same_tables_from_the_dag_and_the_cli(sides: Sides) -> None:
    """The stages in pipeline order, in one test: each reads what the one before wrote (pytest-xdist
    spreads a module's tests over workers, so three dependent tests could run without their inputs)."""
    _features_and_labels(sides)
    _training_writes_the_same_model_and_the_gate_decides_the_same(sides)
    _recommendations_drift_and_outcomes(sides)
