"""core/inference/scoring.py with a real LightGBM model: streamed top-k equals one-shot top-k, duplicates refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_ml_provider.core.contract.model_hooks import DEFAULT_HOOKS
from airflow_ml_provider.core.contract.spec import FeatureColumn
from airflow_ml_provider.core.inference.scoring import DistinctValues, check_unique_pairs, score_batches, top_k
from airflow_ml_provider.core.training.encoding import FeatureDataError, encode

lgb = pytest.importorskip("lightgbm")

FEATURES = [FeatureColumn(name="x", type="FLOAT64"), FeatureColumn(name="c", type="STRING")]
CATEGORIES = {"c": ["a", "b", "c"]}


class _Envelope:
    """The three envelope fields score_batches reads (a full Envelope needs a trained model folder)."""

    name, version, best_iteration = "m", "1", 0
    features, categories = FEATURES, CATEGORIES

    def feature_names(self) -> list[str]:
        return [f.name for f in FEATURES]


def _candidates(users: int, per_user: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = users * per_user
    order = rng.permutation(n)  # users' rows spread over every batch, not clustered
    return pa.table(
        {
            "user_id": pa.array([f"u{i // per_user:04d}" for i in order]),
            "item_id": pa.array([f"i{(i * 7919) % 997:04d}" for i in order]),
            "x": pa.array(np.round(rng.normal(size=n), 1)),  # coarse: exact score ties occur
            "c": pa.array(rng.choice(["a", "b", "c"], n)),
        }
    )


@pytest.fixture(scope="module")
def booster():
    table = _candidates(200, 20, seed=1)
    matrix = encode(table.to_pandas(), FEATURES, CATEGORIES).matrix
    label = (matrix[:, 0] + (matrix[:, 1] == 2) > 0.5).astype(float)
    order = np.argsort(table["user_id"].to_numpy(zero_copy_only=False), kind="stable")
    data = lgb.Dataset(matrix[order], label[order], group=[20] * 200, categorical_feature=[1])
    params = {"objective": "lambdarank", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 1}
    return lgb.train(params, data, num_boost_round=5)


@pytest.mark.parametrize("batch_rows", [37, 1000, 10_000])
def test_streamed_lists_equal_one_shot_top_k_whatever_the_batching(booster, batch_rows):
    table = _candidates(300, 25, seed=2)
    matrix = encode(table.to_pandas(), FEATURES, CATEGORIES).matrix
    expected = top_k(table["user_id"], table["item_id"], booster.predict(matrix), 4)
    got, stats = score_batches(table.to_batches(max_chunksize=batch_rows), booster, _Envelope(), DEFAULT_HOOKS, 4)
    assert stats.rows == table.num_rows and stats.batches == -(-table.num_rows // batch_rows)
    assert stats.candidate_items == len(set(table["item_id"].to_pylist()))  # counted on the way, no second scan
    assert got.sort_by([("user_id", "ascending"), ("rank", "ascending")]).equals(
        expected.sort_by([("user_id", "ascending"), ("rank", "ascending")])
    )


def test_a_pair_listed_twice_is_refused_even_when_its_two_rows_score_differently():
    lists = pa.table(
        {
            "user_id": ["u1", "u1", "u2", "u1", "u2", "u3"],
            "item_id": ["a", "b", "a", "c", "b", "a"],
            "score": [0.9, 0.5, 0.4, 0.3, 0.2, 0.1],
        }
    )
    check_unique_pairs(lists, ("user_id", "item_id"), "x")  # same item for other users, same user other items
    twice = pa.concat_tables([lists, lists.slice(1, 1).set_column(2, "score", pa.array([0.01]))])
    with pytest.raises(FeatureDataError, match=r"x: 1 duplicate \(user_id, item_id\) candidate pair\(s\).*'u1', 'b'"):
        check_unique_pairs(twice, ("user_id", "item_id"), "x")
    thrice = pa.concat_tables([twice, lists.slice(1, 1), lists.slice(5, 1)])
    with pytest.raises(FeatureDataError, match=r"x: 2 duplicate"):
        check_unique_pairs(thrice, ("user_id", "item_id"), "x")


def test_no_candidates_is_an_error_that_names_the_source(booster):
    empty = pd.DataFrame({"user_id": [], "item_id": [], "x": [], "c": []}).astype({"c": "string", "x": float})
    batches = pa.Table.from_pandas(empty, preserve_index=False).to_batches()
    with pytest.raises(Exception, match="features partition: no candidate rows to score"):
        score_batches(batches, booster, _Envelope(), DEFAULT_HOOKS, 3, source="features partition")


def test_an_error_on_the_predict_thread_reaches_the_caller(booster):
    class Failing:
        """LightGBM failing on the third batch (a stand-in: a real booster cannot be made to fail mid-run)."""

        calls = 0

        def predict(self, matrix, num_iteration=None):
            Failing.calls += 1
            if Failing.calls == 3:
                raise RuntimeError("predict failed on batch 3")
            return booster.predict(matrix)

    table = _candidates(100, 10, seed=3)
    with pytest.raises(RuntimeError, match="predict failed on batch 3"):
        score_batches(table.to_batches(max_chunksize=100), Failing(), _Envelope(), DEFAULT_HOOKS, 3)


def test_distinct_values_over_many_batches_count_each_value_once_and_stay_small():
    rng = np.random.default_rng(3)
    seen, expected = DistinctValues(), set()
    for _ in range(300):  # 300,000 values in all: merged several times on the way
        values = [f"i{v}" for v in rng.integers(0, 20_000, 1000)] + [None]
        expected.update(v for v in values if v is not None)
        seen.add(pa.array(values, pa.string()))
    assert seen._size <= 100_000 + 1001  # merged on the way: not every batch's values kept
    assert seen.count() == len(expected)  # nulls are not items


def _clip_by_assignment(df: pd.DataFrame) -> pd.DataFrame:
    df["x"] = df["x"].clip(upper=0.5)  # replaces the column
    return df


def _clip_in_place(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[df["x"] > 0.5, "x"] = 0.5  # writes into the column
    return df


@pytest.mark.parametrize("transform", [_clip_by_assignment, _clip_in_place])
def test_a_transform_scores_as_on_a_consolidated_frame_whether_it_replaces_or_edits_columns(booster, transform):
    from airflow_ml_provider.core.contract.model_hooks import ModelHooks

    table = _candidates(300, 25, seed=3)
    matrix = encode(transform(table.to_pandas()), FEATURES, CATEGORIES).matrix  # the old path: to_pandas()
    expected = top_k(table["user_id"], table["item_id"], booster.predict(matrix), 4)
    hooks = ModelHooks(params=lambda d: d, transform=transform)
    got, _ = score_batches(table.to_batches(max_chunksize=1000), booster, _Envelope(), hooks, 4)
    assert got.sort_by([("user_id", "ascending"), ("rank", "ascending")]).equals(
        expected.sort_by([("user_id", "ascending"), ("rank", "ascending")])
    )
    assert table["x"].to_pylist() == _candidates(300, 25, seed=3)["x"].to_pylist()  # the batch is never edited


@pytest.mark.parametrize("null_users", [False, True])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_batch_best_keeps_the_rows_top_k_keeps(k, null_users):
    from airflow_ml_provider.core.inference.scoring import batch_best

    rng = np.random.default_rng(k)
    n = 3000
    users = [f"u{u:03d}" for u in rng.integers(0, 150, n)]
    if null_users:
        users = [None if rng.random() < 0.05 else u for u in users]
    table = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array([f"i{i}" for i in rng.integers(0, 40, n)]),  # repeated pairs: exact ties too
        }
    )
    scores = np.round(rng.normal(size=n), 1)  # coarse: many exact score ties, broken by item
    scores[rng.random(n) < 0.01] = np.nan
    chunked = pa.chunked_array([table["user_id"].chunk(0).slice(0, 1000), table["user_id"].chunk(0).slice(1000)])
    key = [("user_id", "ascending"), ("score", "descending"), ("item_id", "ascending")]
    expected = top_k(table["user_id"], table["item_id"], scores, k).drop_columns(["rank"]).sort_by(key)
    for users_column in (table["user_id"].chunk(0), chunked):
        got = batch_best(users_column, table["item_id"].chunk(0), scores, k)
        got = got.sort_by(key)
        assert got.select(["user_id", "item_id"]).equals(expected.select(["user_id", "item_id"]))
        np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())  # NaN equals NaN
