"""The bad-input table's toolkit: the entry points a case runs, the ways to break a world, and ``Case``.

Case tables live in ``test_bad_input.py`` and the ``cases_*.py`` modules beside it; the test in
``test_bad_input.py`` runs them all.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from tests.integration.reliability.conftest import DAY, World, context
from tests.paths import SQL_DIR

RUNS = "main.recommendation_runs"


class CLIFailed(Exception):
    """The CLI exited non-zero; the message is what it printed on stderr."""


# --- entry points -------------------------------------------------------------------------


def features(
    w: World, *, table: str = "user_features", searchpath: Path = SQL_DIR, run_id: str = "bad-input", **kwargs: Any
) -> Any:
    """FeatureExtractOperator, rendered and executed as the task runner would."""
    from airflow_ml_provider.operators.features import FeatureExtractOperator

    kwargs.setdefault("pipeline", str(w.pipeline))
    kwargs.setdefault("partition_date", str(DAY))
    with DAG("reliability_features", schedule=None, template_searchpath=[str(searchpath)]):
        op = FeatureExtractOperator(task_id="features", table=table, **kwargs)
    ctx = context("features", run_id=run_id)
    op.render_template_fields(ctx)
    return op.execute(ctx)


def recommend(w: World, run_id: str = "bad-input", **kwargs: Any) -> Any:
    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    kwargs.setdefault("prediction_date", str(DAY))
    with DAG("reliability_inference", schedule=None):
        op = BatchRecommendOperator(task_id="recommend", pipeline=str(w.pipeline), **kwargs)
    return op.execute(context("recommend", run_id=run_id))


def drift(w: World, run_id: str = "bad-input", **kwargs: Any) -> Any:
    from airflow_ml_provider.operators.drift import DriftCheckOperator

    kwargs.setdefault("partition_date", str(DAY))
    with DAG("reliability_drift", schedule=None):
        op = DriftCheckOperator(task_id="drift", pipeline=str(w.pipeline), **kwargs)
    return op.execute(context("drift", run_id=run_id))


def checks(w: World, run_id: str = "bad-input", searchpath: Path = SQL_DIR, **kwargs: Any) -> Any:
    """DataCheckOperator (recsys_features' gate and its closing record)."""
    from airflow_ml_provider.operators.checks import DataCheckOperator

    kwargs.setdefault("partition_date", str(DAY))
    with DAG("reliability_checks", schedule=None, template_searchpath=[str(searchpath)]):
        op = DataCheckOperator(task_id="checks", pipeline=str(w.pipeline), **kwargs)
    return op.execute(context("checks", run_id=run_id))


def sensor(w: World, kind: str, **kwargs: Any) -> Any:
    """A warehouse sensor that gives up at once (timeout 0, poke mode)."""
    from airflow_ml_provider.sensors.warehouse import ChampionModelSensor, WarehousePartitionSensor

    with DAG("reliability_sensors", schedule=None):
        if kind == "partition":
            op: Any = WarehousePartitionSensor(task_id="ready", mode="poke", timeout=0, poke_interval=0, **kwargs)
        else:
            op = ChampionModelSensor(task_id="ready", mode="poke", timeout=0, poke_interval=0, **kwargs)
    return op.execute(context("ready"))


def train(w: World, run_id: str = "bad-input", **kwargs: Any) -> Any:
    from airflow_ml_provider.operators.training import TrainModelOperator

    kwargs.setdefault("run_date", str(DAY))
    with DAG("reliability_training", schedule=None):
        op = TrainModelOperator(task_id="train", pipeline=str(w.pipeline), **kwargs)
    return op.execute(context("train", run_id=run_id))


def promote(w: World, run_id: str = "bad-input", **kwargs: Any) -> Any:
    from airflow_ml_provider.operators.evaluation import EvaluateAndPromoteOperator

    with DAG("reliability_training", schedule=None):
        op = EvaluateAndPromoteOperator(task_id="promote", pipeline=str(w.pipeline), **kwargs)
    return op.execute(context("promote", run_id=run_id))


def cli(w: World, *argv: str) -> Any:
    """``airflow-ml`` in-process on the copy's warehouse; a non-zero exit raises CLIFailed with stderr."""
    from airflow_ml_provider.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*argv, "--warehouse", str(w.warehouse), "-q"])
    if code != 0:
        raise CLIFailed(err.getvalue().strip())
    return code


# --- ways to break the world (applied before the "before" checksum) ------------------------


def sql(*statements: str) -> Callable[[World], None]:
    """Run DuckDB statements on the copy."""

    def apply(w: World) -> None:
        with DuckDBWarehouse(w.warehouse).connect() as con:
            for statement in statements:
                con.execute(statement)

    return apply


def contract(edit: Callable[[dict], None]) -> Callable[[World], None]:
    """Edit the copy's pipeline.yaml as a mapping."""

    def apply(w: World) -> None:
        raw = yaml.safe_load(w.pipeline.read_text())
        edit(raw)
        w.pipeline.write_text(yaml.safe_dump(raw, sort_keys=False))

    return apply


def contract_text(text: Callable[[str], str]) -> Callable[[World], None]:
    def apply(w: World) -> None:
        w.pipeline.write_text(text(w.pipeline.read_text()))

    return apply


def sql_file(name: str, text: str) -> Callable[[World], None]:
    """A DS-owned SQL file next to the copy's contract."""

    def apply(w: World) -> None:
        (w.root / "sql").mkdir(exist_ok=True)
        (w.root / "sql" / name).write_text(text)

    return apply


def model_file(name: str, edit: Callable[[str], str]) -> Callable[[World], None]:
    def apply(w: World) -> None:
        path = w.model_dir / name
        path.write_text(edit(path.read_text()))

    return apply


def connection(**extra: Any) -> Callable[[World], None]:
    """Add to the default connection's extras (the copy's paths stay); the case fixture restores it."""

    def apply(w: World) -> None:
        os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = w.connection(**extra)

    return apply


def broken_sql_copy(name: str, text: str) -> Callable[[World], None]:
    """A copy of the repo's sql/ folder at ROOT/sql_copy with one step file replaced, and fresh events on DAY.

    The fresh events make every step WOULD write a different partition, so an unchanged
    checksum proves the earlier steps did not publish.
    """

    def apply(w: World) -> None:
        import shutil

        shutil.copytree(SQL_DIR, w.root / "sql_copy")
        (w.root / "sql_copy" / "recsys" / name).write_text(text)
        fresh_events(w)

    return apply


def fresh_events(w: World) -> None:
    """300 more events from noon of DAY, a second apart (DAY is fixed, so the timestamp is a literal).

    A second apart: copies at one instant would repeat (user, item, time), which the contract's
    duplicate_events check refuses before any step runs.
    """
    sql(
        "INSERT INTO events SELECT * EXCLUDE (rn) REPLACE (TIMESTAMP '2026-03-31 12:00:00+00' + TO_SECONDS(rn) "
        "AS event_ts) FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY event_ts) AS rn FROM events ORDER BY event_ts "
        "LIMIT 300)"
    )(w)


def both(*setups: Callable[[World], None]) -> Callable[[World], None]:
    def apply(w: World) -> None:
        for setup in setups:
            setup(w)

    return apply


def hooks_file(body: str) -> Callable[[World], None]:
    """Replace the contract's model.py (beside the copy's pipeline.yaml)."""

    def apply(w: World) -> None:
        (w.pipeline.parent / "model.py").write_text(body)

    return apply


_TYPO = "SELECT user_id, item_id FROM {{ ref('candidates') }} WHER 1 = 1\n"
_RANK_MAX_1 = {"check": "range", "column": "candidate_rank", "max": 1}


def nothing(w: World) -> None:
    return None


def setdeep(path: str, value: Any) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def delete(path: str) -> Callable[[dict], None]:
    def edit(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[last]

    return edit


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: how to break the world, what to run, and what the error must say."""

    area: str
    setup: Callable[[World], None]
    run: Callable[[World], Any]
    error: type[BaseException]
    names: str  # regex: the thing (file, key, column, table, version)
    fix: str  # regex: what to do about it
    logs_failed_run: bool = False  # batch inference records its failed attempt in recommendation_runs
    raised: type[BaseException] = field(default=AirflowFailException)


def op_case(area, setup, run, error, names, fix, **kw) -> Case:
    return Case(area, setup, run, error, names, fix, **kw)


def cli_case(area, setup, argv: Callable[[World], list[str]], names, fix) -> Case:
    return Case(area, setup, lambda w: cli(w, *argv(w)), CLIFailed, names, fix, raised=CLIFailed)


def cli_raw(*argv: str, cwd: Path | None = None) -> Any:
    """``airflow-ml`` with exactly ``argv`` (no --warehouse added), optionally from ``cwd`` with no DAGS_FOLDER."""
    from airflow_ml_provider.cli import main

    err = io.StringIO()
    saved_cwd, saved_env = os.getcwd(), os.environ.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([*argv, "-q"])
    finally:
        os.chdir(saved_cwd)
        if saved_env is not None:
            os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = saved_env
    if code != 0:
        raise CLIFailed(err.getvalue().strip())
    return code


def missing_warehouse(w: World) -> Any:
    """``tables`` on a --warehouse that does not exist: an error, and no file (warehouse or lock) appears."""
    folder = w.root / "empty"
    folder.mkdir()
    try:
        return cli_raw("tables", "--warehouse", str(folder / "typo.duckdb"))
    finally:
        assert list(folder.iterdir()) == [], list(folder.iterdir())


def project_without_contract(w: World) -> Any:
    folder = w.root / "not-a-project"
    folder.mkdir()
    return cli_raw("features", "--date", str(DAY), "--warehouse", str(w.warehouse), cwd=folder)


def project_with_two_contracts(w: World) -> Any:
    for name in ("recsys", "churn"):
        (w.root / "two" / "dags" / name).mkdir(parents=True)
        (w.root / "two" / "dags" / name / "pipeline.yaml").write_text(w.pipeline.read_text())
    return cli_raw("features", "--date", str(DAY), "--warehouse", str(w.warehouse), cwd=w.root / "two")


_BROKEN_YAML = 'name: recsys\nowners:\n  data_science: ["@ds"\n  engineering: ["@eng"]\n'
_INJECTION = "features; DROP TABLE events; --"
