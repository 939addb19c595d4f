"""A copied ``$AIRFLOW_ML_HOME`` is self-contained: ``ml_models.uri`` is stored relative to the warehouse's folder."""

from __future__ import annotations

import datetime as dt
import json
import shutil

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.storage import to_uri

T0 = dt.datetime(2026, 3, 31, 6, 0, tzinfo=dt.UTC)


def _register(wh: DuckDBWarehouse, version: str, uri: str) -> None:
    ModelRegistry(wh).register_candidate("recsys", version, uri, {"k": 10}, None, None, T0)


def _stored(wh: DuckDBWarehouse) -> dict[str, str]:
    rows = wh.query("SELECT version, uri FROM ml_models").to_pylist()
    return {r["version"]: r["uri"] for r in rows}


def test_local_artifacts_are_stored_relative_and_a_copy_reads_its_own(tmp_path, capsys):
    home = tmp_path / "ml"
    wh = DuckDBWarehouse(home / "warehouse.duckdb")
    model_dir = home / "artifacts" / "recsys" / "20260331-aaaaaaaa" / "model"
    _register(wh, "20260331-aaaaaaaa", to_uri(model_dir))
    _register(wh, "20260331-bbbbbbbb", "gs://bucket/recsys/20260331-bbbbbbbb/model")  # remote: as given
    _register(wh, "20260331-cccccccc", to_uri(tmp_path / "elsewhere" / "model"))  # outside the folder: as given
    assert _stored(wh) == {
        "20260331-aaaaaaaa": "artifacts/recsys/20260331-aaaaaaaa/model",
        "20260331-bbbbbbbb": "gs://bucket/recsys/20260331-bbbbbbbb/model",
        "20260331-cccccccc": to_uri(tmp_path / "elsewhere" / "model"),
    }
    assert ModelRegistry(wh).get("recsys", "20260331-aaaaaaaa").uri == to_uri(model_dir)
    _register(wh, "20260331-aaaaaaaa", to_uri(model_dir))  # a retry still finds its own row

    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    capsys.readouterr()
    assert main(["models", "list", "--model", "recsys", "--json", "--warehouse", str(copy / "warehouse.duckdb")]) == 0
    uris = {r["version"]: r["uri"] for r in json.loads(capsys.readouterr().out)}
    assert uris["20260331-aaaaaaaa"] == to_uri(copy / "artifacts" / "recsys" / "20260331-aaaaaaaa" / "model")
    assert uris["20260331-bbbbbbbb"] == "gs://bucket/recsys/20260331-bbbbbbbb/model"


def test_absolute_uris_written_before_still_read(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    _register(wh, "20260331-aaaaaaaa", "gs://b/x")  # creates the table
    absolute = to_uri(tmp_path / "artifacts" / "recsys" / "old" / "model")
    wh.execute(
        "INSERT INTO ml_models (model_name, version, uri, created_at, metrics, status) "
        "VALUES ('recsys', 'old', @uri, @t, PARSE_JSON('{}'), 'candidate')",
        {"uri": absolute, "t": T0},
    )
    assert ModelRegistry(wh).get("recsys", "old").uri == absolute
