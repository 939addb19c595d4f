"""Security checks: no secret in any log, no unpickling anywhere, SQL values only ever as parameters."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.registry.models import ModelRegistry
from tests.integration.reliability.conftest import DAY, MODEL, VERSION, World, table_checksums
from tests.integration.reliability.test_bad_input import drift, features, promote, recommend, train
from tests.paths import DAGS_DIR, REPO

PASSWORD = "pw-Zq9-3xAmPle-S3cret-do-not-log"
TOKEN = "ya29.a0AfB_secretTokenValue_do_not_log"
PRIVATE_KEY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secretkeymaterial"
SECRETS = (PASSWORD, TOKEN, PRIVATE_KEY)


# --- no secret in task logs or CLI output --------------------------------------------------------


def _airflow_env(home: Path, connection: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_DIR),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_ML_HOME=str(home / "ml"),
        AIRFLOW_CONN_ML_PLATFORM_DEFAULT=json.dumps(connection),
    )
    return env


def _run(env: dict[str, str], program: str, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / program
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, check=False, cwd=REPO)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _logs(home: Path) -> str:
    """Every file Airflow wrote under its logs folder."""
    files = sorted(p for p in (home / "airflow" / "logs").rglob("*") if p.is_file())
    return "\n".join(p.read_text(errors="replace") for p in files)


@pytest.mark.integration
def test_no_connection_secret_appears_in_task_logs_or_cli_output(tmp_path, demo_world):
    """A password, and secrets put in extras the provider does not know, never reach a log or the CLI's output."""
    warehouse = tmp_path / "ml" / "warehouse.duckdb"
    wh = DuckDBWarehouse(warehouse)
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(demo_world, name))
    good = {
        "conn_type": "ml_platform",
        "login": "svc-recsys",
        "password": PASSWORD,
        "extra": {"backend": "local", "warehouse_path": str(warehouse)},
    }
    env = _airflow_env(tmp_path, good)
    migrate = _run(env, "airflow", "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    ok = _run(env, "airflow", "dags", "test", "recsys_features", "2026-03-30")
    output = ok.stdout + ok.stderr
    assert ok.returncode == 0 and "state=success" in output, output[-4000:]
    # `dags test` runs the tasks in-process: their log lines are in this output (files too, if any).
    assert "Writing user_features partition as_of_date=2026-03-30" in output
    # The secret-bearing connection is the one the tasks used: they wrote to its warehouse_path.
    assert wh.query("SELECT COUNT(*) AS n FROM features").to_pylist()[0]["n"] > 0
    assert _leaks(output) == [] and _leaks(_logs(tmp_path)) == []

    # The error path: a connection carrying secrets in extras the provider does not know.
    bad = {**good, "extra": {**good["extra"], "keyfile_dict": {"private_key": PRIVATE_KEY}, "token": TOKEN}}
    env = _airflow_env(tmp_path, bad)
    failed = _run(env, "airflow", "dags", "test", "recsys_features", "2026-03-29")
    output = failed.stdout + failed.stderr
    assert "keyfile_dict: unknown key" in output + _logs(tmp_path), output[-4000:]  # the error names the key
    assert _leaks(output) == [] and _leaks(_logs(tmp_path)) == []

    for connection in (good, bad):
        env = _airflow_env(tmp_path, connection)
        for args in (("tables",), ("features", "--date", "2026-03-28"), ("models", "list")):
            out = _run(env, "airflow-ml", *args, "--conn-id", "ml_platform_default")
            assert out.returncode in (0, 1), out.stderr[-3000:]
            assert _leaks(out.stdout + out.stderr) == [], (args, out.stdout + out.stderr)
        if connection is bad:
            assert "keyfile_dict: unknown key" in out.stderr


# --- loading a model never unpickles ---------------------------------------------------------------


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a model load tried to unpickle")


class _RefusingUnpickler:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse()


def test_loading_and_scoring_a_model_never_unpickles(case: World, monkeypatch):
    monkeypatch.setattr(pickle, "loads", _refuse)
    monkeypatch.setattr(pickle, "load", _refuse)
    monkeypatch.setattr(pickle, "Unpickler", _RefusingUnpickler)
    try:
        import joblib
    except ImportError:
        pass
    else:
        monkeypatch.setattr(joblib, "load", _refuse)
    result = recommend(case, model_version=VERSION)  # envelope + model.txt + model.py, then scoring
    assert result["model_version"] == VERSION and result["rows_written"] > 0
    assert drift(case)["results"]["rows"] > 0  # the drift check reads the envelope too


#: Modules that deserialise code-bearing objects; none may be imported by the provider.
PICKLERS = {"pickle", "cPickle", "_pickle", "joblib", "cloudpickle", "dill", "shelve", "marshal", "torch"}
#: Calls that unpickle (or write pickles a later load would trust) in pandas, numpy and LightGBM.
PICKLE_CALLS = {"read_pickle", "to_pickle", "__setstate__", "__getstate__", "loads", "model_from_string"}


def test_the_provider_never_imports_a_pickler_or_calls_a_pickle_path():
    offences = []
    for path in sorted((REPO / "airflow_ml_provider").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            offences += [f"{path.name}:{node.lineno} imports {n}" for n in names if n in PICKLERS]
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in PICKLE_CALLS and not (isinstance(func, ast.Attribute) and _is_json(func.value)):
                    offences.append(f"{path.name}:{node.lineno} calls {name}")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and not kw.value.value):
                        offences.append(f"{path.name}:{node.lineno} passes allow_pickle")
                if name == "Booster" and not {kw.arg for kw in node.keywords} <= {"model_str", "params"}:
                    offences.append(f"{path.name}:{node.lineno} builds a Booster from something else than text")
    assert offences == []


def _is_json(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "json"


def test_the_static_scan_can_fail(tmp_path):
    """The scan above would catch a pickle import and a pickle call (guard against a scan that sees nothing)."""
    tree = ast.parse("import joblib\nfrom pickle import loads\npd.read_pickle('x')\n")
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    calls = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert len(imports) == 2 and "read_pickle" in calls


# --- SQL values travel as parameters -------------------------------------------------------------

EVIL = [
    "O'Brien\"; DROP TABLE features; --",
    "x\\'); DELETE FROM ml_models WHERE ''=' \\\\ \u2019\u201c\u202e @as_of $1 ? %s %(x)s",
]


def _intact(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], changed: set[str]) -> None:
    """Every table is still there; those not written by the operator are unchanged."""
    assert set(before) <= set(after), set(before) - set(after)
    assert {t: after[t] for t in before if t not in changed} == {t: before[t] for t in before if t not in changed}


@pytest.mark.parametrize("evil", EVIL, ids=["quotes", "backslash-unicode"])
def test_quote_laden_values_travel_as_parameters_through_every_operator(case: World, evil: str):
    wh = DuckDBWarehouse(case.warehouse)

    # FeatureExtractOperator: a query parameter.
    (case.root / "sql").mkdir()
    who = "SELECT @who AS who, COUNT(*) AS n FROM events WHERE DATE(event_ts) <= @as_of"
    (case.root / "sql" / "who.sql").write_text(who)
    before = table_checksums(case.warehouse)
    features(case, table="who", sql="who.sql", searchpath=case.root / "sql", query_params={"who": evil})
    assert wh.query("SELECT who FROM who").to_pylist() == [{"who": evil}]
    _intact(before, table_checksums(case.warehouse), {"main.who"})

    # BatchRecommendOperator: run_id (stored), a pinned model version and a model name (looked up).
    before = table_checksums(case.warehouse)
    recommend(case, run_id=evil)
    got = wh.query("SELECT DISTINCT run_id FROM recommendations WHERE prediction_date = @d", {"d": DAY}).to_pylist()
    assert got == [{"run_id": evil}]
    assert wh.query("SELECT COUNT(*) AS n FROM recommendation_runs WHERE run_id = @r", {"r": evil}).to_pylist() == [
        {"n": 1}
    ]
    with pytest.raises(Exception, match="has no version"):
        recommend(case, model_version=evil)
    with pytest.raises(Exception, match="no champion for model"):
        recommend(case, model_name=evil)
    _intact(before, table_checksums(case.warehouse), {"main.recommendations", "main.recommendation_runs"})

    # DriftCheckOperator: run_id (stored), category and segment values in the data, a pinned version.
    with wh.connect() as con:
        con.execute(
            "UPDATE features SET item_category = $v, candidate_source = $v "
            "WHERE as_of_date = $d AND user_id IN (SELECT DISTINCT user_id FROM features WHERE as_of_date = $d "
            "ORDER BY user_id LIMIT 60)",
            {"v": evil, "d": DAY},
        )
    before = table_checksums(case.warehouse)
    summary = drift(case, run_id=evil, predictions_table=None)
    assert summary["results"]["rows"] > 0
    rows = wh.query("SELECT DISTINCT run_id FROM drift_results WHERE logical_date = @d", {"d": DAY}).to_pylist()
    assert rows == [{"run_id": evil}]
    segments = {r["segment"] for r in wh.query("SELECT DISTINCT segment FROM drift_results").to_pylist()}
    assert f"candidate_source={evil}" in segments
    new_share = wh.query(
        "SELECT value FROM drift_results WHERE feature = 'item_category' AND metric = 'new_category_share' "
        "AND segment = '__all__'"
    ).to_pylist()
    assert new_share and new_share[0]["value"] > 0  # the quote-laden category was counted, as a value
    with pytest.raises(Exception, match="has no version"):
        drift(case, model_version=evil)
    _intact(before, table_checksums(case.warehouse), {"main.drift_results"})

    # TrainModelOperator and EvaluateAndPromoteOperator: git_sha and blessed_by are stored verbatim.
    before = table_checksums(case.warehouse)
    trained = train(case, run_id=evil, git_sha=evil)
    registry = ModelRegistry(wh)
    assert registry.get(MODEL, trained["version"]).git_sha == evil
    try:
        promote(case, version=trained["version"], blessed_by=evil, on_reject="fail")
    except Exception as err:  # the gate may reject a model trained on this small world; both paths store values
        assert "rejected" in str(err)
        assert registry.get(MODEL, trained["version"]).status == "rejected"
    else:
        assert registry.champion(MODEL).blessed_by == evil
    _intact(before, table_checksums(case.warehouse), {"main.ml_models", "main.drift_profiles"})

    # The CLI: a user id from the command line.
    from airflow_ml_provider.cli import main

    # An id with no list is an error (exit 1), and the quote never reaches SQL: no table changed.
    assert main(["recommendations", "--date", str(DAY), "--user", evil, "--warehouse", str(case.warehouse)]) == 1
    assert all(t in table_checksums(case.warehouse) for t in before)


def test_date_strings_with_quotes_never_reach_sql(case: World):
    """A templated date is parsed to a date before any SQL sees it; anything else is refused."""
    before = table_checksums(case.warehouse)
    with pytest.raises(Exception, match="partition_date must render to a YYYY-MM-DD date"):
        features(case, partition_date="'; DROP TABLE features; --")
    assert table_checksums(case.warehouse) == before
    assert dt.date.fromisoformat(str(DAY))  # the valid date still works below
    features(case, partition_date=f"{DAY}T00:00:00+00:00")
    assert "main.features" in table_checksums(case.warehouse)
