"""Offline ranking metrics at k, the popularity baseline and lift, for the evaluation gate.

Everything is vectorised over rows (one sort, then ``np.bincount`` per group), so millions
of (list, item) rows evaluate in seconds without a Python loop per user.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Keys of the dict ``ranking_metrics`` returns.
METRIC_KEYS = ("ndcg", "recall", "precision", "map", "coverage", "lists")


def _empty_metrics() -> dict[str, float]:
    return {"ndcg": 0.0, "recall": 0.0, "precision": 0.0, "map": 0.0, "coverage": 0.0, "lists": 0}


def _ranks(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index of each run of equal codes in a sorted array, and each row's 1-based rank within its run."""
    new_run = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    starts = np.flatnonzero(new_run)
    run = np.cumsum(new_run) - 1
    return starts, np.arange(len(sorted_codes)) - starts[run] + 1


def ranking_metrics(
    groups: np.ndarray,
    scores: np.ndarray,
    relevance: np.ndarray,
    items: np.ndarray,
    k: int,
    catalog_size: int,
) -> dict[str, float]:
    """NDCG, recall, precision, MAP and coverage at ``k`` over ranking lists; see the definitions below.

    Each distinct value of ``groups`` is one ranking list (e.g. a code for (as_of_date, user_id)).
    Its rows are ranked by ``scores`` descending (NaN last), ties broken by ``items`` ascending,
    so the ranking is deterministic. Rank starts at 1; a list shorter than ``k`` uses what exists.

    - relevance is graded: a row with relevance > 0 is relevant; 0, negative or NaN is not.
    - ndcg@k = DCG@k / IDCG@k with gain 2^rel - 1 and discount log2(rank + 1); IDCG ranks the
      list's own relevances descending.
    - recall@k = relevant rows in the top k / relevant rows in the list.
    - precision@k = relevant rows in the top k / k (k, not the list length).
    - map@k = sum of precision@i over relevant top-k positions i, / min(k, relevant rows in the list).
    - ndcg, recall, precision and map are means over the lists with at least one relevant row;
      ``lists`` is how many such lists there are (0 gives 0.0 metrics).
    - coverage = distinct items in any list's top k / ``catalog_size`` (not clipped at 1).
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}; pass the evaluation.k of the contract.")
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be at least 1, got {catalog_size}; pass the number of items.")
    n = len(groups)
    if not len(scores) == len(relevance) == len(items) == n:
        raise ValueError(
            f"groups, scores, relevance and items must have the same length, got "
            f"{n}, {len(scores)}, {len(relevance)} and {len(items)}."
        )
    if n == 0:
        return _empty_metrics()

    group_codes, group_names = pd.factorize(np.asarray(groups), use_na_sentinel=False)
    item_codes, _ = pd.factorize(np.asarray(items), sort=True, use_na_sentinel=False)
    score = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(relevance, dtype=np.float64)
    n_groups = len(group_names)

    # lexsort: last key is primary. NaN scores sort last because -NaN is NaN.
    order = np.lexsort((item_codes, -score, group_codes))
    g = group_codes[order]
    starts, rank = _ranks(g)  # group codes are dense 0..n_groups-1, so starts[g] is each row's group start
    top = rank <= k
    discount = np.log2(rank + 1.0)

    relevant_mask = rel > 0
    gain = np.where(relevant_mask, np.expm1(np.where(relevant_mask, rel, 0.0) * math.log(2.0)), 0.0)
    hit = relevant_mask[order]

    dcg = np.bincount(g, weights=np.where(top, gain[order] / discount, 0.0), minlength=n_groups)
    # Only relevant rows carry gain, so the ideal ranking sorts just those (usually a small share).
    ideal = np.flatnonzero(relevant_mask)
    ideal = ideal[np.lexsort((-gain[ideal], group_codes[ideal]))]
    ideal_groups = group_codes[ideal]
    _, ideal_rank = _ranks(ideal_groups)
    ideal_weights = np.where(ideal_rank <= k, gain[ideal] / np.log2(ideal_rank + 1.0), 0.0)
    idcg = np.bincount(ideal_groups, weights=ideal_weights, minlength=n_groups)

    n_relevant = np.bincount(g, weights=hit, minlength=n_groups)
    hits = np.bincount(g, weights=hit & top, minlength=n_groups)

    cum = np.cumsum(hit)
    before = np.r_[0, cum][starts]
    precision_at_i = (cum - before[g]) / rank
    ap_sum = np.bincount(g, weights=np.where(hit & top, precision_at_i, 0.0), minlength=n_groups)

    coverage = len(np.unique(item_codes[order][top])) / catalog_size
    scored = n_relevant > 0
    lists = int(scored.sum())
    if lists == 0:
        return {**_empty_metrics(), "coverage": float(coverage)}
    nrel = n_relevant[scored]
    return {
        "ndcg": float(np.mean(dcg[scored] / idcg[scored])),
        "recall": float(np.mean(hits[scored] / nrel)),
        "precision": float(np.mean(hits[scored] / k)),
        "map": float(np.mean(ap_sum[scored] / np.minimum(k, nrel))),
        "coverage": float(coverage),
        "lists": lists,
    }


def popularity_scores(train_items: np.ndarray, train_relevance: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Popularity baseline: per item, the number of training rows with relevance > 0 (0 if unseen), float64."""
    if len(train_items) != len(train_relevance):
        raise ValueError(
            f"train_items and train_relevance must have the same length, got {len(train_items)} "
            f"and {len(train_relevance)}."
        )
    positive = np.asarray(train_relevance, dtype=np.float64) > 0
    counts = pd.Series(np.asarray(train_items)[positive]).value_counts(dropna=False)
    position = counts.index.get_indexer(pd.Index(np.asarray(items)))
    # An unseen item gets position -1, which picks the trailing 0.
    return np.append(counts.to_numpy(dtype=np.float64), 0.0)[position]


def lift(model: float, baseline: float) -> float:
    """Relative lift of a model metric over a baseline (model / baseline - 1); inf or 0.0 when baseline is 0."""
    if baseline == 0:
        return math.inf if model > 0 else 0.0
    return model / baseline - 1
