"""Model hooks for the recsys pipeline (owned by data science).

Documented hooks, both optional (see airflow_ml_provider/core/contract/model_hooks.py):
  params(defaults)  -> the LightGBM parameters to train with
  transform(df)     -> feature values adjusted before encoding, at training and serving
Helpers must start with an underscore.
"""

from __future__ import annotations

_MAX_PRICE_RATIO = 10.0


def params(defaults: dict) -> dict:
    """Slightly larger trees than the provider's defaults: the pair features interact."""
    return {**defaults, "num_leaves": 63, "min_data_in_leaf": 40}


def transform(df):
    """Cap the price ratio: a few very cheap users' averages make it explode."""
    df["pair_price_ratio"] = df["pair_price_ratio"].clip(upper=_MAX_PRICE_RATIO)
    return df
