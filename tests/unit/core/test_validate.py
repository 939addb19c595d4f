"""core/validate*.py: the handoff checks, on copies of the reference pipeline and a real DuckDB sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.validate.columns import feature_problems
from airflow_ml_provider.core.validate.pipeline import validate_pipeline
from airflow_ml_provider.core.validate.report import ValidationReport
from airflow_ml_provider.core.validate.windows import window_problems
from tests.paths import PIPELINE, SQL_DIR

CHECKS = {"contract", "windows", "sample data", "features", "label", "data checks", "model.py"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the reference pipeline laid out as ROOT/dags/recsys and ROOT/sql/recsys."""
    shutil.copytree(PIPELINE.parent, tmp_path / "dags" / "recsys", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SQL_DIR / "recsys", tmp_path / "sql" / "recsys")
    return tmp_path


def run(project: Path, warehouse) -> ValidationReport:
    return validate_pipeline(project / "dags" / "recsys" / "pipeline.yaml", project / "sql", warehouse)


def by_name(report: ValidationReport) -> dict[str, tuple[str, str]]:
    return {c.check: (c.status, c.detail) for c in report.checks}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def edit_contract(project: Path, change) -> None:
    path = project / "dags" / "recsys" / "pipeline.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_reference_pipeline_passes_every_check(warehouse):
    report = validate_pipeline(PIPELINE, SQL_DIR, warehouse)
    assert report.ok, "\n".join(report.lines())
    checks = by_name(report)
    assert set(checks) >= CHECKS
    assert {s for s, _ in checks.values()} == {"PASS"}
    steps = [c for c in checks if c.startswith("sql ")]
    assert steps == [
        f"sql recsys/{n}.sql" for n in ("user_features", "item_features", "candidates", "features", "labels")
    ]
    assert "23 declared features match" in checks["features"][1] and "names and types" in checks["features"][1]
    assert "transform()" in checks["model.py"][1]
    assert report.lines()[-1].endswith("OK: all checks passed")


def test_renamed_feature_column_fails_naming_the_column_and_the_file(project, warehouse):
    features_sql = project / "sql" / "recsys" / "features.sql"
    edit(features_sql, "  u.user_purchases,", "  u.user_purchases AS user_buys,")
    report = run(project, warehouse)
    assert not report.ok
    status, detail = by_name(report)["features"]
    assert status == "FAIL"
    assert f"feature user_purchases is declared in the contract but {features_sql} does not output it" in detail
    assert "outputs user_buys, which is not a declared feature" in detail
    # The SQL itself is fine: only the features check fails.
    assert [c.check for c in report.checks if c.status == "FAIL"] == ["features"]


def test_mistyped_feature_fails_naming_both_types(project, warehouse):
    edit(
        project / "sql" / "recsys" / "features.sql", "  i.item_price,", "  CAST(i.item_price AS STRING) AS item_price,"
    )
    status, detail = by_name(run(project, warehouse))["features"]
    assert status == "FAIL"
    assert "feature item_price is declared FLOAT64 but" in detail and "outputs STRING" in detail
    assert "CAST it AS FLOAT64" in detail


def test_sql_syntax_error_fails_naming_the_file_and_skips_what_reads_its_table(project, warehouse):
    candidates = project / "sql" / "recsys" / "candidates.sql"
    edit(candidates, "FROM per_pair\nWHERE TRUE", "FROM per_pair\nWHERE")
    report = run(project, warehouse)
    checks = by_name(report)
    status, detail = checks["sql recsys/candidates.sql"]
    assert status == "FAIL"
    assert str(candidates) in detail and "GoogleSQL" in detail
    assert checks["sql recsys/features.sql"][0] == "SKIP" and "candidates" in checks["sql recsys/features.sql"][1]
    assert checks["sql recsys/user_features.sql"][0] == "PASS"
    assert not report.ok


def test_sql_that_parses_but_fails_on_duckdb_names_the_file(project, warehouse):
    user_features = project / "sql" / "recsys" / "user_features.sql"
    edit(user_features, "FROM {{ source('events') }} AS e", "FROM no_such_events AS e")
    status, detail = by_name(run(project, warehouse))["sql recsys/user_features.sql"]
    assert status == "FAIL"
    assert str(user_features) in detail and "no_such_events" in detail


def test_sql_naming_a_source_table_directly_fails(project, warehouse):
    """A source named in SQL would not follow `sources:` in pipeline.yaml; validate says so."""
    user_features = project / "sql" / "recsys" / "user_features.sql"
    edit(user_features, "JOIN {{ source('items') }} AS i", "JOIN items AS i")
    status, detail = by_name(run(project, warehouse))["sql recsys/user_features.sql"]
    assert status == "FAIL"
    assert "names source table(s) items directly; write {{ source('<role>') }} instead" in detail
    assert "items = items" in detail


def test_unknown_source_role_names_the_known_ones(project, warehouse):
    user_features = project / "sql" / "recsys" / "user_features.sql"
    edit(user_features, "JOIN {{ source('items') }} AS i", "JOIN {{ source('products') }} AS i")
    status, detail = by_name(run(project, warehouse))["sql recsys/user_features.sql"]
    assert status == "FAIL"
    assert "source('products'): pipeline 'recsys' has no source role 'products'; known: events, items, users" in detail


def test_undocumented_hook_in_model_py_fails(project, warehouse):
    model = project / "dags" / "recsys" / "model.py"
    model.write_text(model.read_text() + "\n\ndef param(defaults):\n    return defaults\n")
    status, detail = by_name(run(project, warehouse))["model.py"]
    assert status == "FAIL"
    assert "defines param, which are not documented hooks" in detail


def test_hook_with_a_wrong_signature_or_return_type_fails(project, warehouse):
    model = project / "dags" / "recsys" / "model.py"
    edit(model, "def transform(df):", "def transform(df, extra):")
    status, detail = by_name(run(project, warehouse))["model.py"]
    assert status == "FAIL" and "transform must take exactly one argument" in detail
    edit(model, "def transform(df, extra):", "def transform(df):")
    edit(model, 'return {**defaults, "num_leaves": 63, "min_data_in_leaf": 40}', "return None")
    status, detail = by_name(run(project, warehouse))["model.py"]
    assert status == "FAIL" and "params() must return a dict" in detail


def test_transform_that_drops_a_feature_fails(project, warehouse):
    model = project / "dags" / "recsys" / "model.py"
    edit(model, "    return df\n", '    return df.drop(columns=["item_price"])\n')
    status, detail = by_name(run(project, warehouse))["model.py"]
    assert status == "FAIL" and "item_price" in detail and "transform() dropped or renamed" in detail


def test_model_py_the_contract_does_not_name_fails(project, warehouse):
    edit_contract(project, lambda raw: raw["model"].pop("hooks"))
    status, detail = by_name(run(project, warehouse))["model.py"]
    assert status == "FAIL" and "the pipeline ignores it" in detail and "model.hooks" in detail
    (project / "dags" / "recsys" / "model.py").unlink()
    assert by_name(run(project, warehouse))["model.py"][0] == "SKIP"


def test_incoherent_windows_fail(project, warehouse):
    def shrink(raw):
        raw["windows"].update(training_days=3, validation_days=7)

    edit_contract(project, shrink)
    report = run(project, warehouse)
    # The contract itself refuses it now, so every entry point does (not only validate).
    status, detail = by_name(report)["contract"]
    assert status == "FAIL"
    assert "windows.training_days (3) is shorter than windows.validation_days (7)" in detail
    assert by_name(report)["windows"][0] == "SKIP"
    assert not report.ok


def test_label_sql_ignoring_the_horizon_and_features_looking_ahead_fail(project):
    labels = project / "sql" / "recsys" / "labels.sql"
    edit(labels, "INTERVAL @label_horizon_days DAY", "INTERVAL 7 DAY")
    items = project / "sql" / "recsys" / "item_features.sql"
    edit(
        items,
        "WHERE DATE(event_ts) <= @as_of",
        "WHERE DATE(event_ts) <= DATE_ADD(@as_of, INTERVAL @label_horizon_days DAY)",
    )
    spec = load_spec(project / "dags" / "recsys" / "pipeline.yaml")
    problems = window_problems(spec, project / "sql")
    assert any("recsys/labels.sql does not use @label_horizon_days" in p for p in problems), problems
    assert any("recsys/item_features.sql uses @label_horizon_days" in p and "leakage" in p for p in problems)
    assert window_problems(load_spec(PIPELINE), SQL_DIR) == []


def test_k_beyond_the_candidates_is_incoherent_only_for_per_user_lists(project):
    def small(raw):
        raw["candidates_per_user"] = 5

    edit_contract(project, small)
    spec = load_spec(project / "dags" / "recsys" / "pipeline.yaml")
    problems = window_problems(spec, project / "sql")
    assert any("evaluation.k (10) exceeds candidates_per_user (5)" in p for p in problems)
    assert any("inference.top_k (10) exceeds candidates_per_user (5)" in p for p in problems)
    per_date = spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"lists": "as_of_date"})})
    assert not any("evaluation.k" in p for p in window_problems(per_date, project / "sql"))


def test_non_nullable_feature_with_nulls_fails(project, warehouse):
    edit(project / "sql" / "recsys" / "features.sql", "IFNULL(h.pair_views, 0) AS pair_views", "h.pair_views")
    status, detail = by_name(run(project, warehouse))["features"]
    assert status == "FAIL"
    assert "feature pair_views is declared nullable: false" in detail and "NULL" in detail


def test_a_broken_contract_fails_with_its_key_path_and_skips_the_rest(project, warehouse):
    edit_contract(project, lambda raw: raw["drift"].update(psi_warn="high"))
    report = run(project, warehouse)
    status, detail = by_name(report)["contract"]
    assert status == "FAIL"
    assert "pipeline.yaml" in detail and "drift.psi_warn" in detail
    assert {c.status for c in report.checks if c.check != "contract"} == {"SKIP"}
    assert warehouse.list_tables() == []  # nothing ran


def test_report_as_json_has_checks_and_an_overall_ok(project, warehouse):
    edit(project / "sql" / "recsys" / "features.sql", "  u.user_purchases,", "  u.user_purchases AS user_buys,")
    data = json.loads(json.dumps(run(project, warehouse).as_dict()))
    assert set(data) == {"pipeline", "ok", "checks"}
    assert data["ok"] is False
    assert all(set(c) == {"check", "status", "detail"} for c in data["checks"])
    assert {c["status"] for c in data["checks"]} <= {"PASS", "FAIL", "SKIP"}
    assert any(c["check"] == "features" and c["status"] == "FAIL" for c in data["checks"])


def test_feature_problems_names_missing_extra_and_mistyped_columns():
    spec = load_spec(PIPELINE)
    columns: dict[str, str | None] = {"as_of_date": "DATE", "user_id": "VARCHAR", "item_id": "VARCHAR"}
    columns |= {f.name: {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE"}[f.type] for f in spec.features}
    assert feature_problems(spec, columns, "f.sql") == []
    columns.pop("item_views")
    columns["item_clicks"] = "BIGINT"
    columns["item_trend"] = "VARCHAR"
    problems = feature_problems(spec, {k: v for k, v in columns.items() if k != "item_id"}, "f.sql")
    assert problems[0].startswith("f.sql does not output the entity key item_id")
    assert any(
        p.startswith("feature item_views is declared in the contract but f.sql does not output it") for p in problems
    )
    assert any(p.startswith("f.sql outputs item_clicks, which is not a declared feature") for p in problems)
    assert any(p.startswith("feature item_trend is declared FLOAT64 but f.sql outputs STRING") for p in problems)
    # Names only (the SQL did not run): no type verdicts.
    assert feature_problems(spec, dict.fromkeys(columns), "f.sql") == [
        p for p in problems if "item_trend" not in p and "entity key" not in p
    ]
