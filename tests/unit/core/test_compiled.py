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
    CompiledModel,
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


class _CountingBooster:
    """A LightGBM booster that counts the rows it is asked to score (the check against the compiled model)."""

    def __init__(self, booster) -> None:
        self.booster, self.rows = booster, 0

    def predict(self, data, **kwargs):
        self.rows += len(data)
        return self.booster.predict(data, **kwargs)

    def current_iteration(self) -> int:
        return self.booster.current_iteration()


def _serve(model: dict, folder: Path, x: np.ndarray, sample: np.ndarray) -> tuple[object, _CountingBooster]:
    """One run: compiled_or_booster as load_model calls it, then ``x`` scored in 4 batches; LightGBM's rows counted."""
    counting = _CountingBooster(model["booster"])
    served = compiled_or_booster(counting, model["text"], to_uri(folder), "recsys v1", sample, None)
    for batch in np.array_split(x, 4):
        served.predict(batch)
    return served, counting


def _unchecked_copy(model: dict, tmp_path: Path) -> Path:
    """A copy of the model's folder with its compiled object but no verdict (never checked)."""
    folder = tmp_path / "model"
    shutil.copytree(model["dir"], folder)
    for verdict in (folder / "compiled").glob("*.verdict.json"):
        verdict.unlink()
    return folder


def _verdict_file(folder: Path) -> Path:
    (found,) = (folder / "compiled").glob("*.verdict.json")
    return found


def test_the_check_against_lightgbm_runs_once_per_model_version(models, tmp_path, caplog):
    a = models["a"]
    folder = _unchecked_copy(a, tmp_path)
    x, _ = _data(11)
    sample = x[:5]
    first, counted = _serve(a, folder, x, sample)
    assert isinstance(first, CompiledBooster) and first.engine == "lleaves"
    assert counted.rows == len(sample) + len(np.array_split(x, 4)[0])  # the sample, then the first batch
    verdict = json.loads(_verdict_file(folder).read_text())
    assert verdict["matches"] is True and verdict["max_difference"] == 0.0
    assert verdict["model_sha256"] == model_sha256(a["text"]) and verdict["rows"] == len(np.array_split(x, 4)[0])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        second, counted = _serve(a, folder, x, sample)
    assert isinstance(second, CompiledBooster) and second.checked and second.engine == "lleaves"
    assert counted.rows == len(sample)  # the cached verdict: only the envelope's few sample rows, every run
    assert "the first batch is not scored twice" in caplog.text
    # Another model text in the same folder is another version: compiled and checked on its own.
    b = models["b"]
    _, counted = _serve(b, folder, x, sample)
    assert counted.rows == len(sample) + len(np.array_split(x, 4)[0])
    assert len(list((folder / "compiled").glob("*.verdict.json"))) == 2
    _, counted = _serve(b, folder, x, sample)
    assert counted.rows == len(sample)


def _checked_folder(model: dict, tmp_path: Path) -> Path:
    """A copy of the model's folder whose compiled object has been checked once (a verdict is cached)."""
    folder = _unchecked_copy(model, tmp_path)
    x, _ = _data(12)
    _serve(model, folder, x, x[:5])
    return folder


@pytest.mark.parametrize(
    "tamper",
    [
        {"object_sha256": "0" * 64},  # about another object
        {"model_sha256": "0" * 64},  # about another model text
        {"compiler": "lleaves-0.0+llvmlite-0.0"},
        {"matches": True, "max_difference": 0.5},  # contradicts itself
        {"matches": "yes"},
        {"rows": 0},
    ],
)
def test_a_verdict_that_does_not_vouch_for_the_object_loaded_is_not_trusted(models, tmp_path, caplog, tamper):
    a = models["a"]
    folder = _checked_folder(a, tmp_path)
    path = _verdict_file(folder)
    path.write_text(json.dumps({**json.loads(path.read_text()), **tamper}))
    x, _ = _data(13)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        served, counted = _serve(a, folder, x, x[:5])
    assert "does not vouch for the object loaded" in caplog.text
    assert counted.rows == 5 + len(np.array_split(x, 4)[0])  # checked again on the first batch
    assert isinstance(served, CompiledBooster) and served.engine == "lleaves"
    assert json.loads(path.read_text())["matches"] is True  # and the verdict rewritten from the check


def test_an_unreadable_verdict_is_no_verdict(models, tmp_path, caplog):
    a = models["a"]
    folder = _checked_folder(a, tmp_path)
    _verdict_file(folder).write_text("{not json")
    x, _ = _data(14)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        _, counted = _serve(a, folder, x, x[:5])
    assert "Could not read the compiled model's verdict" in caplog.text
    assert counted.rows == 5 + len(np.array_split(x, 4)[0])


def test_a_forged_cache_with_a_verdict_that_vouches_for_it_is_caught_by_the_sample(models, tmp_path, caplog):
    """Model b's object under model a's key, its manifest and verdict rewritten to match: the sample check, run
    on every run, still refuses it."""
    a, b = models["a"], models["b"]
    folder = _checked_folder(a, tmp_path)
    wrong = next((b["dir"] / "compiled").glob("*.o")).read_bytes()
    wrong_sha = compiled.hashlib.sha256(wrong).hexdigest()
    obj = next((folder / "compiled").glob("*.o"))
    obj.write_bytes(wrong)
    manifest = obj.with_suffix(".json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "object_sha256": wrong_sha}))
    verdict = _verdict_file(folder)
    verdict.write_text(json.dumps({**json.loads(verdict.read_text()), "object_sha256": wrong_sha}))
    x, _ = _data(15)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        got = compiled_or_booster(a["booster"], a["text"], to_uri(folder), "recsys v9", x[:50], None)
    assert got is a["booster"] and "differs from LightGBM" in caplog.text and "sample" in caplog.text


def test_a_cached_mismatch_scores_with_lightgbm_without_checking_again(models, tmp_path, caplog):
    a = models["a"]
    folder = _checked_folder(a, tmp_path)
    path = _verdict_file(folder)
    path.write_text(json.dumps({**json.loads(path.read_text()), "matches": False, "max_difference": 0.25}))
    x, _ = _data(16)
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        served, counted = _serve(a, folder, x, x[:5])
    assert served is counted  # LightGBM itself scores every row
    assert counted.rows == len(x)
    assert "recsys v1 differed from LightGBM by 0.25" in caplog.text and "compiled" in caplog.text


def test_a_mismatch_on_the_first_batch_is_cached_as_such(models, tmp_path):
    a, b = models["a"], models["b"]
    written: dict[str, bytes] = {}
    wrong = CompiledModel(
        model=b["compiled"].model, cache_hit=True, object_uri=to_uri(tmp_path / "x.o"), identity={"k": "v"}
    )
    fast = CompiledBooster(
        wrong.model,
        a["booster"],
        "recsys v8",
        threads=1,
        on_checked=lambda diff, rows: compiled.write_verdict(wrong, diff, rows, write_bytes=written.__setitem__),
    )
    x, _ = _data(17)
    fast.predict(x[:300])
    record = json.loads(written[compiled.verdict_uri(wrong.object_uri)])
    assert record["matches"] is False and record["max_difference"] > 0 and record["rows"] == 300
    assert compiled._parse_verdict(record, {"k": "v"}) == compiled.Verdict(
        False, record["max_difference"], 300, record["checked_at"]
    )


def test_lists_are_identical_with_and_without_the_cached_verdict_and_with_lightgbm(models, tmp_path):
    a = models["a"]
    folder = _unchecked_copy(a, tmp_path)
    x, _ = _data(18)
    users = pa.array([f"u{i // PER_USER:04d}" for i in range(len(x))])
    items = pa.array([f"i{(i * 7919) % 1000:04d}" for i in range(len(x))])

    def lists(served) -> pa.Table:
        running = TopK(K)
        for rows in np.array_split(np.arange(len(x)), 4):
            running.add(users.take(pa.array(rows)), items.take(pa.array(rows)), served.predict(x[rows]))
        return running.result()

    checked_now = lists(compiled_or_booster(a["booster"], a["text"], to_uri(folder), "v1", x[:5], None))
    from_verdict = compiled_or_booster(a["booster"], a["text"], to_uri(folder), "v1", x[:5], None)
    assert isinstance(from_verdict, CompiledBooster) and from_verdict.checked
    assert lists(from_verdict).equals(checked_now)
    assert lists(a["booster"]).equals(checked_now)
