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

import numpy as np
import pandas as pd

from airflow_ml_provider.core.spec import FeatureColumn
from airflow_ml_provider.exceptions import MLProviderError


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


def encode(
    df: pd.DataFrame, features: list[FeatureColumn], categories: dict[str, list[str]], source: str = "features"
) -> EncodedFeatures:
    """The float64 matrix for LightGBM, columns in declared feature order."""
    check_columns(list(df.columns), features, source)
    out = np.empty((len(df), len(features)), dtype=np.float64)
    inf_replaced: dict[str, int] = {}
    for j, f in enumerate(features):
        col = df[f.name]
        if not f.nullable and col.isna().any():
            raise FeatureDataError(
                f"{source}: feature {f.name} is declared nullable: false but has {int(col.isna().sum())} "
                "null value(s). Fix the SQL (e.g. IFNULL) or declare it nullable in pipeline.yaml."
            )
        if f.type == "STRING":
            codes = pd.Categorical(col.astype("string"), categories=categories.get(f.name, [])).codes
            out[:, j] = np.where(codes < 0, np.nan, codes)
            continue
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        inf = np.isinf(values)
        if inf.any():
            inf_replaced[f.name] = int(inf.sum())
            values = np.where(inf, np.nan, values)
        out[:, j] = values
    return EncodedFeatures(matrix=out, inf_replaced=inf_replaced)
