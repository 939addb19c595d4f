"""Honest evaluation: three time-ordered windows, both scopes, and metrics equal to independent ones."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score

from airflow_ml_provider.core.contract.spec import PipelineSpec, load_spec
from airflow_ml_provider.core.evaluation.offline import (
    bootstrap_lift,
    candidate_recall,
    evaluate_window,
    fill_from,
    list_keys,
    per_list_metrics,
    pick_baseline,
    same_list_for_all,
    top_k,
)
from airflow_ml_provider.core.training.data import split_windows
from tests.paths import PIPELINE

SPEC = load_spec(PIPELINE)


def spec_with(**windows: int) -> PipelineSpec:
    return SPEC.model_copy(update={"windows": SPEC.windows.model_copy(update=windows)})


# --- three windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "windows",
    [
        {},
        {"label_horizon_days": 1, "early_stopping_days": 1, "validation_days": 1, "training_days": 1},
        {"label_horizon_days": 14, "early_stopping_days": 3, "validation_days": 10, "training_days": 40},
        {"early_stopping_days": 0},
    ],
)
def test_three_windows_are_disjoint_time_ordered_and_purged(windows):
    spec = spec_with(**windows)
    end = dt.date(2026, 3, 31)
    fit, early, test = spec.evaluation_windows(end)
    w = spec.windows
    horizon = dt.timedelta(days=w.label_horizon_days)
    assert (len(fit), len(early), len(test)) == (w.training_days, w.early_stopping_days, w.validation_days)
    assert not (set(fit) & set(early)) and not (set(fit) & set(test)) and not (set(early) & set(test))
    # The test window is the newest with complete labels: its last labels end on the run date.
    assert test[-1] + horizon == end
    # Each window's labels, (d, d + horizon], end on or before the next window's first as-of date.
    nxt = early[0] if early else test[0]
    assert fit[-1] + horizon <= nxt
    if early:
        assert early[-1] + horizon <= test[0]
    for days in (fit, early, test):
        assert days == sorted(days) and all((b - a).days == 1 for a, b in itertools.pairwise(days))


def test_training_dates_cover_fit_through_early_stopping_and_the_test_window():
    spec = spec_with()
    fit, early, test = spec.evaluation_windows(dt.date(2026, 3, 31))
    train, valid = spec.training_dates(dt.date(2026, 3, 31))
    assert (train[0], train[-1], valid) == (fit[0], early[-1], test)


def test_the_trainer_split_puts_no_date_in_two_windows_and_drops_the_purge_gap():
    spec = spec_with()
    train, valid = spec.training_dates(dt.date(2026, 3, 31))
    days = [*train, *valid]
    df = pd.DataFrame({"as_of_date": np.repeat(days, 2), "user_id": "u", "item_id": ["a", "b"] * len(days)})
    fit, early, test = split_windows(df, spec, valid[0])
    dates = [set(part["as_of_date"]) for part in (fit, early, test)]
    assert dates[0] == set(spec.evaluation_windows(dt.date(2026, 3, 31)).fit)
    assert not (dates[0] & dates[1] or dates[0] & dates[2] or dates[1] & dates[2])
    horizon = dt.timedelta(days=spec.windows.label_horizon_days)
    assert max(dates[0]) + horizon <= min(dates[1]) and max(dates[1]) + horizon <= min(dates[2])
    gap = set(days) - dates[0] - dates[1] - dates[2]
    assert gap and all(max(dates[0]) < d < min(dates[1]) for d in gap)


# --- metrics against independent implementations -----------------------------------------


def reference_metrics(recommended: list, truth: dict, k: int) -> dict[str, float]:
    """Textbook definitions, one list at a time (written without looking at core.evaluation.offline)."""
    top = recommended[:k]
    positives = {i: r for i, r in truth.items() if r > 0}
    dcg = sum((2 ** truth.get(i, 0) - 1) / math.log2(pos + 2) for pos, i in enumerate(top))
    ideal = sorted(positives.values(), reverse=True)[:k]
    idcg = sum((2**r - 1) / math.log2(pos + 2) for pos, r in enumerate(ideal))
    hits = [i in positives for i in top]
    binary = sum(1 / math.log2(pos + 2) for pos, h in enumerate(hits) if h)
    ideal_binary = sum(1 / math.log2(pos + 2) for pos in range(min(k, len(positives))))
    ap = sum(sum(hits[: n + 1]) / (n + 1) for n, h in enumerate(hits) if h) / min(k, len(positives))
    return {
        "ndcg": dcg / idcg,
        "ndcg_binary": binary / ideal_binary,
        "recall": sum(hits) / len(positives),
        "precision": sum(hits) / k,
        "map": ap,
    }


def random_case(seed: int, k: int, lists: int = 40):
    rng = np.random.default_rng(seed)
    catalog = [f"i{n:03d}" for n in range(60)]
    recs, truth = [], []
    expected = {}
    for n in range(lists):
        lid = f"2026-03-01|u{n}"
        shown = list(rng.choice(catalog, size=k, replace=False))
        done = rng.choice(catalog, size=int(rng.integers(0, 8)), replace=False)
        rel = {str(i): int(rng.integers(1, 4)) for i in done}
        # Make sure some hits happen.
        for i in shown[: int(rng.integers(0, 3))]:
            rel[str(i)] = int(rng.integers(1, 4))
        recs += [(lid, str(i), r + 1) for r, i in enumerate(shown)]
        truth += [(lid, i, r) for i, r in rel.items()]
        if rel:
            expected[lid] = (shown, rel)
    rec = pd.DataFrame(recs, columns=["list_id", "item", "rank"])
    tru = pd.DataFrame(truth, columns=["list_id", "item", "relevance"])
    return rec, tru, expected


@pytest.mark.parametrize(("seed", "k"), [(1, 10), (2, 5), (3, 1), (4, 20)])
def test_end_to_end_metrics_equal_the_textbook_definitions(seed, k):
    rec, truth, expected = random_case(seed, k)
    got = per_list_metrics(rec, truth, k)
    assert sorted(got.index) == sorted(expected)
    for lid, (shown, rel) in expected.items():
        want = reference_metrics([str(i) for i in shown], rel, k)
        assert got.loc[lid].to_dict() == pytest.approx(want, abs=1e-12), lid


@pytest.mark.parametrize(("seed", "k"), [(5, 10), (6, 3)])
def test_ndcg_equals_sklearn_on_untied_lists(seed, k):
    """sklearn's ndcg_score with gains 2^rel - 1 and untied scores: the recommended k get k..1, the rest 0."""
    rec, truth, expected = random_case(seed, k)
    got = per_list_metrics(rec, truth, k)
    for lid, (shown, rel) in expected.items():
        items = sorted({*map(str, shown), *rel})
        score = {str(i): k - r for r, i in enumerate(shown)}
        y_score = [[score.get(i, 0.0) for i in items]]
        y_true = [[2 ** rel.get(i, 0) - 1 for i in items]]
        assert got.loc[lid, "ndcg"] == pytest.approx(ndcg_score(y_true, y_score, k=k), abs=1e-12)
        # Binary gain: every positive gains 1, whatever its grade.
        binary = [[1 if rel.get(i, 0) > 0 else 0 for i in items]]
        assert got.loc[lid, "ndcg_binary"] == pytest.approx(ndcg_score(binary, y_score, k=k), abs=1e-12)


def test_items_never_recommended_count_against_recall_end_to_end():
    rec = pd.DataFrame({"list_id": ["a", "a"], "item": ["x", "y"], "rank": [1, 2]})
    truth = pd.DataFrame({"list_id": ["a", "a", "a", "b"], "item": ["x", "z", "w", "x"], "relevance": [1, 1, 1, 1]})
    got = per_list_metrics(rec, truth, k=2)
    assert got.loc["a", "recall"] == pytest.approx(1 / 3)
    # A list with positives but no recommendation scores zero (it is not dropped).
    assert got.loc["b"].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]


def test_top_k_ranks_by_score_then_item_and_puts_nan_last():
    got = top_k(np.array(["l"] * 4), np.array(["b", "a", "c", "d"]), np.array([1.0, 1.0, np.nan, 2.0]), k=3)
    assert got["item"].tolist() == ["d", "a", "b"]
    assert got["rank"].tolist() == [1, 2, 3]


def test_list_keys_are_one_int_per_list_shared_by_frames_and_sorted_like_date_then_user():
    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    test = pd.DataFrame({"as_of_date": [d2, d1, d1, d2], "user_id": ["b", "b", "a", "b"]})
    truth = pd.DataFrame({"as_of_date": [d1, d2, d1], "user_id": ["c", "b", None]})
    keys, truth_keys = list_keys([test, truth], SPEC)
    assert keys.dtype == np.int64 and truth_keys.dtype == np.int64
    assert keys[0] == keys[3] == truth_keys[1]  # (d2, b) in both frames
    assert len({*keys, *truth_keys}) == 5  # (d1,a) (d1,b) (d1,c) (d1,None) (d2,b): a missing user is its own list
    named = {(str(d), str(u)): key for d, u, key in zip(test["as_of_date"], test["user_id"], keys, strict=True)}
    assert sorted(named, key=named.__getitem__) == sorted(named)  # as the "date|user" strings sorted
    by_date = SPEC.model_copy(update={"evaluation": SPEC.evaluation.model_copy(update={"lists": "as_of_date"})})
    days, _ = list_keys([test, truth], by_date)
    assert days[1] == days[2] != days[0] == days[3]


def test_candidate_recall_counts_positives_outside_the_candidates():
    cands = pd.DataFrame({"list_id": ["a", "a", "b"], "item": ["x", "y", "x"]})
    truth = pd.DataFrame(
        {"list_id": ["a", "a", "b", "b", "c"], "item": ["x", "q", "r", "s", "x"], "relevance": [3, 1, 1, 1, 1]}
    )
    got = candidate_recall(cands, truth)
    # List c has no candidates (never scored); a finds 1 of 2, b 0 of 2.
    assert got == {"mean": 0.25, "pooled": 0.25, "lists": 2, "positives": 4}


def test_short_lists_are_filled_from_the_fallback_in_its_order_without_repeats():
    rec = pd.DataFrame({"list_id": ["a", "b", "b"], "item": ["x", "p", "q"], "rank": [1, 1, 2]})
    fallback = pd.DataFrame(
        {"list_id": ["a", "a", "a", "b", "c"], "item": ["y", "x", "z", "r", "y"], "rank": [1, 2, 3, 1, 1]}
    )
    got = fill_from(rec, fallback, k=3).sort_values(["list_id", "rank"])
    # a: x, then y and z (x is not repeated); b is topped up to 3 with r; c is not a list of rec.
    assert got.values.tolist() == [["a", "x", 1], ["a", "y", 2], ["a", "z", 3], ["b", "p", 1], ["b", "q", 2],
                                   ["b", "r", 3]]  # fmt: skip
    same = same_list_for_all(np.array(["l1", "l2", "l1"]), ["y", "x"])
    assert same.values.tolist() == [["l1", "y", 1], ["l1", "x", 2], ["l2", "y", 1], ["l2", "x", 2]]


def test_the_strongest_baseline_is_the_best_simple_ranker():
    summaries = {
        "global_popularity": {"ndcg": 0.07},
        "candidate_order": {"ndcg": 0.05},
        "candidate_popularity": {"ndcg": 0.07},
    }
    assert pick_baseline(summaries, "strongest", "ndcg") == "global_popularity"  # a tie keeps the documented order
    assert pick_baseline(summaries, "candidate_order", "ndcg") == "candidate_order"
    # A named baseline the run could not compute (no popularity export) falls back to the strongest present.
    del summaries["global_popularity"]
    assert pick_baseline(summaries, "global_popularity", "ndcg") == "candidate_popularity"


def test_bootstrap_interval_brackets_the_lift_and_is_reproducible():
    rng = np.random.default_rng(0)
    base = pd.Series(rng.random(500))
    model = base * 1.2
    ci = bootstrap_lift(model, base, samples=500)
    assert ci["low"] == pytest.approx(0.2) and ci["high"] == pytest.approx(0.2)
    noisy = pd.Series(rng.random(500))
    a, b = bootstrap_lift(noisy, base, 500), bootstrap_lift(noisy, base, 500)
    assert a == b and a["low"] < noisy.mean() / base.mean() - 1 < a["high"]
    assert bootstrap_lift(model.iloc[:0], base.iloc[:0], 100)["low"] is None


def test_bootstrap_resamples_users_not_their_lists():
    """Ten users on 30 dates each: 300 lists, but the interval is as wide as ten draws make it."""
    rng = np.random.default_rng(1)
    effect = np.repeat(rng.normal(0.2, 0.3, 10), 30)  # a user's lift is the same on every date
    base = pd.Series(np.full(300, 0.5))
    model = base * (1 + effect)
    users = pd.Series(np.repeat([f"u{i}" for i in range(10)], 30))
    by_list = bootstrap_lift(model, base, 2000)
    by_user = bootstrap_lift(model, base, 2000, clusters=users)
    assert by_user["clusters"] == 10 and by_list["clusters"] == 300
    # Resampling lists treats 300 copies of 10 opinions as 300 opinions: a far narrower, false interval.
    assert (by_user["high"] - by_user["low"]) > 3 * (by_list["high"] - by_list["low"])


# --- one test window, every scope ----------------------------------------------------------


def test_evaluate_window_labels_scopes_and_uses_the_gates_pick():
    """A hand-computed world: users with candidates, a served user without, and an unserved one."""
    spec = SPEC.model_copy(
        update={"evaluation": SPEC.evaluation.model_copy(update={"k": 2, "candidate_order": "candidate_rank"})}
    )
    day = dt.date(2026, 3, 20)
    # Two users, three candidates each. u1 also bought "z", which was never a candidate.
    test = pd.DataFrame(
        {
            "as_of_date": [day] * 6,
            "user_id": ["u1"] * 3 + ["u2"] * 3,
            "item_id": ["a", "b", "c", "a", "b", "c"],
            "candidate_rank": [1, 2, 3, 3, 2, 1],
            "label": [0, 1, 0, 1, 0, 0],
        }
    )
    fit = pd.DataFrame({"as_of_date": [day - dt.timedelta(days=14)] * 2, "item_id": ["c", "z"], "label": [1, 1]})
    # u3 was active in the lookback but has no candidates (served the popularity list); u4 was not (unserved).
    truth = pd.DataFrame(
        {
            "as_of_date": [day] * 5,
            "user_id": ["u1", "u1", "u2", "u3", "u4"],
            "item_id": ["b", "z", "a", "z", "c"],
            "relevance": [1.0, 3.0, 1.0, 1.0, 1.0],
        }
    )
    popular = pd.DataFrame(
        {
            "as_of_date": [day] * 6,
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u3"],
            "item_id": ["z", "c"] * 3,
            "popularity_rank": [1, 2] * 3,
        }
    )
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.1, 0.2])  # the model ranks b first for u1, a for u2
    out = evaluate_window(test, scores, fit, truth, spec, catalog=4, bootstrap=False, popular=popular)
    assert (out["scope"], out["k"], out["window"]) == ("all_active", 2, "test")
    assert out["test_dates"] == ["2026-03-20", "2026-03-20"]
    cand, e2e, everyone = (out["scopes"][s] for s in ("candidates", "end_to_end", "all_active"))
    assert set(cand) == {"model", "candidate_popularity", "candidate_order"}
    assert set(e2e) == set(everyone) == {"model", "candidate_popularity", "candidate_order", "global_popularity"}
    assert cand["model"]["recall"] == 1.0 and cand["model"]["lists"] == 2
    # End to end (users with candidates) u1 also wanted z (relevance 3): the model found b only.
    assert e2e["model"]["recall"] == pytest.approx((1 / 2 + 1) / 2) and e2e["model"]["lists"] == 2
    # Every active user: u3 gets the popularity list [z, c] and finds z; u4 was not served: a miss.
    assert everyone["model"]["recall"] == pytest.approx((1 / 2 + 1 + 1 + 0) / 4)
    assert (everyone["model"]["lists"], everyone["model"]["users"]) == (4, 4)
    # The popularity list [z, c] for every served user: u1 finds z, u2 nothing, u3 z, u4 unserved.
    assert everyone["global_popularity"]["recall"] == pytest.approx((1 / 2 + 0 + 1 + 0) / 4)
    assert out["candidate_recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["candidate_recall_detail"]["all_active"] == pytest.approx((1 / 2 + 1 + 0 + 0) / 4)
    strongest = max(out["baselines"], key=out["baselines"].get)
    assert out["baseline_name"] == strongest and out["baseline_rule"] == "strongest"
    assert out["model"] == everyone["model"] and out["baseline"] == everyone[strongest]


def test_rows_inference_would_exclude_leave_the_lists_the_truth_and_the_popularity_list():
    """exclude_seen: a seen item can be no hit for any ranker, and the popularity list skips it too."""
    spec = SPEC.model_copy(
        update={
            "evaluation": SPEC.evaluation.model_copy(update={"k": 1, "candidate_order": None}),
            "inference": SPEC.inference.model_copy(update={"exclude_seen": "purchased"}),
        }
    )
    day, before = dt.date(2026, 3, 20), dt.date(2026, 3, 6)
    # u1 rebuys `a` (seen) and buys `b` (new). The model ranks the seen `a` first.
    test = pd.DataFrame(
        {
            "as_of_date": [day] * 3,
            "user_id": ["u1"] * 3,
            "item_id": ["a", "b", "c"],
            "label": [1, 1, 0],
            "seen_before": [True, False, False],
        }
    )
    fit = pd.DataFrame({"as_of_date": [before] * 2, "item_id": ["a", "b"], "label": [1, 1]})
    truth = pd.DataFrame(
        {
            "as_of_date": [day, day, before, before, before],
            "user_id": ["u1", "u1", "u7", "u8", "u9"],
            "item_id": ["a", "b", "a", "a", "b"],
            "relevance": [1.0, 1.0, 1.0, 1.0, 1.0],
            "seen_before": [True, False, False, False, False],
        }
    )
    # The popularity export skips u1's bought `a` (core/evaluation/popularity.py): u1's list is [b].
    popular = pd.DataFrame({"as_of_date": [day], "user_id": ["u1"], "item_id": ["b"], "popularity_rank": [1]})
    out = evaluate_window(
        test, np.array([0.9, 0.5, 0.1]), fit, truth, spec, catalog=3, bootstrap=False, popular=popular
    )
    e2e = out["scopes"]["end_to_end"]
    # Without `a` the model's top 1 is b, the one positive left: recall 1 (it would be 1/2 with `a` counted).
    assert e2e["model"]["recall"] == 1.0 and out["scopes"]["candidates"]["model"]["recall"] == 1.0
    assert e2e["global_popularity"]["recall"] == 1.0
    assert out["candidate_recall"] == 1.0
    assert out["exclude_seen"] == {"rule": "purchased", "candidate_rows": 1, "positives": 1}
    # The same data without the flags counts the seen rebuy: the model's a is then a hit, b a miss.
    plain = evaluate_window(
        test.drop(columns="seen_before"), np.array([0.9, 0.5, 0.1]), fit, truth.drop(columns="seen_before"),
        spec, catalog=3, bootstrap=False,
    )  # fmt: skip
    assert plain["scopes"]["end_to_end"]["model"]["recall"] == 0.5
    assert plain["exclude_seen"] == {"rule": "purchased", "candidate_rows": 0, "positives": 0}


def test_without_truth_only_the_candidate_scope_exists():
    day = dt.date(2026, 3, 20)
    test = pd.DataFrame({"as_of_date": [day] * 2, "user_id": ["u1"] * 2, "item_id": ["a", "b"], "label": [0, 1]})
    fit = test.assign(as_of_date=day - dt.timedelta(days=14))
    spec = SPEC.model_copy(update={"evaluation": SPEC.evaluation.model_copy(update={"candidate_order": None})})
    out = evaluate_window(test, np.array([0.2, 0.1]), fit, None, spec, catalog=2)
    assert (out["scope"], out["baseline_name"]) == ("candidates", "candidate_popularity")
    assert set(out["scopes"]) == {"candidates"} and out["candidate_recall"] is None


def test_lists_per_date_rank_users_not_the_constant_item():
    """Churn-style lists (one per as-of date) rank users; the item column is the same everywhere."""
    spec = SPEC.model_copy(
        update={
            "evaluation": SPEC.evaluation.model_copy(update={"lists": "as_of_date", "k": 2, "candidate_order": None})
        }
    )
    day = dt.date(2026, 3, 20)
    test = pd.DataFrame(
        {"as_of_date": [day] * 4, "user_id": ["a", "b", "c", "d"], "item_id": ["churn"] * 4, "label": [1, 0, 1, 0]}
    )
    out = evaluate_window(test, np.array([0.9, 0.1, 0.8, 0.2]), test, None, spec, catalog=1, bootstrap=False)
    assert out["model"]["precision"] == 1.0 and out["model"]["recall"] == 1.0 and out["model"]["lists"] == 1
