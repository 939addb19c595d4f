"""BatchRecommendOperator with compiled trees (the [fast] extra) vs LightGBM: the same lists, compiled once."""

from __future__ import annotations

import logging

import pytest

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.inference import compiled
from tests.integration.operators.test_inference import lists_checksum, prepared, recommend, warehouse  # noqa: F401

pytest.importorskip("lleaves", reason="the [fast] extra is not installed (the dev extra installs it)")


def test_identical_lists_on_every_path_compiled_and_checked_once(prepared, warehouse, monkeypatch, caplog):  # noqa: F811
    model_dir = storage.local_path(prepared["model_dir"])
    assert model_dir is not None
    cache = model_dir / compiled.CACHE_DIR
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        recommend(prepared, run_id="compiled__1")
    assert "matches LightGBM on the first batch (max |diff| 0)" in caplog.text
    manifests = [p for p in cache.glob("*.json") if not p.name.endswith(".verdict.json")]
    assert len(list(cache.glob("*.o"))) == 1 and len(manifests) == 1
    fast = lists_checksum(warehouse)
    (verdict,) = cache.glob("*.verdict.json")  # the check's verdict, cached beside the object
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        recommend(prepared, run_id="compiled__2")
    assert "loaded from cache" in caplog.text  # the daily run compiles once per model version
    assert "the first batch is not scored twice" in caplog.text  # and checks once per model version
    assert "on the first batch" not in caplog.text
    assert lists_checksum(warehouse) == fast
    monkeypatch.setenv(compiled.DISABLE_ENV, "off")
    recommend(prepared, run_id="lightgbm__1")
    assert lists_checksum(warehouse) == fast
    monkeypatch.delenv(compiled.DISABLE_ENV)
    verdict.write_text(verdict.read_text().replace('"object_sha256": "', '"object_sha256": "0'))  # tampered
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        recommend(prepared, run_id="compiled__3")
    assert "does not vouch for the object loaded" in caplog.text
    assert "matches LightGBM on the first batch (max |diff| 0)" in caplog.text  # checked again
    assert lists_checksum(warehouse) == fast
