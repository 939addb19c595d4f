"""Turning feature columns into the float matrix LightGBM sees, the same way at training and serving.

Policy, documented once and used by both sides:
- STRING features are categorical: codes are positions in the category list learned at
  training (stored in the envelope); unseen categories and nulls become NaN (missing).
- Numeric features keep NULL/NaN as missing, which LightGBM handles natively.
- +/-inf is treated as missing (NaN) and counted, so a bad upstream division cannot
  silently dominate a split.
- A non-nullable feature with nulls is an error naming the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from airflow_ml_provider.core.contract.spec import FeatureColumn
from airflow_ml_provider.core.memory import release_free_memory
from airflow_ml_provider.exceptions import MLProviderError

#: Bytes of the matrix filled at a time by ``_stack``: a block that stays in the L2 cache.
_BLOCK_BYTES = 1 << 20


class FeatureDataError(MLProviderError):
    """Feature rows do not satisfy the declared schema."""


@dataclass(frozen=True)
class EncodedFeatures:
    """The model matrix and what was done to get it."""

    matrix: np.ndarray
    inf_replaced: dict[str, int]


def fit_categories(df: pd.DataFrame, features: list[FeatureColumn]) -> dict[str, list[str]]:
    """Sorted category lists of the STRING features, learned from training rows."""
    return {f.name: sorted(str(v) for v in df[f.name].dropna().unique()) for f in features if f.type == "STRING"}


def check_columns(columns: list[str], features: list[FeatureColumn], source: str) -> None:
    """Every declared feature must be present; the error lists the missing ones."""
    missing = [f.name for f in features if f.name not in columns]
    if missing:
        raise FeatureDataError(
            f"{source}: declared feature(s) {', '.join(missing)} are missing from the data "
            f"(columns: {', '.join(columns)}). Make the feature SQL produce them or remove them "
            "from `features` in pipeline.yaml."
        )


def category_codes(col: pd.Series, categories: list[str]) -> np.ndarray:
    """Positions of the values in ``categories`` as floats; unseen values and nulls are NaN.

    String columns (Arrow-backed since pandas 3) are looked up with Arrow's hash kernel, several
    times faster than a pandas Categorical; anything else is cast to string first, as at training.
    """
    if isinstance(col.dtype, pd.StringDtype):
        values = pa.chunked_array([pa.array(col, type=pa.string(), from_pandas=True)])
        codes = pc.index_in(values, value_set=pa.array(categories, pa.string()))
        return codes.to_numpy().astype(np.float64, copy=False)
    codes = pd.Categorical(col.astype("string"), categories=categories).codes
    return np.where(codes < 0, np.nan, codes)


def _numeric(col: pd.Series) -> np.ndarray:
    """The column as numbers, NULL as NaN: a view of numpy-backed columns, a float64 copy otherwise."""
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "biuf":
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def encode(
    df: pd.DataFrame,
    features: list[FeatureColumn],
    categories: dict[str, list[str]],
    source: str = "features",
    *,
    order: Literal["C", "F"] = "C",
) -> EncodedFeatures:
    """The float64 matrix for LightGBM, columns in declared feature order.

    ``order="F"`` (column-major) is cheaper to fill and LightGBM takes it without a copy; the
    values, and so the model or the scores, are the same either way.
    """
    check_columns(list(df.columns), features, source)
    inf_replaced: dict[str, int] = {}
    columns = [_encode_column(df[f.name], f, categories, source, inf_replaced) for f in features]
    return EncodedFeatures(matrix=_stack(columns, len(df), order), inf_replaced=inf_replaced)


def encode_consuming(
    df: pd.DataFrame, features: list[FeatureColumn], categories: dict[str, list[str]], source: str, keep: set[str]
) -> EncodedFeatures:
    """``encode(..., order="F")`` that deletes each feature column from ``df`` once it is in the matrix.

    The frame's features and the matrix are then never both whole in memory (the trainer's peak
    was the fit window's frame plus its matrix). Columns in ``keep`` stay. On an error the frame
    has lost the columns encoded so far: only for a frame the caller drops anyway.
    """
    check_columns(list(df.columns), features, source)
    inf_replaced: dict[str, int] = {}
    out = np.empty((len(df), len(features)), dtype=np.float64, order="F")  # pages count once written
    for j, f in enumerate(features):
        out[:, j] = _encode_column(df[f.name], f, categories, source, inf_replaced)
        if f.name not in keep:
            del df[f.name]
            release_free_memory()
    return EncodedFeatures(matrix=out, inf_replaced=inf_replaced)


def _encode_column(
    col: pd.Series, f: FeatureColumn, categories: dict[str, list[str]], source: str, inf_replaced: dict[str, int]
) -> np.ndarray:
    """One feature as float64 (a view where it can be); counts the infinities replaced in ``inf_replaced``."""
    if not f.nullable and col.isna().any():
        raise FeatureDataError(
            f"{source}: feature {f.name} is declared nullable: false but has {int(col.isna().sum())} "
            "null value(s). Fix the SQL (e.g. IFNULL) or declare it nullable in pipeline.yaml."
        )
    if f.type == "STRING":
        return category_codes(col, categories.get(f.name, []))
    values = _numeric(col)
    if values.dtype.kind == "f":
        inf = np.isinf(values)
        if inf.any():
            inf_replaced[f.name] = int(inf.sum())
            values = np.where(inf, np.nan, values)
    return values


def _stack(columns: list[np.ndarray], rows: int, order: Literal["C", "F"]) -> np.ndarray:
    """Stack columns into a float64 matrix of the given layout, a block of rows at a time.

    Writing a whole column into a row-major matrix touches one cache line per row and
    column; filling blocks that fit in the CPU cache is several times faster. In a
    column-major matrix each block's column is contiguous, so the same loop is a plain copy.
    """
    out = np.empty((rows, len(columns)), dtype=np.float64, order=order)
    step = max(1024, _BLOCK_BYTES // (8 * max(len(columns), 1)))
    for start in range(0, rows, step):
        block = out[start : start + step]
        for j, values in enumerate(columns):
            block[:, j] = values[start : start + step]
    return out
