"""Honest offline evaluation: top-k lists scored against what users did, per scope, with a CI.

Two scopes, always labelled:

- ``candidates``: the top k of a user's candidates against the positives among those
  candidates (re-ranking quality; a perfect ranker of bad candidates scores high here).
- ``end_to_end``: the same top k against every interaction of the user in the label horizon,
  candidates or not, so what the candidate generator missed counts.

A list is one (as-of date, user); only lists with at least one positive are scored, and
``lists`` says how many there were. With ``inference.exclude_seen``, rows flagged
``seen_before`` (what batch inference would exclude) leave the lists and the truth alike, and the
global popularity list skips them too: every ranker is scored on the items it could serve.
Metrics are means over lists, so a bootstrap over lists
gives the uncertainty of a lift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from airflow_ml_provider.core.contract.spec import PipelineSpec
from airflow_ml_provider.core.evaluation.metrics import lift, popularity_scores
from airflow_ml_provider.core.training.data import as_days, day_range
from airflow_ml_provider.core.training.job import SEEN

LIST = "list_id"
ITEM = "item"
RANK = "rank"
REL = "relevance"
#: The metrics every scope reports per list (means over lists) besides ``coverage`` and ``lists``.
PER_LIST = ("ndcg", "recall", "precision", "map")


def top_k(lists: np.ndarray, items: np.ndarray, scores: np.ndarray, k: int) -> pd.DataFrame:
    """The k best items of every list by score descending (NaN last), ties by item ascending; rank from 1."""
    frame = pd.DataFrame({LIST: lists, ITEM: items, "score": np.asarray(scores, dtype=np.float64)})
    # -NaN is NaN, and sort_values puts NaN last.
    frame["neg"] = -frame["score"]
    frame = frame.sort_values([LIST, "neg", ITEM], kind="stable", na_position="last")
    frame[RANK] = frame.groupby(LIST, sort=False).cumcount() + 1
    return frame.loc[frame[RANK] <= k, [LIST, ITEM, RANK]].reset_index(drop=True)


def same_list_for_all(lists: np.ndarray, ranked_items: list[object]) -> pd.DataFrame:
    """One fixed ranked list (e.g. global popularity) recommended to every list id in ``lists``."""
    ids = pd.unique(np.asarray(lists))
    n = len(ranked_items)
    return pd.DataFrame(
        {
            LIST: np.repeat(ids, n),
            ITEM: np.tile(np.asarray(ranked_items, dtype=object), len(ids)),
            RANK: np.tile(np.arange(1, n + 1), len(ids)),
        }
    )


def per_list_metrics(recommended: pd.DataFrame, truth: pd.DataFrame, k: int) -> pd.DataFrame:
    """ndcg, recall, precision and map at k of every list with a positive in ``truth``.

    ``recommended``: list_id, item, rank (1-based, at most k per list). ``truth``: list_id,
    item, relevance (rows with relevance > 0 are positives; one row per list and item).
    Gain is 2^rel - 1, discount log2(rank + 1); the ideal ranks the list's positives by
    relevance. recall = hits / positives, precision = hits / k, map = sum of precision@i at
    hits / min(k, positives). A list with no recommendation scores 0. Index: list_id.
    """
    pos = truth.loc[truth[REL] > 0, [LIST, ITEM, REL]]
    rec = recommended.loc[recommended[RANK] <= k, [LIST, ITEM, RANK]]
    hits = rec.merge(pos, on=[LIST, ITEM], how="inner").sort_values([LIST, RANK], kind="stable")
    hits["gain"] = np.expm1(hits[REL].to_numpy(dtype=np.float64) * math.log(2.0))
    hits["dcg"] = hits["gain"] / np.log2(hits[RANK].to_numpy(dtype=np.float64) + 1.0)
    hits["nth"] = hits.groupby(LIST, sort=False).cumcount() + 1
    hits["prec_at"] = hits["nth"] / hits[RANK]

    ideal = pos.sort_values([LIST, REL], ascending=[True, False], kind="stable")
    ideal = ideal.assign(pos_rank=ideal.groupby(LIST, sort=False).cumcount() + 1)
    ideal = ideal[ideal["pos_rank"] <= k]
    ideal_dcg = (np.expm1(ideal[REL].to_numpy(dtype=np.float64) * math.log(2.0))) / np.log2(
        ideal["pos_rank"].to_numpy(dtype=np.float64) + 1.0
    )
    out = pd.DataFrame(
        {
            "positives": pos.groupby(LIST).size(),
            "idcg": pd.Series(ideal_dcg, index=ideal[LIST].to_numpy()).groupby(level=0).sum(),
        }
    )
    by = hits.groupby(LIST)
    out["hits"] = by.size().reindex(out.index, fill_value=0)
    out["dcg"] = by["dcg"].sum().reindex(out.index, fill_value=0.0)
    out["ap_sum"] = by["prec_at"].sum().reindex(out.index, fill_value=0.0)
    return pd.DataFrame(
        {
            "ndcg": out["dcg"] / out["idcg"],
            "recall": out["hits"] / out["positives"],
            "precision": out["hits"] / k,
            "map": out["ap_sum"] / np.minimum(k, out["positives"]),
        },
        index=out.index.rename(LIST),
    )


def summarise(per_list: pd.DataFrame, recommended: pd.DataFrame, catalog_size: int) -> dict[str, float]:
    """Means over lists, coverage of the catalog by the recommended items, and the number of lists."""
    lists = len(per_list)
    out = {m: float(per_list[m].mean()) if lists else 0.0 for m in PER_LIST}
    out["coverage"] = float(recommended[ITEM].nunique() / catalog_size) if catalog_size else 0.0
    out["lists"] = lists
    return out


def candidate_recall(candidates: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """The share of next-horizon positives that are among the candidates: mean over lists and pooled.

    ``candidates``: list_id, item (every candidate). ``truth``: list_id, item, relevance; only
    lists that have candidates count (a user with no candidates was never scored).
    """
    pos = truth.loc[(truth[REL] > 0) & truth[LIST].isin(candidates[LIST].unique()), [LIST, ITEM]]
    if pos.empty:
        return {"mean": 0.0, "pooled": 0.0, "lists": 0, "positives": 0}
    found = pos.merge(candidates[[LIST, ITEM]].drop_duplicates(), on=[LIST, ITEM], how="left", indicator=True)
    found["hit"] = found["_merge"] == "both"
    per_list = found.groupby(LIST)["hit"].mean()
    return {
        "mean": float(per_list.mean()),
        "pooled": float(found["hit"].mean()),
        "lists": len(per_list),
        "positives": len(found),
    }


def bootstrap_lift(
    model: pd.Series, baseline: pd.Series, samples: int, confidence: float = 0.95, seed: int = 7
) -> dict[str, float | int | None]:
    """Percentile bootstrap CI of mean(model) / mean(baseline) - 1, resampling lists with replacement.

    ``model`` and ``baseline`` are per-list values on the same lists (aligned by index).
    Resamples whose baseline mean is 0 have no finite lift and are left out of the interval.
    """
    m, b = model.align(baseline, join="inner")
    n = len(m)
    if n == 0 or samples == 0:
        return {"low": None, "high": None, "confidence": confidence, "samples": 0}
    mv, bv = m.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    lifts: list[np.ndarray] = []
    chunk = max(1, 2_000_000 // n)  # bounds memory to a few million indices at a time
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n), dtype=np.int64)
        mm, bm = mv[idx].mean(axis=1), bv[idx].mean(axis=1)
        ok = bm > 0
        lifts.append(mm[ok] / bm[ok] - 1)
    values = np.concatenate(lifts)
    if values.size == 0:
        return {"low": None, "high": None, "confidence": confidence, "samples": 0}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"low": float(low), "high": float(high), "confidence": confidence, "samples": int(values.size)}


def popular_unseen(lists: np.ndarray, ranked_items: list[object], seen: pd.DataFrame, k: int) -> pd.DataFrame:
    """The popularity list per list id without the list's ``seen`` items (list_id, item), topped up to k."""
    if seen.empty:
        return same_list_for_all(lists, ranked_items[:k])
    every = same_list_for_all(lists, ranked_items)
    every = every.merge(seen.drop_duplicates(), on=[LIST, ITEM], how="left", indicator=True)
    every = every[every["_merge"] == "left_only"].sort_values([LIST, RANK], kind="stable")
    every[RANK] = every.groupby(LIST, sort=False).cumcount() + 1
    return every.loc[every[RANK] <= k, [LIST, ITEM, RANK]].reset_index(drop=True)


def drop_seen(
    test: pd.DataFrame, scores: np.ndarray, truth: pd.DataFrame | None
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None, pd.DataFrame, dict[str, int]]:
    """Test rows, their scores and the truth without ``seen_before`` rows; the dropped rows; counts.

    Without the column (an export from before it existed) nothing is dropped.
    """
    scores = np.asarray(scores, dtype=np.float64)
    empty = test.iloc[0:0]
    if SEEN not in test.columns:
        return test, scores, truth, empty, {"candidate_rows": 0, "positives": 0}
    seen = test[SEEN].fillna(False).to_numpy(dtype=bool)
    dropped_truth = empty
    positives = 0
    if truth is not None and SEEN in truth.columns:
        truth_seen = truth[SEEN].fillna(False).to_numpy(dtype=bool)
        dropped_truth, truth, positives = truth[truth_seen], truth[~truth_seen], int(truth_seen.sum())
    dropped = pd.concat([test[seen], dropped_truth], ignore_index=True) if len(dropped_truth) else test[seen]
    return test[~seen], scores[~seen], truth, dropped, {"candidate_rows": int(seen.sum()), "positives": positives}


def popular_items(items: np.ndarray, users: np.ndarray, k: int) -> list[object]:
    """The global popularity list: the k items with the most distinct (list) positives, ties by item ascending."""
    frame = pd.DataFrame({ITEM: items, "u": users}).drop_duplicates()
    return most_popular(frame.groupby(ITEM).size(), k)


def most_popular(counts: pd.Series, k: int) -> list[object]:
    """The k items of ``counts`` (item -> distinct lists with a positive) with the highest count, ties by item.

    Items with a count of 0 are never popular. Offline evaluation and realized outcomes both rank with this.
    """
    frame = pd.DataFrame({ITEM: counts.index.to_numpy(), "n": counts.to_numpy()})
    frame = frame[frame["n"] > 0].sort_values(["n", ITEM], ascending=[False, True], kind="stable")
    return frame[ITEM].head(k).tolist()


def list_keys(frames: list[pd.DataFrame], spec: PipelineSpec) -> list[np.ndarray]:
    """One int64 key per ranking list, per frame: the same list has the same key in every frame.

    A list is (as-of date, user) for recommendations, the as-of date otherwise. Users are
    numbered in sorted order, so keys sort by date, then user, as "date|user" strings did
    (strings cost a Python object per row: about 0.5 s per million rows, and slower sorts and
    joins after).
    """
    days = [as_days(f["as_of_date"]).astype(np.int64) for f in frames]
    if spec.evaluation.lists != "user" or not frames:
        return days
    users = [f[spec.entities.user].to_numpy() for f in frames]
    codes, uniques = pd.factorize(np.concatenate(users), sort=True, use_na_sentinel=False)
    parts = np.split(codes.astype(np.int64), np.cumsum([len(u) for u in users])[:-1])
    return [day * len(uniques) + code for day, code in zip(days, parts, strict=True)]


def evaluate_window(
    test: pd.DataFrame,
    scores: np.ndarray,
    fit: pd.DataFrame,
    truth: pd.DataFrame | None,
    spec: PipelineSpec,
    catalog: int,
    *,
    label: str = "label",
    bootstrap: bool = True,
) -> dict[str, Any]:
    """Metrics at k on the test window, per scope and ranker, plus the gate's pick and its lift CI.

    ``test``/``fit``: candidate rows (as_of_date, user, item, features, ``label``) of the test
    and fit windows; ``scores``: the model's score per ``test`` row. ``truth``: every positive
    (as_of_date, user, item, relevance) in the label horizons, candidates or not; None when
    the pipeline has none (then only the candidate scope exists and the gate uses it).
    """
    ev, item = spec.evaluation, spec.entities.item
    k = ev.k
    full_truth = truth
    test, scores, truth, seen_rows, excluded = drop_seen(test, scores, truth)
    frames = [test, seen_rows] + ([full_truth, truth] if truth is not None and full_truth is not None else [])
    keys, seen_keys, *truth_keys = list_keys(frames, spec)
    # What a list ranks: items per user, or users per date (e.g. churn, where the item is constant).
    items = test[item if ev.lists == "user" else spec.entities.user].to_numpy()
    popularity = popularity_scores(fit[item].to_numpy(), fit[label].to_numpy(dtype=np.float64), test[item].to_numpy())
    rankers: dict[str, np.ndarray] = {"model": np.asarray(scores, dtype=np.float64), "candidate_popularity": popularity}
    if ev.candidate_order:
        rankers["candidate_order"] = -test[ev.candidate_order].to_numpy(dtype=np.float64)
    recs = {name: top_k(keys, items, s, k) for name, s in rankers.items()}
    in_candidates = pd.DataFrame({LIST: keys, ITEM: items, REL: test[label].to_numpy(dtype=np.float64)})
    per: dict[str, dict[str, pd.DataFrame]] = {
        "candidates": {name: per_list_metrics(rec, in_candidates, k) for name, rec in recs.items()}
    }
    scope, base_name = ev.scope, ev.baseline
    recall: dict[str, float] | None = None
    if truth is not None and ev.lists == "user":
        # Popularity counts every positive of the fit window, seen or not: it is what people bought.
        assert full_truth is not None
        in_fit = np.isin(as_days(full_truth["as_of_date"]), np.unique(as_days(fit["as_of_date"])))
        positive = full_truth["relevance"].to_numpy(dtype=np.float64) > 0
        full_keys, kept_keys = truth_keys
        fit_keys = full_keys[in_fit & positive]
        # Long enough to fill k after dropping any list's seen items.
        depth = k + int(np.unique(seen_keys, return_counts=True)[1].max()) if len(seen_rows) else k
        popular = popular_items(full_truth[item].to_numpy()[in_fit & positive], fit_keys, depth)
        everything = pd.DataFrame({LIST: kept_keys, ITEM: truth[item].to_numpy(), REL: truth["relevance"]})
        everything = everything[np.isin(kept_keys, keys)]
        seen_pairs = pd.DataFrame({LIST: seen_keys, ITEM: seen_rows[item].to_numpy()})
        recs["global_popularity"] = popular_unseen(keys, popular, seen_pairs, k)
        per["end_to_end"] = {name: per_list_metrics(rec, everything, k) for name, rec in recs.items()}
        recall = candidate_recall(in_candidates[[LIST, ITEM]], everything)
    else:
        scope = "candidates"
    if scope == "candidates" and base_name == "global_popularity":
        base_name = "candidate_popularity"  # a fixed list is not a re-ranking of the candidates
    scopes = {
        name: {ranker: summarise(frame, recs[ranker], catalog) for ranker, frame in frames.items()}
        for name, frames in per.items()
    }
    model, baseline = scopes[scope]["model"], scopes[scope][base_name]
    metric = ev.metric
    ci = (
        bootstrap_lift(per[scope]["model"][metric], per[scope][base_name][metric], ev.bootstrap_samples)
        if bootstrap
        else None
    )
    test_days = as_days(test["as_of_date"])
    return {
        "k": k,
        "window": "test",
        # NaT when exclude_seen left no test row (as pandas printed an empty window's dates).
        "test_dates": [d.isoformat() for d in day_range(test_days)] if test_days.size else ["NaT", "NaT"],
        "scope": scope,
        "baseline_name": base_name,
        # What the lists could not hold: rows inference.exclude_seen drops (none: nothing dropped).
        "exclude_seen": {"rule": spec.inference.exclude_seen, **excluded},
        "candidate_recall": None if recall is None else recall["mean"],
        "candidate_recall_detail": recall,
        "scopes": scopes,
        "model": model,
        "baseline": baseline,
        # A zero baseline has no finite lift; JSON (and BigQuery) cannot hold inf, so store null.
        "lift": {m: _finite(lift(model[m], baseline[m])) for m in PER_LIST},
        "lift_ci": None if ci is None else {"metric": metric, **ci},
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
