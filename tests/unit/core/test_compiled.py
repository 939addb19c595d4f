"""Compiled trees (core/inference/compiled.py) against real LightGBM: identical lists, cache by sha256, fallbacks."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.inference import compiled
from airflow_ml_provider.core.inference.compiled import (
    CompiledBooster,
    cache_uris,
    compiled_or_booster,
    compiler_version,
    load_or_compile,
    max_difference,
    model_sha256,
)
from airflow_ml_provider.core.inference.scoring import TopK, top_k
from airflow_ml_provider.core.storage import to_uri

lgb = pytest.importorskip("lightgbm")
pytest.importorskip("lleaves", reason="the [fast] extra is not installed (the dev extra installs it)")

USERS, PER_USER, K = 400, 40, 10


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ranking problem with a categorical column, missing values and many repeated feature values."""
    rng = np.random.default_rng(seed)
    n = USERS * PER_USER
    x = np.column_stack(
        [
            rng.integers(0, 8, n).astype(float),  # categorical codes
            np.round(rng.normal(size=n), 1),  # coarse: many candidates share leaves, so exact ties occur
            rng.normal(size=n),
            np.where(rng.random(n) < 0.2, np.nan, rng.exponential(size=n)),
        ]
    )
    y = (x[:, 1] + (x[:, 0] == 3) + rng.normal(scale=0.5, size=n) > 1).astype(float)
    return x, y


def _train(seed: int, rounds: int) -> str:
    x, y = _data(seed)
    data = lgb.Dataset(x, y, group=[PER_USER] * USERS, categorical_feature=[0])
    params = {"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 20, "verbose": -1, "seed": seed}
    return lgb.train(params, data, num_boost_round=rounds).model_to_string()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Two trained models in their own model folders, each compiled once (the cache is warm afterwards)."""
    root = tmp_path_factory.mktemp("compiled")
    out = {}
    for name, seed, rounds in (("a", 1, 30), ("b", 2, 12)):
        folder = root / name
        folder.mkdir()
        text = _train(seed, rounds)
        (folder / "model.txt").write_text(text)
        out[name] = {"dir": folder, "uri": to_uri(folder), "text": text, "booster": lgb.Booster(model_str=text)}
        out[name]["compiled"] = load_or_compile(text, out[name]["uri"])
    return out


def test_compiled_scores_and_top_k_lists_equal_lightgbm(models):
    a = models["a"]
    x, _ = _data(7)
    expected = a["booster"].predict(x)
    fast = CompiledBooster(a["compiled"].model, a["booster"], "a v1", threads=1)
    got = fast.predict(x)
    assert fast.engine == "lleaves" and fast.max_difference == 0.0
    assert np.array_equal(got, expected)  # bitwise: one block sums the trees in LightGBM's order
    users = pa.array([f"u{i // PER_USER:04d}" for i in range(len(x))])
    items = pa.array([f"i{(i * 7919) % 1000:04d}" for i in range(len(x))])
    assert len(np.unique(expected)) < len(expected)  # exact ties exist, so the item-id rule is exercised
    assert top_k(users, items, got, K).equals(top_k(users, items, expected, K))


def test_near_equal_scores_order_by_value_and_only_equal_ones_tie_by_item_id():
    """The documented rule: scores are compared as exact doubles; only equal scores fall back to item id."""
    users = pa.array(["u"] * 4)
    items = pa.array(["d", "c", "b", "a"])
    scores = np.array([0.5, 0.5 + 1e-15, 0.5, 0.5 - 1e-15])
    best = top_k(users, items, scores, 4)
    assert best.column("item_id").to_pylist() == ["c", "b", "d", "a"]
    running = TopK(4)
    running.add(users.slice(0, 2), items.slice(0, 2), scores[:2])
    running.add(users.slice(2), items.slice(2), scores[2:])
    assert running.result().column("item_id").to_pylist() == ["c", "b", "d", "a"]


def test_cache_is_keyed_by_model_sha256_and_hit_on_the_second_load(models, tmp_path):
    a = models["a"]
    folder = tmp_path / "model"
    shutil.copytree(a["dir"], folder)  # the warm cache comes along, as it sits next to the model
    assert load_or_compile(a["text"], to_uri(folder)).cache_hit
    key = (to_uri(folder), model_sha256(a["text"]), compiler_version() or "", compiled.host_target())
    object_uri, manifest_uri = cache_uris(*key)
    assert model_sha256(a["text"])[:32] in object_uri and compiler_version() in object_uri
    assert storage.exists(object_uri) and storage.exists(manifest_uri)
    manifest = json.loads(next((folder / "compiled").glob("*.json")).read_text())
    assert manifest["model_sha256"] == model_sha256(a["text"])
    assert manifest["compiler"] == compiler_version()
    # Another model text in the same folder is another key: a miss, then its own entry.
    b_text = models["b"]["text"]
    first = load_or_compile(b_text, to_uri(folder))
    assert not first.cache_hit and load_or_compile(b_text, to_uri(folder)).cache_hit
    assert len(list((folder / "compiled").glob("*.o"))) == 2


def test_a_torn_cache_entry_is_recompiled_not_loaded(models, tmp_path):
    a = models["a"]
    folder = tmp_path / "model"
    shutil.copytree(a["dir"], folder)
    obj = next((folder / "compiled").glob("*.o"))
    obj.write_bytes(obj.read_bytes()[:1000])  # a half-written object: the manifest's sha256 no longer matches
    again = load_or_compile(a["text"], to_uri(folder))
    assert not again.cache_hit
    x, _ = _data(3)
    assert np.array_equal(again.model.predict(x, n_jobs=1), a["booster"].predict(x))


def test_a_mismatched_compiled_object_falls_back_to_lightgbm_with_a_warning(models, tmp_path, caplog):
    """Model b's object under model a's key (with a manifest that vouches for it) is caught by the sample check."""
    a, b = models["a"], models["b"]
    folder = tmp_path / "model"
    shutil.copytree(a["dir"], folder)
    wrong = next((b["dir"] / "compiled").glob("*.o")).read_bytes()
    obj = next((folder / "compiled").glob("*.o"))
    manifest_file = obj.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    obj.write_bytes(wrong)
    manifest_file.write_text(json.dumps({**manifest, "object_sha256": compiled.hashlib.sha256(wrong).hexdigest()}))
    x, _ = _data(5)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        got = compiled_or_booster(a["booster"], a["text"], to_uri(folder), "recsys v7", x[:50], None)
    assert got is a["booster"]
    assert "Compiled model recsys v7 differs from LightGBM" in caplog.text and "sample" in caplog.text


def test_a_mismatch_on_the_first_batch_returns_lightgbm_scores_and_stays_on_lightgbm(models, caplog):
    a, b = models["a"], models["b"]
    fast = CompiledBooster(b["compiled"].model, a["booster"], "recsys v8", threads=1)
    x, _ = _data(9)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        first = fast.predict(x[:500])
    assert fast.engine == "lightgbm" and "recsys v8" in caplog.text and "first batch" in caplog.text
    assert np.array_equal(first, a["booster"].predict(x[:500]))
    assert np.array_equal(fast.predict(x[500:]), a["booster"].predict(x[500:]))


def test_a_matching_model_is_served_compiled(models):
    a = models["a"]
    x, _ = _data(4)
    got = compiled_or_booster(a["booster"], a["text"], a["uri"], "recsys v1", x[:50], a["booster"].current_iteration())
    assert isinstance(got, CompiledBooster)


def test_without_the_extra_or_when_switched_off_lightgbm_scores(models, monkeypatch):
    a = models["a"]
    monkeypatch.setenv(compiled.DISABLE_ENV, "off")
    assert compiled_or_booster(a["booster"], a["text"], a["uri"], "recsys v1", None, None) is a["booster"]
    monkeypatch.delenv(compiled.DISABLE_ENV)
    monkeypatch.setitem(sys.modules, "lleaves", None)  # `import lleaves` now raises ImportError, as when not installed
    assert compiler_version() is None
    assert compiled_or_booster(a["booster"], a["text"], a["uri"], "recsys v1", None, None) is a["booster"]


def test_a_model_serving_fewer_trees_than_it_holds_is_not_compiled(models, caplog):
    a = models["a"]
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        got = compiled_or_booster(a["booster"], a["text"], a["uri"], "recsys v1", None, 5)
    assert got is a["booster"] and "serves 5 of its 30 trees" in caplog.text


def test_max_difference_treats_nan_on_both_sides_as_equal():
    assert max_difference(np.array([1.0, np.nan]), np.array([1.0, np.nan])) == 0.0
    assert max_difference(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == float("inf")
    assert max_difference(np.array([1.0]), np.array([1.0, 2.0])) == float("inf")
    assert max_difference(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == 0.5


def test_unwritable_cache_still_serves_the_compiled_model(models, tmp_path, caplog):
    a = models["a"]

    def refuse(uri: str, data: bytes) -> None:
        raise PermissionError(f"read-only bucket: {uri}")

    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        got = load_or_compile(models["b"]["text"], to_uri(tmp_path / "ro"), write_bytes=refuse)
    assert not got.cache_hit and "Could not cache" in caplog.text
    assert not (Path(tmp_path) / "ro").exists()
    assert a  # the module's models are untouched
