"""The handoff commands as a new user runs them: `airflow-ml init` and `airflow-ml validate`.

The console script runs in a subprocess (exit codes, stdout, stderr); the churn scaffold is
taken end to end through features -> training -> batch scoring on a small demo world.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from airflow_ml_provider.cli import main
from airflow_ml_provider.core.scaffold import ScaffoldError, plan, scaffold
from tests.paths import PIPELINE, SQL_DIR

AIRFLOW_ML = Path(sys.executable).parent / "airflow-ml"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real console script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    return subprocess.run([str(AIRFLOW_ML), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_init_churn_then_validate_passes_through_the_console_script(tmp_path):
    """The issue's "done means", verbatim: init churn && validate --pipeline dags/churn/pipeline.yaml."""
    init = cli("init", "churn", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "airflow-ml validate --pipeline dags/churn/pipeline.yaml" in init.stdout
    assert (tmp_path / "sql" / "churn" / "features.sql").is_file()
    validate = cli("validate", "--pipeline", "dags/churn/pipeline.yaml", cwd=tmp_path)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert validate.stdout.strip().endswith("OK: all checks passed")
    assert "FAIL" not in validate.stdout


def test_validate_exits_1_and_names_a_renamed_feature_column(tmp_path):
    shutil.copytree(SQL_DIR / "recsys", tmp_path / "sql" / "recsys")
    features = tmp_path / "sql" / "recsys" / "features.sql"
    features.write_text(features.read_text().replace("  i.item_views,", "  i.item_views AS item_seen,"))
    out = cli("validate", "--pipeline", str(PIPELINE), "--sql-dir", str(tmp_path / "sql"), cwd=tmp_path)
    assert out.returncode == 1
    line = next(line for line in out.stdout.splitlines() if line.startswith("FAIL"))
    assert "features" in line and "item_views" in line and "item_seen" in line and str(features) in line
    assert "FAILED: 1 check(s) failed (features)" in out.stdout


def test_validate_json_on_the_reference_pipeline_leaves_the_real_warehouse_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(tmp_path / "ml"))
    assert main(["validate", "--json"]) == 0
    assert not (tmp_path / "ml").exists()  # the sample lives in a throwaway temp dir
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["pipeline"] == str(PIPELINE)
    assert [c["check"] for c in data["checks"]][:3] == ["contract", "windows", "sample data"]
    assert all(c["status"] == "PASS" and c["detail"] for c in data["checks"])


def test_validate_reports_a_missing_contract(tmp_path, capsys):
    assert main(["validate", "--pipeline", str(tmp_path / "nope.yaml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  contract" in out and "contract file not found" in out


def test_init_recsys_passes_validate_and_writes_prefixed_tables(tmp_path, capsys):
    assert main(["init", "shop_recs", "--pattern", "recsys", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["validate", "--pipeline", str(tmp_path / "dags" / "shop_recs" / "pipeline.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"], data
    steps = [c["check"] for c in data["checks"] if c["check"].startswith("sql ")]
    assert steps[-2:] == ["sql shop_recs/features.sql", "sql shop_recs/labels.sql"]
    assert "shop_recs_features" in next(c["detail"] for c in data["checks"] if c["check"] == steps[-2])


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    (tmp_path / "sql" / "churn").mkdir(parents=True)
    mine = tmp_path / "sql" / "churn" / "labels.sql"
    mine.write_text("-- my work")
    out = cli("init", "churn", cwd=tmp_path)
    assert out.returncode == 1
    assert "refusing to overwrite" in out.stderr and str(Path("sql") / "churn" / "labels.sql") in out.stderr
    assert mine.read_text() == "-- my work"
    assert not (tmp_path / "dags").exists()  # nothing half-written


@pytest.mark.parametrize("name", ["Churn", "9lives", "my-pipeline", "_hidden", "a" * 41])
def test_init_rejects_names_that_are_not_lowercase_identifiers(tmp_path, name):
    with pytest.raises(ScaffoldError, match="pipeline"):
        scaffold(name, "recsys", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_templates_render_every_placeholder_and_name_their_files():
    for pattern in ("recsys", "churn"):
        files = plan("winback", pattern)
        paths = {str(f.path) for f in files}
        assert {"dags/winback/pipeline.yaml", "dags/winback/model.py", "dags/winback_pipeline.py"} <= paths
        assert all("__NAME__" not in f.text and "__NAME__" not in str(f.path) for f in files)
        assert not any(p.endswith(".tmpl") for p in paths)


def test_scaffolded_dags_parse_with_the_existing_operators(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    scaffold("shop", "recsys", tmp_path)
    scaffold("churn", "churn", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "dags"))
    bag = DagBag(dag_folder=str(tmp_path / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"shop_daily", "shop_training", "churn_daily", "churn_training"}
    daily = bag.dags["churn_daily"]  # .get_dag() would need a metadata DB
    assert daily.doc_md and "Owners" in daily.doc_md
    assert [type(daily.get_task(t)).__name__ for t in ("features", "champion_ready", "score", "drift_check")] == [
        "FeatureExtractOperator",
        "ChampionModelSensor",
        "BatchRecommendOperator",
        "DriftCheckOperator",
    ]
    assert bag.dags["shop_daily"].get_task("shop_features").upstream_task_ids == {
        "shop_user_features",
        "shop_item_features",
        "shop_candidates",
    }


def test_churn_scaffold_runs_features_train_and_scores_one_row_per_user(tmp_path, monkeypatch):
    """features -> train -> batch scoring with the real operators' code on a small demo world."""
    from airflow.sdk import DAG

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.contract.model_hooks import load_hooks
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.evaluation.gate import evaluate_gate
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.job import training_data_sql, training_params
    from airflow_ml_provider.core.training.trainer import train
    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    day = dt.date(2026, 3, 31)
    scaffold("churn", "churn", tmp_path)
    pipeline = tmp_path / "dags" / "churn" / "pipeline.yaml"
    spec = load_spec(pipeline)
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    world = generate(DemoConfig(users=300, items=60, days=80, end_date=day))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    train_dates, valid_dates = spec.training_dates(day)
    build_features(wh, spec, tmp_path / "sql", [*train_dates, *valid_dates], labels=True)
    build_features(wh, spec, tmp_path / "sql", [day])

    data = wh.export_parquet(training_data_sql(spec), training_params(spec, day), (tmp_path / "data").as_uri())
    model_dir = (tmp_path / "models" / "v1").as_uri()
    hooks = load_hooks(pipeline.parent / "model.py")
    envelope = train(spec, data, model_dir, name="churn", version="v1", validation_from=valid_dates[0], hooks=hooks)
    assert envelope.objective == "binary"
    model, baseline = envelope.metrics["model"], envelope.metrics["baseline"]
    # One list per as-of date: the 7 validation dates, each ranking all of its users.
    assert model["lists"] == len(valid_dates)
    assert model["precision"] > baseline["precision"]
    gate = evaluate_gate(model, baseline, None, spec.evaluation)
    assert gate.passes, gate.reasons
    registry = ModelRegistry(wh)
    registry.register_candidate("churn", "v1", model_dir, envelope.metrics, None, spec.spec_hash, envelope.created_at)
    registry.promote("churn", "v1", blessed_by="test", reason="gate passed")

    extra = {"warehouse_path": str(wh.path), "artifact_root": (tmp_path / "artifacts").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    with DAG("churn_daily_test", schedule=None):
        op = BatchRecommendOperator(task_id="score", pipeline=str(pipeline), prediction_date=str(day))
    ti = types.SimpleNamespace(dag_id="churn_daily", task_id="score", run_id="manual__1", try_number=1)
    result = op.execute({"ds": str(day), "ti": ti})

    users = wh.query("SELECT COUNT(*) AS n FROM churn_features WHERE as_of_date = @d", {"d": day}).to_pylist()[0]["n"]
    assert result["users"] == result["rows_written"] == users > 0
    rows = wh.query(
        "SELECT COUNT(DISTINCT user_id) AS users, MIN(rank) AS lo, MAX(rank) AS hi, MIN(score) AS smin, "
        "MAX(score) AS smax, ANY_VALUE(item_id) AS item, COUNT(DISTINCT item_id) AS items "
        "FROM recommendations WHERE prediction_date = @d",
        {"d": day},
    ).to_pylist()[0]
    assert rows["users"] == users and (rows["lo"], rows["hi"]) == (1, 1)
    assert (rows["item"], rows["items"]) == ("churn", 1)
    assert 0 < rows["smin"] < rows["smax"] < 1  # probabilities, and they tell users apart


def test_features_on_a_scaffold_find_its_sql_beside_dags_without_sql_dir(tmp_path, capsys):
    scaffold("winback", "churn", tmp_path)
    wh = tmp_path / "wh.duckdb"
    assert main(["seed-demo", "-q", "--users", "60", "--items", "24", "--days", "40", "--warehouse", str(wh)]) == 0
    pipeline = tmp_path / "dags" / "winback" / "pipeline.yaml"
    assert (
        main(["features", "-q", "--pipeline", str(pipeline), "--date", "2026-03-31", "--warehouse", str(wh), "--json"])
        == 0
    )
    [result] = json.loads(capsys.readouterr().out)
    assert result["table"] == "winback_features" and result["rows"] > 0


@pytest.mark.parametrize("pattern", ["recsys", "churn"])
def test_scaffolded_dag_file_does_no_heavy_imports_at_parse_time(tmp_path, pattern):
    """Like the reference DAGs: pandas, lightgbm, duckdb and sqlglot load inside tasks, not at parse time."""
    scaffold("scaffolded", pattern, tmp_path)
    dag_file = tmp_path / "dags" / "scaffolded_pipeline.py"
    heavy = ("pandas", "lightgbm", "google.cloud.bigquery", "duckdb", "sqlglot")
    script = (
        "import sys, runpy, json\n"
        f"sys.path.insert(0, {str(dag_file.parent)!r})\n"
        f"runpy.run_path({str(dag_file)!r})\n"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
