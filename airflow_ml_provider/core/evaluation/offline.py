"""Honest offline evaluation: top-k lists scored against what users did, per scope, with a CI.

Three scopes, always labelled:

- ``candidates``: the top k of a user's candidates against the positives among those
  candidates (re-ranking quality; a perfect ranker of bad candidates scores high here).
- ``end_to_end``: the lists as served (the top k of the candidates, filled from the global
  popularity list when a user has fewer than k) of the users with candidates, against every
  interaction of the user in the label horizon, candidates or not: what the generator missed counts.
- ``all_active``: the same lists for every user with a positive in the horizon. A served user
  without candidates gets the popularity list, as batch inference gives it; a user batch
  inference would not serve (not active in the lookback) has no list and counts as a miss for
  every ranker. The gate's default.

A list is one (as-of date, user); only lists with at least one positive are scored. ``lists``
says how many there were and ``users`` how many distinct users they belong to: a user active on
several test dates is one user, so ``evaluation.min_lists`` counts users and the bootstrap
resamples users (all of a user's lists together), never lists as if independent.
The rankers: the model; ``candidate_popularity`` (the candidates ordered by their positives in
the fit window); ``candidate_order`` (the generator's own rank); and ``global_popularity`` (one
definition, ``core/evaluation/popularity.py``: distinct users over the feature lookback ending on
each test date, seen items skipped per ``inference.exclude_seen``).
ndcg uses graded gain 2^relevance - 1 (a purchase, 3, gains 7; a view, 1, gains 1);
``ndcg_binary`` gains 1 for every positive. With ``inference.exclude_seen``, rows flagged
``seen_before`` (what batch inference would exclude) leave the lists and the truth alike.
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
#: The metrics every scope reports per list (means over lists) besides ``coverage``, ``lists`` and ``users``.
PER_LIST = ("ndcg", "ndcg_binary", "recall", "precision", "map")
#: The simple rankers a model must beat (``evaluation.baseline: strongest``), ties in this order.
BASELINES = ("global_popularity", "candidate_order", "candidate_popularity")


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
    Gain is 2^rel - 1 (graded: purchase 3 gains 7, view 1 gains 1) for ``ndcg`` and 1 for every
    positive for ``ndcg_binary``, discount log2(rank + 1); the ideal ranks the list's positives by
    relevance. recall = hits / positives, precision = hits / k, map = sum of precision@i at
    hits / min(k, positives). A list with no recommendation scores 0. Index: list_id.
    """
    pos = truth.loc[truth[REL] > 0, [LIST, ITEM, REL]]
    rec = recommended.loc[recommended[RANK] <= k, [LIST, ITEM, RANK]]
    hits = rec.merge(pos, on=[LIST, ITEM], how="inner").sort_values([LIST, RANK], kind="stable")
    hits["gain"] = np.expm1(hits[REL].to_numpy(dtype=np.float64) * math.log(2.0))
    discount = np.log2(hits[RANK].to_numpy(dtype=np.float64) + 1.0)
    hits["dcg"] = hits["gain"] / discount
    hits["dcg_binary"] = 1.0 / discount
    hits["nth"] = hits.groupby(LIST, sort=False).cumcount() + 1
    hits["prec_at"] = hits["nth"] / hits[RANK]

    ideal = pos.sort_values([LIST, REL], ascending=[True, False], kind="stable")
    ideal = ideal.assign(pos_rank=ideal.groupby(LIST, sort=False).cumcount() + 1)
    ideal = ideal[ideal["pos_rank"] <= k]
    ideal_discount = np.log2(ideal["pos_rank"].to_numpy(dtype=np.float64) + 1.0)
    ideal_dcg = (np.expm1(ideal[REL].to_numpy(dtype=np.float64) * math.log(2.0))) / ideal_discount
    out = pd.DataFrame(
        {
            "positives": pos.groupby(LIST).size(),
            "idcg": pd.Series(ideal_dcg, index=ideal[LIST].to_numpy()).groupby(level=0).sum(),
            "idcg_binary": pd.Series(1.0 / ideal_discount, index=ideal[LIST].to_numpy()).groupby(level=0).sum(),
        }
    )
    by = hits.groupby(LIST)
    out["hits"] = by.size().reindex(out.index, fill_value=0)
    out["dcg"] = by["dcg"].sum().reindex(out.index, fill_value=0.0)
    out["dcg_binary"] = by["dcg_binary"].sum().reindex(out.index, fill_value=0.0)
    out["ap_sum"] = by["prec_at"].sum().reindex(out.index, fill_value=0.0)
    return pd.DataFrame(
        {
            "ndcg": out["dcg"] / out["idcg"],
            "ndcg_binary": out["dcg_binary"] / out["idcg_binary"],
            "recall": out["hits"] / out["positives"],
            "precision": out["hits"] / k,
            "map": out["ap_sum"] / np.minimum(k, out["positives"]),
        },
        index=out.index.rename(LIST),
    )


def summarise(
    per_list: pd.DataFrame, recommended: pd.DataFrame, catalog_size: int, users: pd.Series | None = None
) -> dict[str, float]:
    """Means over lists, coverage of the catalog by the recommended items, the number of lists and of users.

    ``users``: the user of each list id (index), when lists are (date, user); else each list is its own.
    """
    lists = len(per_list)
    out = {m: float(per_list[m].mean()) if lists else 0.0 for m in PER_LIST}
    out["coverage"] = float(recommended[ITEM].nunique() / catalog_size) if catalog_size else 0.0
    out["lists"] = lists
    out["users"] = int(users.reindex(per_list.index).nunique()) if users is not None else lists
    return out


def candidate_recall(candidates: pd.DataFrame, truth: pd.DataFrame, *, all_lists: bool = False) -> dict[str, float]:
    """The share of next-horizon positives that are among the candidates: mean over lists and pooled.

    ``candidates``: list_id, item (every candidate). ``truth``: list_id, item, relevance; only
    lists that have candidates count, or with ``all_lists`` every list of ``truth`` (a user
    without candidates then recalls nothing).
    """
    positive = truth[REL] > 0
    if not all_lists:
        positive &= truth[LIST].isin(candidates[LIST].unique())
    pos = truth.loc[positive, [LIST, ITEM]]
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
    model: pd.Series,
    baseline: pd.Series,
    samples: int,
    confidence: float = 0.95,
    seed: int = 7,
    clusters: pd.Series | None = None,
) -> dict[str, float | int | None]:
    """Percentile bootstrap CI of mean(model) / mean(baseline) - 1, resampling clusters of lists with replacement.

    ``model`` and ``baseline`` are per-list values on the same lists (aligned by index).
    ``clusters`` maps each list to its cluster (the user: a user's lists on several dates are
    not independent, so they are drawn together); without it every list is its own cluster.
    Resamples whose baseline sum is 0 have no finite lift and are left out of the interval.
    """
    m, b = model.align(baseline, join="inner")
    if clusters is not None and len(m):
        groups = clusters.reindex(m.index).to_numpy()
        m, b = m.groupby(groups).sum(), b.groupby(groups).sum()
    n = len(m)
    if n == 0 or samples == 0:
        return {"low": None, "high": None, "confidence": confidence, "samples": 0, "clusters": n}
    mv, bv = m.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    lifts: list[np.ndarray] = []
    chunk = max(1, 2_000_000 // n)  # bounds memory to a few million indices at a time
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n), dtype=np.int64)
        # A resample's mean over its lists is its sum over its clusters / its list count; the
        # count is the same for the model and the baseline, so the lift is the ratio of sums.
        ms, bs = mv[idx].sum(axis=1), bv[idx].sum(axis=1)
        ok = bs > 0
        lifts.append(ms[ok] / bs[ok] - 1)
    values = np.concatenate(lifts)
    if values.size == 0:
        return {"low": None, "high": None, "confidence": confidence, "samples": 0, "clusters": n}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return {
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "samples": int(values.size),
        "clusters": n,
    }


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


def fill_from(recommended: pd.DataFrame, fallback: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each list of ``recommended`` topped up to k from its ``fallback`` list (items it lacks, in fallback order).

    Batch inference fills short lists the same way (``core/inference/fallback.py``). Lists only
    in ``fallback`` stay out: the caller decides who is served.
    """
    if fallback.empty or recommended.empty:
        return recommended
    fb = fallback[fallback[LIST].isin(recommended[LIST].unique())]
    fb = fb.merge(recommended[[LIST, ITEM]].assign(_listed=True), on=[LIST, ITEM], how="left")
    fb = fb[fb["_listed"].isna()].sort_values([LIST, RANK], kind="stable")
    have = recommended.groupby(LIST).size()
    fb = fb.assign(**{RANK: fb[LIST].map(have).fillna(0).to_numpy(dtype=np.int64) + fb.groupby(LIST).cumcount() + 1})
    return pd.concat([recommended, fb.loc[fb[RANK] <= k, [LIST, ITEM, RANK]]], ignore_index=True)


def pick_baseline(summaries: dict[str, dict[str, float]], wanted: str, metric: str) -> str:
    """The baseline the gate compares with: ``wanted``, or for ``strongest`` the best simple ranker on ``metric``."""
    if wanted != "strongest" and wanted in summaries:
        return wanted
    present = [name for name in BASELINES if name in summaries]
    return max(present, key=lambda name: (summaries[name][metric], -present.index(name)))


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
    popular: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Metrics at k on the test window, per scope and ranker, plus the gate's pick and its lift CI.

    ``test``/``fit``: candidate rows (as_of_date, user, item, features, ``label``) of the test
    and fit windows; ``scores``: the model's score per ``test`` row. ``truth``: every positive
    (as_of_date, user, item, relevance) in the label horizons, candidates or not; None when
    the pipeline has none (then only the candidate scope exists and the gate uses it).
    ``popular``: the global popularity list (as_of_date, user, item, popularity_rank) of every
    test-window user with a positive whom batch inference serves; None (an older export): no
    ``global_popularity`` ranker, no fill, and unserved users are those without candidates.
    """
    ev, item = spec.evaluation, spec.entities.item
    k = ev.k
    test, scores, truth, seen_rows, excluded = drop_seen(test, scores, truth)
    end_to_end = truth is not None and ev.lists == "user"
    if truth is not None and end_to_end and len(test):
        # The truth export spans every window; the lists of this evaluation are the test window's.
        days, test_days = as_days(truth["as_of_date"]), as_days(test["as_of_date"])
        truth = truth[(days >= test_days.min()) & (days <= test_days.max())]
    frames = (
        [test, seen_rows] + ([truth] if end_to_end else []) + ([popular] if end_to_end and popular is not None else [])
    )
    keys, seen_keys, *more = list_keys(frames, spec)
    users = list_users(frames, [keys, seen_keys, *more], spec)
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
    served = recs
    scope = ev.scope
    recall: dict[str, Any] | None = None
    if end_to_end:
        assert truth is not None
        everything = pd.DataFrame({LIST: more[0], ITEM: truth[item].to_numpy(), REL: truth["relevance"].to_numpy()})
        with_candidates = everything[np.isin(more[0], keys)]
        if popular is not None:
            listed = pd.DataFrame({LIST: more[1], ITEM: popular[item].to_numpy(), RANK: popular["popularity_rank"]})
            # As served: the candidates' top k filled from the popularity list; a served user without
            # candidates gets the popularity list itself.
            alone = listed[~listed[LIST].isin(keys)]
            served = {
                name: pd.concat([fill_from(rec, listed, k), alone], ignore_index=True) for name, rec in recs.items()
            }
            served["global_popularity"] = listed
        per["end_to_end"] = {name: per_list_metrics(rec, with_candidates, k) for name, rec in served.items()}
        per["all_active"] = {name: per_list_metrics(rec, everything, k) for name, rec in served.items()}
        recall = candidate_recall(in_candidates[[LIST, ITEM]], with_candidates)
        recall["all_active"] = candidate_recall(in_candidates[[LIST, ITEM]], everything, all_lists=True)["mean"]
    else:
        scope = "candidates"
    scopes = {
        name: {
            ranker: summarise(frame, (recs if name == "candidates" else served)[ranker], catalog, users)
            for ranker, frame in by_ranker.items()
        }
        for name, by_ranker in per.items()
    }
    metric = ev.metric
    baselines = {name: m for name, m in scopes[scope].items() if name != "model"}
    base_name = pick_baseline(baselines, ev.baseline, metric)
    model, baseline = scopes[scope]["model"], scopes[scope][base_name]
    ci = (
        bootstrap_lift(per[scope]["model"][metric], per[scope][base_name][metric], ev.bootstrap_samples, clusters=users)
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
        "baseline_rule": ev.baseline,
        # Every simple ranker's gate metric in the gate's scope: what "strongest" chose from.
        "baselines": {name: m[metric] for name, m in baselines.items()},
        # What the lists could not hold: rows inference.exclude_seen drops (none: nothing dropped).
        "exclude_seen": {"rule": spec.inference.exclude_seen, **excluded},
        "candidate_recall": None if recall is None else recall["mean"],
        "candidate_recall_detail": recall,
        "scopes": scopes,
        "model": model,
        "baseline": baseline,
        # A zero baseline has no finite lift; JSON (and BigQuery) cannot hold inf, so store null.
        "lift": {m: _finite(lift(model[m], baseline[m])) for m in PER_LIST},
        "lift_ci": None if ci is None else {"metric": metric, "resampled": "users", **ci},
    }


def list_users(frames: list[pd.DataFrame], keys: list[np.ndarray], spec: PipelineSpec) -> pd.Series | None:
    """The user of every list key (index: list key), or None when a list is a date (``evaluation.lists``)."""
    if spec.evaluation.lists != "user" or not frames:
        return None
    user = spec.entities.user
    pairs = pd.DataFrame(
        {"key": np.concatenate(keys), "user": np.concatenate([f[user].to_numpy(dtype=object) for f in frames])}
    ).drop_duplicates("key")
    return pd.Series(pairs["user"].to_numpy(), index=pairs["key"].to_numpy())


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
