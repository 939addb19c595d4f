"""A copied ``$AIRFLOW_ML_HOME`` is self-contained: ``ml_models.uri`` is relative to the artifact root (ADR 10).

The home is built the way a user builds one: ``airflow-ml train`` with ``AIRFLOW_ML_HOME`` set,
then ``models promote``. Each test copies it (or only its warehouse file) and serves from the
copy with ``airflow-ml recommend``, the original moved away so nothing can read it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.features.build import build_features
from tests.conftest import TRAINING_RUN_DATE
from tests.paths import SQL_DIR

pytestmark = pytest.mark.integration

DAY = TRAINING_RUN_DATE  # the fixture warehouse holds its training windows; its features are built below


@pytest.fixture(scope="module")
def home(training_warehouse_file, fast_pipeline_file, tmp_path_factory) -> Path:
    """An AIRFLOW_ML_HOME with a champion trained by ``airflow-ml train`` under its own artifacts/."""
    home = tmp_path_factory.mktemp("copied-home") / "ml"
    home.mkdir()
    shutil.copy(training_warehouse_file, home / "warehouse.duckdb")
    build_features(
        DuckDBWarehouse(home / "warehouse.duckdb"), load_spec(fast_pipeline_file), SQL_DIR, [dt.date.fromisoformat(DAY)]
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_ML_HOME", str(home))
        assert main(["train", "--date", DAY, "--pipeline", str(fast_pipeline_file), "--no-promote"]) == 0
        (version,) = [r[0] for r in _stored(home)]
        assert main(["models", "promote", version, "--pipeline", str(fast_pipeline_file)]) == 0
    return home


def _stored(home: Path) -> list[tuple[str, str]]:
    """(version, uri) as ml_models stores them."""
    with DuckDBWarehouse(home / "warehouse.duckdb").connect(read_only=True) as con:
        return con.execute("SELECT version, uri FROM ml_models ORDER BY version").fetchall()


@contextlib.contextmanager
def moved_away(folder: Path) -> Iterator[None]:
    """``folder`` renamed while the block runs: anything still pointing into it fails."""
    hidden = folder.with_name(folder.name + ".moved")
    folder.rename(hidden)
    try:
        yield
    finally:
        hidden.rename(folder)


def recommend(pipeline: Path, *extra: str) -> int:
    return main(["recommend", "--date", DAY, "--pipeline", str(pipeline), "--json", *extra])


def printed_run(out: str) -> dict:
    """The run ``recommend --json`` printed (with a connection, Airflow's log lines come first on stdout)."""
    lines = out.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


def test_training_stores_the_uri_relative_to_the_artifact_root(home):
    ((version, uri),) = _stored(home)
    assert uri == f"recsys/{version}/model"
    assert (home / "artifacts" / uri / "envelope.json").is_file()


def test_a_copied_home_serves_its_own_models_with_the_original_gone(
    home, fast_pipeline_file, tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "elsewhere" / "ml"
    shutil.copytree(home, copy)
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(copy))
    ((version, _),) = _stored(copy)
    with moved_away(home):
        capsys.readouterr()
        assert main(["models", "list", "--json", "--pipeline", str(fast_pipeline_file)]) == 0
        (listed,) = json.loads(capsys.readouterr().out)
        assert listed["uri"] == (copy / "artifacts" / "recsys" / version / "model").as_uri()
        assert recommend(fast_pipeline_file) == 0
    run = printed_run(capsys.readouterr().out)
    assert run["model_version"] == version and run["rows_written"] > 0
    served = DuckDBWarehouse(copy / "warehouse.duckdb").query(
        "SELECT COUNT(*) AS n FROM recommendations WHERE prediction_date = @d", {"d": dt.date.fromisoformat(DAY)}
    )
    assert served.to_pylist() == [{"n": run["rows_written"]}]


def test_a_warehouse_copied_without_its_artifacts_names_the_version_the_path_and_the_fix(
    home, fast_pipeline_file, tmp_path, monkeypatch, capsys
):
    copy = tmp_path / "ml"
    copy.mkdir()
    shutil.copy(home / "warehouse.duckdb", copy / "warehouse.duckdb")
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(copy))
    ((version, uri),) = _stored(copy)
    capsys.readouterr()
    assert recommend(fast_pipeline_file) == 1
    err = capsys.readouterr().err
    looked_at = (copy / "artifacts" / "recsys" / version / "model" / "envelope.json").as_uri()
    assert f"model recsys version {version}: {looked_at} does not exist" in err
    assert f"ml_models.uri is {uri!r}, relative to the artifact root {(copy / 'artifacts').as_uri()}" in err
    assert "copy the whole AIRFLOW_ML_HOME folder (warehouse.duckdb and artifacts/)" in err
    assert "artifact_root" in err
    # Refused before any run row: nothing says a run was attempted.
    with DuckDBWarehouse(copy / "warehouse.duckdb").connect(read_only=True) as con:
        runs = con.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'recommendation_runs'")
        assert runs.fetchone() == (0,)


def test_a_warehouse_copied_alone_serves_when_artifact_root_points_at_the_original(
    home, fast_pipeline_file, tmp_path, monkeypatch, capsys
):
    """The other fix the error names: keep the artifacts where they are and say where they are."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(home / "warehouse.duckdb", path)
    extra = {"warehouse_path": str(path), "artifact_root": (home / "artifacts").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_ML_COPY", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(tmp_path / "unused"))
    capsys.readouterr()
    assert recommend(fast_pipeline_file, "--conn-id", "ml_copy") == 0
    assert printed_run(capsys.readouterr().out)["rows_written"] > 0


def test_an_absolute_uri_written_before_still_serves(home, fast_pipeline_file, tmp_path, monkeypatch, capsys):
    """Rows registered before URIs were relative hold an absolute file:// URI: read as they are."""
    copy = tmp_path / "ml"
    shutil.copytree(home, copy)
    ((version, uri),) = _stored(copy)
    absolute = (copy / "artifacts" / uri).as_uri()
    with DuckDBWarehouse(copy / "warehouse.duckdb").connect() as con:
        con.execute("UPDATE ml_models SET uri = $u", {"u": absolute})
    monkeypatch.setenv("AIRFLOW_ML_HOME", str(tmp_path / "another-home"))  # a root that holds nothing
    capsys.readouterr()
    assert recommend(fast_pipeline_file, "--warehouse", str(copy / "warehouse.duckdb")) == 0
    assert printed_run(capsys.readouterr().out)["model_version"] == version
