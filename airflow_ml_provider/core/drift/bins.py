"""A drift column's bins: the reference profile's edges or categories, laid out for counting.

The reference profile (``core/training/profile.py``) fixes every column's bins once, at training.
Bin codes: ``0..m`` are the finite bins of a numeric column (``x <= e_0`` is 0, the open top
bin is ``m = len(edges)``) or the stored categories of a categorical one (``len(categories)``
is ``__OTHER__``); ``-1`` is null (and NaN), ``-2`` is +/-infinity. Count vectors are laid out
as ``[finite bins or categories..., other (categorical), null, inf (numeric)]``.

A column counts rows, or, when its profile names a ``per`` key (``item_id``), the distinct
values of that key per partition date: an item-level feature is then weighed once per item
and day, not once per candidate row (``drift.per_item`` in the contract).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.training.profile import NULL_LABEL, OTHER_LABEL
from airflow_ml_provider.exceptions import MLProviderError

NULL_CODE = -1
INF_CODE = -2
INF_LABEL = "__INF__"


class DriftProfileError(MLProviderError):
    """A stored reference profile cannot be used for a drift check (malformed, non-finite edges)."""


@dataclass(frozen=True)
class ColumnBins:
    """One column's bins and reference counts, from its reference profile."""

    name: str
    kind: str
    sql_type: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    reference: tuple[int, ...] = ()
    #: The key counted once per partition date (an item-level feature's ``item_id``); None counts rows.
    per: str | None = None

    @classmethod
    def from_profile(cls, name: str, profile: Mapping[str, Any]) -> ColumnBins:
        """Validate one column's profile (as ``core.training.profile`` writes it) and lay out its bins."""
        validate_identifier(name, kind="drift column")
        per = profile.get("per")
        if per is not None:
            validate_identifier(per, kind="drift per key")
        kind = profile.get("kind", "numeric" if "edges" in profile else "categorical")
        try:
            if kind == "numeric":
                edges = tuple(_finite_float(e, name) for e in profile["edges"])
                if any(b <= a for a, b in itertools.pairwise(edges)):
                    raise ValueError("edges must be strictly increasing")
                counts = [*profile["counts"], profile["null"], profile.get("inf", 0)]
                bins = cls(
                    name, kind, str(profile.get("type", "FLOAT64")).upper(), edges=edges, reference=_ints(counts)
                )
            elif kind == "categorical":
                cats = tuple(profile["categories"])
                if not all(isinstance(c, str) for c in cats) or len(set(cats)) != len(cats):
                    raise ValueError("categories must be distinct strings")
                counts = [*profile["counts"], profile["other"], profile["null"]]
                bins = cls(
                    name, kind, str(profile.get("type", "STRING")).upper(), categories=cats, reference=_ints(counts)
                )
            else:
                raise ValueError(f"kind {kind!r} is neither numeric nor categorical")
        except (KeyError, TypeError, ValueError) as err:
            detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise DriftProfileError(
                f"the reference profile of column {name!r} is malformed ({detail}). Retrain the model to rebuild it."
            ) from err
        if len(bins.reference) != len(bins.labels):
            raise DriftProfileError(
                f"the reference profile of column {name!r} has {len(bins.reference) - 2} bin counts for "
                f"{len(bins.labels) - 2} bins. Retrain the model to rebuild it."
            )
        return dataclasses.replace(bins, per=per)

    @property
    def labels(self) -> list[str]:
        """A readable label per bin, in count-vector order."""
        if self.kind == "categorical":
            return [*self.categories, OTHER_LABEL, NULL_LABEL]
        e = [repr(x) for x in self.edges]
        if not e:
            return ["(-inf, inf)", NULL_LABEL, INF_LABEL]
        inner = [f"({a}, {b}]" for a, b in itertools.pairwise(e)]
        return [f"(-inf, {e[0]}]", *inner, f"({e[-1]}, inf)", NULL_LABEL, INF_LABEL]

    @property
    def codes(self) -> list[int]:
        """The SQL bin code per bin, in count-vector order."""
        if self.kind == "categorical":
            return [*range(len(self.categories) + 1), NULL_CODE]
        return [*range(len(self.edges) + 1), NULL_CODE, INF_CODE]

    @property
    def null_index(self) -> int:
        """Position of the null bin in the count vector."""
        return self.codes.index(NULL_CODE)

    def with_reference(self, counts: Sequence[int]) -> ColumnBins:
        """The same bins with other reference counts (a segment's)."""
        return dataclasses.replace(self, reference=_ints(counts))

    def to_profile(self, counts: Sequence[int] | None = None) -> dict[str, Any]:
        """The profile dict (``core.training.profile``) of these bins with ``counts`` (default: the reference)."""
        c = [int(x) for x in (self.reference if counts is None else counts)]
        n = sum(c)
        body: dict[str, Any] = {"kind": self.kind, "type": self.sql_type, "n": n}
        if self.per:
            body["per"] = self.per
        if self.kind == "categorical":
            body |= {"categories": list(self.categories), "counts": c[:-2], "other": c[-2], "null": c[-1]}
        else:
            body |= {"edges": list(self.edges), "counts": c[:-2], "null": c[-2], "inf": c[-1]}
        return body | {"null_share": body["null"] / n if n else 0.0}


def _finite_float(value: Any, column: str) -> float:
    """``value`` as a finite float, or an error: only finite numbers may become SQL literals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"edge {value!r} is not a finite number")
    return float(value) + 0.0  # -0.0 -> 0.0


def _ints(counts: Sequence[Any]) -> tuple[int, ...]:
    """Counts as non-negative Python ints."""
    out = tuple(int(c) for c in counts)
    if any(c < 0 or c != x for c, x in zip(out, counts, strict=True)):
        raise ValueError("counts must be non-negative integers")
    return out


def profile_bins(profile: Mapping[str, Any], columns: Sequence[str] | None = None) -> dict[str, ColumnBins]:
    """Bins of the ``columns`` (default: all) of a ``{"column": profile}`` mapping, in its order."""
    names = [c for c in profile if columns is None or c in columns]
    return {name: ColumnBins.from_profile(name, profile[name]) for name in names}


def numpy_counts(bins: ColumnBins, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Bin counts of raw values, the straightforward way (no SQL): the reference the SQL path must match."""
    import pandas as pd

    s = pd.Series(values, dtype=object)
    out = np.zeros(len(bins.codes), dtype=np.int64)
    null = s.isna().to_numpy()
    if bins.kind == "categorical":
        idx = {c: j for j, c in enumerate(bins.categories)}
        for v in s[~null]:
            out[idx.get(str(v), len(bins.categories))] += 1
        out[-1] = null.sum()
        return out
    x = pd.to_numeric(s, errors="raise").astype(np.float64).to_numpy()
    nan = np.isnan(x)
    inf = np.isinf(x)
    finite = x[~nan & ~inf]
    for i in range(len(bins.edges) + 1):
        lo = -np.inf if i == 0 else bins.edges[i - 1]
        hi = np.inf if i == len(bins.edges) else bins.edges[i]
        out[i] = np.count_nonzero((finite > lo) & (finite <= hi))
    out[-2], out[-1] = nan.sum(), inf.sum()
    return out
