"""Every served user gets k items: the model's lists, filled from the global popularity list.

A user with fewer scoreable candidates than k (new, quiet, or everything they saw excluded by
``inference.exclude_seen``), or none at all, gets the model's items first and then the global
popularity list as of the prediction date, their seen items skipped
(``core/evaluation/popularity.py`` defines both the list and who is served). The filled rows
say so: ``source = 'global_popularity'`` and no score. Offline evaluation fills the same way,
so the gate judges the lists users receive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from airflow_ml_provider.core.evaluation.popularity import (
    MODEL_SOURCE,
    POPULARITY_SOURCE,
    popularity_lists_sql,
    short_users_sql,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_ml_provider.core.contract.spec import PipelineSpec


def fallback_sql(spec: PipelineSpec, candidate_rows: str) -> str:
    """The popularity lists of the users served on @as_of with fewer than @top_k rows in ``candidate_rows``."""
    return popularity_lists_sql(spec, short_users_sql(spec, candidate_rows))


def fill_lists(best: pa.Table, fallback: pa.Table, k: int, keys: tuple[str, str]) -> pa.Table:
    """``best`` (user_id, item_id, rank, score) with ``source``, each user's list topped up to ``k`` from ``fallback``.

    ``fallback``: the popularity lists (``keys`` and popularity_rank) of the users short of k;
    an item already in the user's list is skipped. Filled rows have a NULL score.
    """
    import pyarrow as pa

    out = best.append_column("source", pa.repeat(pa.scalar(MODEL_SOURCE, pa.string()), best.num_rows))
    if fallback.num_rows == 0:
        return out
    user, item = keys
    fill = fallback.select([user, item, "popularity_rank"]).to_pandas()
    fill.columns = ["user_id", "item_id", "popularity_rank"]
    listed = pd.DataFrame({"user_id": best["user_id"].to_pandas(), "item_id": best["item_id"].to_pandas()})
    listed = listed[listed["user_id"].isin(fill["user_id"].unique())]
    fill = fill.merge(listed.assign(listed=True), on=["user_id", "item_id"], how="left")
    fill = fill[fill["listed"].isna()].sort_values(["user_id", "popularity_rank"], kind="stable")
    have = listed.groupby("user_id").size()
    start = fill["user_id"].map(have).fillna(0).to_numpy(dtype=np.int64)
    fill["rank"] = start + fill.groupby("user_id", sort=False).cumcount().to_numpy() + 1
    fill = fill[fill["rank"] <= k]
    added = pa.table(
        {
            "user_id": pa.array(fill["user_id"].to_numpy(dtype=object), pa.string()),
            "item_id": pa.array(fill["item_id"].to_numpy(dtype=object), pa.string()),
            "rank": pa.array(fill["rank"].to_numpy(dtype=np.int64)),
            "score": pa.nulls(len(fill), pa.float64()),
            "source": pa.repeat(pa.scalar(POPULARITY_SOURCE, pa.string()), len(fill)),
        }
    )
    return pa.concat_tables([out, added.select(out.column_names).cast(out.schema)])
