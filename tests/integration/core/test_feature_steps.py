"""``--steps``: only the named steps and those that ref() them are rebuilt, giving a full rebuild's tables;
``--labels`` over a range checks every date's label horizon before anything is written."""

from __future__ import annotations

import datetime as dt
import shutil
import types

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features, plan_steps
from airflow_ml_provider.exceptions import ContractError
from tests.paths import PIPELINE, SQL_DIR

pytestmark = pytest.mark.integration

DATES = [dt.date(2026, 3, 23), dt.date(2026, 3, 24)]
TABLES = ("user_features", "item_features", "candidates", "features", "labels")


def where(path) -> list[str]:
    """The arguments that point a command at ``path`` and the reference contract and SQL."""
    return ["--warehouse", str(path), "--pipeline", str(PIPELINE), "--sql-dir", str(SQL_DIR)]


def checksums(path) -> dict:
    wh = DuckDBWarehouse(path, lock_timeout=10)
    with wh.connect(read_only=True) as con:
        return {
            t: con.execute(f"SELECT count(*), sum(hash(x)) FROM {t} AS x").fetchone()
            for t in TABLES
            if wh.table_exists(t)
        }


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A warehouse with every step and the labels of DATES built."""
    path = tmp_path_factory.mktemp("steps") / "full.duckdb"
    wh = DuckDBWarehouse(path)
    world = generate(DemoConfig(users=150, items=60, days=40))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    build_features(wh, load_spec(PIPELINE), SQL_DIR, DATES, labels=True)
    return path


def test_selection_is_the_named_steps_and_their_readers_in_order(full):
    spec, wh = load_spec(PIPELINE), DuckDBWarehouse(full)
    names = lambda steps, labels=False: [s.table for s in plan_steps(wh, spec, [SQL_DIR], DATES, steps, labels=labels)]  # noqa: E731
    assert names("user_features") == ["user_features", "features"]
    assert names("features,user_features") == ["user_features", "features"]
    assert names("candidates", labels=True) == ["candidates", "features", "labels"]
    assert names("") == ["user_features", "item_features", "candidates", "features"]
    with pytest.raises(ContractError, match="no step writing 'user_feature'; known steps: user_features, item_"):
        names("user_feature")


def test_rebuilding_some_steps_equals_a_full_rebuild(full, tmp_path, capsys):
    before = checksums(full)
    copy = tmp_path / "partial.duckdb"
    shutil.copy(full, copy)
    wh = DuckDBWarehouse(copy)
    # The rebuilt steps' partitions are gone: only rebuilding them can bring the rows back.
    with wh.connect() as con:
        for table in ("user_features", "features"):
            con.execute(f"DELETE FROM {table}")
    written = []
    spec = load_spec(PIPELINE)
    build_features(wh, spec, SQL_DIR, DATES, steps="user_features,features", preflight=True, on_step=written.append)
    assert [(r.table, r.partition) for r in written] == [
        (t, str(d)) for d in DATES for t in ("user_features", "features")
    ]
    assert checksums(copy) == before

    # The command line: an unknown step fails naming the known ones, writing nothing.
    args = ["features", "--date", str(DATES[0]), "--warehouse", str(copy), "--pipeline", str(PIPELINE)]
    assert main([*args, "--sql-dir", str(SQL_DIR), "--steps", "user_features,nope"]) == 1
    assert "known steps: user_features, item_features, candidates, features" in capsys.readouterr().err
    assert main([*args, "--sql-dir", str(SQL_DIR), "--steps", "item_features"]) == 0
    assert checksums(copy) == before


def test_a_step_read_but_not_rebuilt_must_have_the_partition(full, tmp_path, capsys):
    copy = tmp_path / "gap.duckdb"
    shutil.copy(full, copy)
    with DuckDBWarehouse(copy).connect() as con:
        con.execute("DELETE FROM candidates WHERE as_of_date = ?", [DATES[1]])
    before = checksums(copy)
    code = main(["features", "--date", str(DATES[0]), "--to", str(DATES[1]), "--steps", "user_features", *where(copy)])
    assert code == 1
    err = capsys.readouterr().err
    assert "features reads candidates, which is not being rebuilt and has no partition as_of_date=2026-03-24" in err
    assert "Add candidates to the steps" in err
    assert checksums(copy) == before


def test_the_dag_task_of_a_step_not_named_keeps_its_partition(full, tmp_path, monkeypatch):
    import json

    from airflow.sdk import DAG

    from airflow_ml_provider.operators.features import FeatureExtractOperator

    copy = tmp_path / "dag.duckdb"
    shutil.copy(full, copy)
    before = checksums(copy)
    extra = {"warehouse_path": str(copy), "artifact_root": (tmp_path / "a").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    done = {}
    for table in ("user_features", "item_features", "candidates", "features"):
        with DAG("recsys_features", schedule=None, template_searchpath=[str(SQL_DIR)]):
            task = FeatureExtractOperator(
                task_id=table, table=table, pipeline=str(PIPELINE), steps="{{ params.steps }}"
            )
        ti = types.SimpleNamespace(dag_id="recsys_features", task_id=table, run_id="manual", try_number=1)
        context = {"ds": str(DATES[1]), "logical_date": None, "ti": ti, "params": {"steps": "item_features"}}
        task.render_template_fields(context)
        done[table] = task.execute(context)
    assert {t for t, r in done.items() if r.get("rebuilt") is False} == {"user_features", "candidates"}
    assert done["item_features"]["rows"] > 0 and done["features"]["rows"] > 0
    assert checksums(copy) == before


def test_labels_over_a_range_check_every_horizon_before_writing(tmp_path, capsys):
    path = tmp_path / "wh.duckdb"
    wh = DuckDBWarehouse(path)
    world = generate(DemoConfig(users=150, items=60, days=40))  # events through 2026-03-31
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    code = main(["features", "--date", "2026-03-20", "--to", "2026-03-31", "--labels", *where(path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "2026-03-25..2026-03-31 (7 of 12 dates)" in err
    assert "The last as-of date whose horizon has passed is 2026-03-24" in err
    assert "`--to 2026-03-24`" in err and "Nothing was written" in err
    assert not any(wh.table_exists(t) for t in TABLES)
