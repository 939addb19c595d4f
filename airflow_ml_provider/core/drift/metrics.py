"""Drift metrics from bin counts only: PSI, JS distance, L-infinity, null rate and new-category share.

``numpy_metrics`` writes the same sums out term by term: the cross-check the tests and the
benchmark hold ``column_metrics`` to.
"""

from __future__ import annotations

import math

import numpy as np

from airflow_ml_provider.core.drift.bins import ColumnBins


def _shares(counts: np.ndarray) -> np.ndarray:
    """Counts as proportions (all zero when there are no rows)."""
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index: sum of (q - p) ln(q / p), with ``epsilon`` for the share of an empty bin."""
    p, q = _shares(reference), _shares(current)
    p, q = np.where(p > 0, p, epsilon), np.where(q > 0, q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same distribution, 1 = disjoint)."""
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2
    divergence = 0.0
    for a in (p, q):
        used = a > 0
        divergence += 0.5 * float(np.sum(a[used] * np.log2(a[used] / m[used])))
    return math.sqrt(max(divergence, 0.0))


def l_inf(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest absolute difference between the bin shares."""
    return float(np.max(np.abs(_shares(reference) - _shares(current))))


def new_category_share(bins: ColumnBins, current: np.ndarray) -> float:
    """Share of current non-null values outside the reference's categories (categorical columns).

    When the reference kept every category it saw (its ``__OTHER__`` is empty), that is exactly
    the share of categories never seen in training. Otherwise the profile does not keep the long
    tail, so it is the growth of the ``__OTHER__`` share over the reference's, floored at 0.
    """
    ref = np.asarray(bins.reference)
    other = len(bins.categories)

    def other_share(c: np.ndarray) -> float:
        non_null = c[:-1].sum()
        return float(c[other] / non_null) if non_null else 0.0

    return other_share(current) if ref[other] == 0 else max(0.0, other_share(current) - other_share(ref))


def column_metrics(bins: ColumnBins, current: np.ndarray, epsilon: float) -> dict[str, float]:
    """Every metric of one column from its reference and current bin counts."""
    ref = np.asarray(bins.reference, dtype=np.int64)
    null = bins.null_index
    out = {
        "psi": psi(ref, current, epsilon),
        "js_distance": js_distance(ref, current),
        "l_inf": l_inf(ref, current),
        "null_rate_change": float(_shares(current)[null] - _shares(ref)[null]),
    }
    if bins.kind == "categorical":
        out["new_category_share"] = new_category_share(bins, current)
    return out


def numpy_metrics(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> dict[str, float]:
    """PSI, JS distance (base 2) and L-infinity written out term by term, for cross-checking ``column_metrics``."""
    p = [r / sum(reference) for r in reference]
    q = [c / sum(current) for c in current]
    psi_value = sum(
        ((b or epsilon) - (a or epsilon)) * math.log((b or epsilon) / (a or epsilon)) for a, b in zip(p, q, strict=True)
    )
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log2(a / c) for a, c in zip(p, m, strict=True) if a > 0)
    kl_q = sum(b * math.log2(b / c) for b, c in zip(q, m, strict=True) if b > 0)
    return {
        "psi": psi_value,
        "js_distance": math.sqrt(max(0.0, (kl_p + kl_q) / 2)),
        "l_inf": max(abs(a - b) for a, b in zip(p, q, strict=True)),
    }
