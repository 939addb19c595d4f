"""The drift reference profile: per-column bins built once at training and stored in the model envelope.

A later drift check counts current rows into exactly these bins in one SQL scan, so the
binning convention is deliberately simple and stated once, in ``bin_numeric``. Every value
in a profile is JSON-serialisable: Python ints and floats, ``None`` instead of NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Quantile levels of the numeric edges: the reference deciles 0.1 .. 0.9 (exact i / 10).
DECILES = np.arange(1, 10) / 10
#: How many categories a categorical profile keeps by default; the rest count as ``other``.
TOP_CATEGORIES = 50
#: Check-time label of a category outside the stored top categories (including unseen ones).
OTHER_LABEL = "__OTHER__"
#: Check-time label of a null category.
NULL_LABEL = "__NULL__"
#: GoogleSQL type -> profile kind. BOOL is profiled as a 0/1 number.
PROFILE_KINDS: dict[str, str] = {"STRING": "categorical", "INT64": "numeric", "FLOAT64": "numeric", "BOOL": "numeric"}


def _as_float(values: np.ndarray | pd.Series) -> np.ndarray:
    """Values as a float64 array with NaN for nulls (None, pd.NA) and bools as 0/1."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    return pd.Series(values).to_numpy(dtype=np.float64, na_value=np.nan)


def _json_float(value: float) -> float | None:
    """A Python float, or None where JSON has no number for it (NaN, inf)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _deciles(finite: np.ndarray) -> np.ndarray:
    """``np.quantile`` at DECILES (method "linear") of finite values, without overflow near the float limits."""
    with np.errstate(over="ignore", invalid="ignore"):
        edges = np.quantile(finite, DECILES, method="linear")
    if not np.isfinite(edges).all():
        # Interpolating between values more than the float range apart overflows; halving is exact there.
        edges = np.quantile(finite / 2, DECILES, method="linear") * 2
    return edges


def bin_numeric(edges: list[float], values: np.ndarray | pd.Series) -> np.ndarray:
    """Bin index per value: the number of edges strictly less than it (right-closed bins, open outer bins).

    With edges e_0 < ... < e_{m-1} there are m + 1 bins: bin 0 is x <= e_0, bin i is
    e_{i-1} < x <= e_i and bin m is x > e_{m-1}. In SQL that is
    ``CASE WHEN x <= e_0 THEN 0 WHEN x <= e_1 THEN 1 ... ELSE m END``. Callers pass finite
    values only: nulls and infinities are counted apart (``null`` and ``inf``).
    """
    return np.searchsorted(np.asarray(edges, dtype=np.float64), _as_float(values), side="left")


def numeric_profile(values: np.ndarray | pd.Series) -> dict[str, Any]:
    """Decile edges, per-bin counts, null and inf counts and summary stats of a numeric column."""
    x = _as_float(values)
    finite_mask = np.isfinite(x)
    finite = x[finite_mask]
    null = int(np.isnan(x).sum())
    inf = int(len(x) - len(finite) - null)
    if len(finite):
        # np.unique sorts and drops duplicate edges (e.g. a column that is mostly zeros); + 0.0 turns -0.0 into 0.0.
        edges = np.unique(_deciles(finite)) + 0.0
        # Same bins as bin_numeric, counted per edge: values in bins 0..i are exactly those <= e_i.
        at_or_below = [np.count_nonzero(finite <= e) for e in edges]
        counts = np.diff(np.array([0, *at_or_below, len(finite)]))
        with np.errstate(over="ignore"):  # a mean that overflows is stored as None
            mean = finite.mean()
        stats = {"min": _json_float(finite.min()), "max": _json_float(finite.max()), "mean": _json_float(mean)}
    else:
        edges, counts = np.empty(0), np.zeros(1, dtype=np.int64)
        stats = {"min": None, "max": None, "mean": None}
    n = len(x)
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "null": null,
        "inf": inf,
        "n": n,
        "null_share": null / n if n else 0.0,
        **stats,
    }


def categorical_profile(values: pd.Series | np.ndarray, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """The ``top`` categories by count (ties by name ascending) with counts, plus ``other`` and ``null`` counts."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}; it is how many categories the profile keeps.")
    s = pd.Series(values)
    n = len(s)
    counts = s.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]  # a pandas Categorical lists unused categories with count 0
    # Categories are compared as strings at check time, so counts of e.g. 1 and "1" merge.
    counts.index = counts.index.astype(str)
    if not counts.index.is_unique:
        counts = counts.groupby(level=0).sum()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    non_null = int(counts.sum())
    kept = counts.iloc[:top]
    null = n - non_null
    return {
        "categories": [str(c) for c in kept.index],
        "counts": [int(c) for c in kept.to_numpy()],
        "other": non_null - int(kept.sum()),
        "null": null,
        "n": n,
        "null_share": null / n if n else 0.0,
    }


def build_profile(
    df: pd.DataFrame, columns: dict[str, str], per_item: Sequence[str] = (), keys: tuple[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The reference profile of ``columns`` (name -> GoogleSQL type) of ``df``, one entry per column.

    A column in ``per_item`` is profiled on one row per distinct ``keys`` (as-of date, item) and
    records its item key as ``per``, so a check counts it the same way (``core/drift/scan.py``).
    """
    if per_item and keys is None:
        raise ValueError("per_item columns need keys=(date column, item column) to count each item once per day")
    items = df.drop_duplicates(list(keys)) if per_item and keys else df
    profile: dict[str, dict[str, Any]] = {}
    for name, sql_type in columns.items():
        kind = PROFILE_KINDS.get(sql_type.upper())
        if kind is None:
            raise ValueError(
                f"column {name!r} has type {sql_type!r}, which drift checks cannot profile; "
                f"monitor columns of type {', '.join(PROFILE_KINDS)} instead."
            )
        if name not in df.columns:
            raise ValueError(
                f"column {name!r} is not in the training frame; known columns: {', '.join(map(str, df.columns))}."
            )
        rows = items if name in per_item else df
        body = categorical_profile(rows[name]) if kind == "categorical" else numeric_profile(rows[name])
        profile[name] = {"kind": kind, "type": sql_type.upper(), **body}
        if name in per_item and keys:
            profile[name]["per"] = keys[1]
    return profile
