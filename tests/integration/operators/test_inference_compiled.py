"""BatchRecommendOperator with compiled trees (the [fast] extra) vs LightGBM: the same lists, compiled once."""

from __future__ import annotations

import logging

import pytest

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.inference import compiled
from tests.integration.operators.test_inference import lists_checksum, prepared, recommend, warehouse  # noqa: F401

pytest.importorskip("lleaves", reason="the [fast] extra is not installed (the dev extra installs it)")


def test_compiled_and_lightgbm_paths_write_identical_lists_and_compile_once(prepared, warehouse, monkeypatch, caplog):  # noqa: F811
    model_dir = storage.local_path(prepared["model_dir"])
    assert model_dir is not None
    cache = model_dir / compiled.CACHE_DIR
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        recommend(prepared, run_id="compiled__1")
    assert "matches LightGBM on the first batch (max |diff| 0)" in caplog.text
    assert len(list(cache.glob("*.o"))) == 1 and len(list(cache.glob("*.json"))) == 1
    fast = lists_checksum(warehouse)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        recommend(prepared, run_id="compiled__2")
    assert "loaded from cache" in caplog.text  # the daily run compiles once per model version
    monkeypatch.setenv(compiled.DISABLE_ENV, "off")
    recommend(prepared, run_id="lightgbm__1")
    assert lists_checksum(warehouse) == fast
