"""Ranking metrics match their written definitions, a brute-force reference, and stay deterministic."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_ml_provider.core.evaluation.metrics import METRIC_KEYS, lift, popularity_scores, ranking_metrics

LOG2_3 = math.log2(3)


def metrics(groups, scores, relevance, items, k, catalog_size=10):
    return ranking_metrics(
        np.asarray(groups), np.asarray(scores, dtype=float), np.asarray(relevance), np.asarray(items), k, catalog_size
    )


def reference_metrics(rows, k, catalog_size):
    """Pure-Python, per-list implementation of the definitions; rows are (group, item, score, relevance)."""
    lists = defaultdict(list)
    for group, item, score, rel in rows:
        lists[group].append((item, score, rel))
    per_list, top_items = [], set()
    for entries in lists.values():
        ranked = sorted(entries, key=lambda e: (-e[1], e[0]))
        top_items.update(e[0] for e in ranked[:k])
        rels = [e[2] for e in ranked]
        n_relevant = sum(1 for r in rels if r > 0)
        if n_relevant == 0:
            continue
        gains = [2**r - 1 if r > 0 else 0.0 for r in rels]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains, reverse=True)[:k]))
        hits, precision_sum = 0, 0.0
        for i, r in enumerate(rels[:k], start=1):
            if r > 0:
                hits += 1
                precision_sum += hits / i
        per_list.append((dcg / idcg, hits / n_relevant, hits / k, precision_sum / min(k, n_relevant)))
    out = {"coverage": len(top_items) / catalog_size if rows else 0.0, "lists": len(per_list)}
    for j, key in enumerate(("ndcg", "recall", "precision", "map")):
        out[key] = sum(p[j] for p in per_list) / len(per_list) if per_list else 0.0
    return out


def test_returns_exactly_the_documented_keys():
    assert set(metrics([0], [1.0], [1], ["a"], k=1)) == set(METRIC_KEYS)


def test_hand_computed_three_item_list():
    # Ranked a, b, c with relevances [0, 3, 1]: gains 0, 7, 1 at ranks 1, 2, 3.
    m = metrics([0, 0, 0], [3.0, 2.0, 1.0], [0, 3, 1], ["a", "b", "c"], k=3)
    dcg = 7 / LOG2_3 + 1 / 2
    idcg = 7 / 1 + 1 / LOG2_3
    assert m["ndcg"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert m["recall"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["coverage"] == pytest.approx(3 / 10)
    assert m["lists"] == 1


def test_hand_computed_three_item_list_at_k_2():
    m = metrics([0, 0, 0], [3.0, 2.0, 1.0], [0, 3, 1], ["a", "b", "c"], k=2)
    assert m["ndcg"] == pytest.approx((7 / LOG2_3) / (7 + 1 / LOG2_3), abs=1e-12)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["map"] == pytest.approx((1 / 2) / 2)  # precision@2 over min(k=2, relevant=2)
    assert m["coverage"] == pytest.approx(2 / 10)


def test_map_divides_by_k_when_a_list_has_more_relevant_rows_than_k():
    # Relevances in rank order [1, 0, 1, 1]; k=2 -> only rank 1 hits; divide by min(2, 3) = 2.
    m = metrics([0] * 4, [4.0, 3.0, 2.0, 1.0], [1, 0, 1, 1], ["a", "b", "c", "d"], k=2)
    assert m["map"] == pytest.approx(1 / 2)
    assert m["recall"] == pytest.approx(1 / 3)


def test_rows_arrive_in_any_order_and_groups_need_not_be_contiguous():
    ordered = metrics([0, 0, 0, 1, 1], [3, 2, 1, 2, 1], [0, 3, 1, 1, 0], ["a", "b", "c", "a", "d"], k=2)
    shuffled = metrics([1, 0, 1, 0, 0], [1, 1, 2, 3, 2], [0, 1, 1, 0, 3], ["d", "c", "a", "a", "b"], k=2)
    assert shuffled == ordered


def test_means_are_over_lists_with_a_relevant_row_but_coverage_counts_every_list():
    # List 0: relevant item ranked first (ndcg 1). List 1: relevant item ranked second. List 2: nothing relevant.
    m = metrics(
        ["u0", "u0", "u1", "u1", "u2", "u2"],
        [2, 1, 2, 1, 2, 1],
        [1, 0, 0, 1, 0, 0],
        ["a", "b", "c", "d", "e", "f"],
        k=1,
    )
    assert m["lists"] == 2
    assert m["ndcg"] == pytest.approx((1 + 0) / 2)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["map"] == pytest.approx(1 / 2)
    assert m["coverage"] == pytest.approx(3 / 10)  # a, c, e


def test_equal_scores_are_ranked_by_item_ascending_whatever_the_row_order():
    for items, rel in [(["b", "a", "c"], [0, 1, 0]), (["c", "b", "a"], [0, 0, 1]), (["a", "c", "b"], [1, 0, 0])]:
        m = metrics([0, 0, 0], [1.0, 1.0, 1.0], rel, items, k=1)
        assert m["precision"] == 1.0  # "a" is first
        assert m["ndcg"] == 1.0


def test_integer_items_break_ties_numerically():
    m = metrics([0, 0, 0], [0.5, 0.5, 0.5], [0, 0, 1], [10, 9, 2], k=1)
    assert m["precision"] == 1.0


def test_nan_scores_rank_last():
    m = metrics([0, 0], [np.nan, 0.1], [1, 0], ["a", "b"], k=1)
    assert m["precision"] == 0.0


def test_k_larger_than_the_list_uses_what_exists_and_precision_still_divides_by_k():
    m = metrics([0, 0], [2.0, 1.0], [1, 1], ["a", "b"], k=5)
    assert m["ndcg"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["map"] == pytest.approx(1.0)  # (1/1 + 2/2) / min(5, 2)
    assert m["coverage"] == pytest.approx(2 / 10)


def test_perfect_ranking_gives_ndcg_one_with_graded_relevance():
    m = metrics([0] * 4, [4.0, 3.0, 2.0, 1.0], [3, 2, 1, 0], ["a", "b", "c", "d"], k=3)
    assert m["ndcg"] == pytest.approx(1.0, abs=1e-15)


def test_graded_relevance_uses_exponential_gain():
    # Ranked [1, 2]: DCG = 1 + 3/log2(3); ideal [2, 1]: 3 + 1/log2(3).
    m = metrics([0, 0], [2.0, 1.0], [1, 2], ["a", "b"], k=2)
    assert m["ndcg"] == pytest.approx((1 + 3 / LOG2_3) / (3 + 1 / LOG2_3), abs=1e-12)


def test_empty_input_gives_zeros():
    m = metrics([], [], [], [], k=10)
    assert m == {"ndcg": 0.0, "recall": 0.0, "precision": 0.0, "map": 0.0, "coverage": 0.0, "lists": 0}


def test_no_relevant_rows_gives_zero_metrics_but_coverage():
    m = metrics([0, 0, 1], [1.0, 2.0, 3.0], [0, 0, 0], ["a", "b", "c"], k=1, catalog_size=4)
    assert m == {"ndcg": 0.0, "recall": 0.0, "precision": 0.0, "map": 0.0, "coverage": 0.5, "lists": 0}


def test_coverage_counts_distinct_top_k_items_over_the_catalog():
    # Both lists put "a" first; at k=1 only "a" is shown, at k=2 "a", "b" and "c".
    args = ([0, 0, 0, 1, 1, 1], [3, 2, 1, 3, 2, 1], [1, 0, 0, 1, 0, 0], ["a", "b", "z", "a", "c", "z"])
    assert metrics(*args, k=1, catalog_size=4)["coverage"] == pytest.approx(1 / 4)
    assert metrics(*args, k=2, catalog_size=4)["coverage"] == pytest.approx(3 / 4)
    assert metrics(*args, k=3, catalog_size=4)["coverage"] == pytest.approx(4 / 4)


@pytest.mark.parametrize(
    ("k", "catalog_size", "lengths", "match"),
    [
        (0, 10, (1, 1), "k must be a positive integer"),
        (1, 0, (1, 1), "catalog_size must be at least 1"),
        (1, 10, (2, 1), "same length"),
    ],
)
def test_bad_arguments_raise_sentences(k, catalog_size, lengths, match):
    n, m = lengths
    with pytest.raises(ValueError, match=match):
        ranking_metrics(np.zeros(n), np.zeros(m), np.zeros(m), np.zeros(m), k, catalog_size)


ROW = st.tuples(
    st.integers(0, 4),  # group
    st.sampled_from([f"i{j}" for j in range(12)]),  # item: "i10" < "i2" as strings, which is the tie order
    st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0]),  # few scores, so ties are common
    st.sampled_from([0, 0, 0, 1, 2, 3, 0.5]),  # graded relevance, mostly not relevant
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(ROW, max_size=40, unique_by=lambda r: (r[0], r[1])), k=st.integers(1, 6))
def test_vectorised_matches_brute_force_reference(rows, k):
    catalog_size = 12
    expected = reference_metrics(rows, k, catalog_size)
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    got = metrics(cols[0], cols[2], cols[3], np.array(cols[1], dtype=object), k, catalog_size)
    assert got["lists"] == expected["lists"]
    for key in ("ndcg", "recall", "precision", "map", "coverage"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_large_input_is_vectorised():
    rng = np.random.default_rng(7)
    n = 200_000
    groups = rng.integers(0, 5_000, n)
    relevance = (rng.random(n) < 0.1) * rng.integers(1, 4, n)
    m = ranking_metrics(groups, rng.random(n), relevance, rng.integers(0, 2_000, n), 10, 2_000)
    assert 0 < m["ndcg"] < 1
    assert m["lists"] > 4_000


def test_popularity_counts_relevant_training_rows_per_item():
    scores = popularity_scores(
        np.array(["a", "a", "b", "a", "c"]), np.array([1, 2, 0, 0, 1]), np.array(["c", "a", "b", "unseen", "a"])
    )
    assert scores.dtype == np.float64
    assert scores.tolist() == [1.0, 2.0, 0.0, 0.0, 2.0]


def test_popularity_with_no_training_rows_is_all_zero():
    scores = popularity_scores(np.array([], dtype=object), np.array([]), np.array(["a", "b"]))
    assert scores.tolist() == [0.0, 0.0]


def test_popularity_ranks_like_a_baseline():
    train_items = np.array([1, 1, 1, 2, 2, 3])
    items = np.array([3, 2, 1])
    scores = popularity_scores(train_items, np.ones(6), items)
    m = ranking_metrics(np.zeros(3), scores, np.array([0, 0, 1]), items, k=1, catalog_size=3)
    assert m["precision"] == 1.0


@pytest.mark.parametrize(
    ("model", "baseline", "expected"),
    [(0.12, 0.10, 0.2), (0.05, 0.10, -0.5), (0.1, 0.1, 0.0), (0.3, 0.0, math.inf), (0.0, 0.0, 0.0)],
)
def test_lift(model, baseline, expected):
    assert lift(model, baseline) == pytest.approx(expected)
