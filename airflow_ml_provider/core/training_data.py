"""The trainer's input: the exported Parquet read into three time windows, sorted and checked.

Rows are split by as-of date (never at random) into fit, early stopping and the held-out test
window; rows of the purge gaps between them are dropped while still in Arrow, so they never
become pandas rows. Each window is sorted by (as_of_date, user, item): LightGBM's ranking
groups are consecutive rows.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.encoding import check_columns
from airflow_ml_provider.core.spec import PipelineSpec
from airflow_ml_provider.exceptions import MLProviderError

LABEL = "label"


class TrainingDataError(MLProviderError):
    """The training data cannot produce a meaningful model (checked before training)."""


def _dataset(uri: str) -> pads.Dataset:
    fs, path = storage._resolve(uri)
    try:
        return pads.dataset(path, filesystem=fs, format="parquet")
    except (FileNotFoundError, OSError) as err:
        raise TrainingDataError(f"training data {uri} cannot be read: {err}") from err


def read_table(uri: str, columns: list[str] | None = None, dataset: pads.Dataset | None = None) -> pa.Table:
    """Read the exported Parquet (a file or a folder of files, e.g. BigQuery's sharded export) as Arrow.

    ``dataset``: the export already opened, so that reading it column by column lists its files once.
    """
    try:
        return (dataset or _dataset(uri)).to_table(columns=columns)
    except (FileNotFoundError, OSError) as err:
        raise TrainingDataError(f"training data {uri} cannot be read: {err}") from err


def read_training_data(uri: str) -> pd.DataFrame:
    """The exported Parquet as one pandas frame."""
    return read_table(uri).to_pandas()


def as_days(dates: pd.Series | pa.ChunkedArray) -> np.ndarray:
    """Dates as numpy ``datetime64[D]``, vectorised (never one Python ``date`` per row)."""
    if isinstance(dates, pa.ChunkedArray):
        return np.asarray(dates.cast(pa.date32()).to_numpy(), dtype="datetime64[D]")
    return pd.to_datetime(dates).to_numpy().astype("datetime64[D]")


def day_range(days: np.ndarray) -> tuple[dt.date, dt.date]:
    """The first and last date of a non-empty ``datetime64[D]`` array."""
    return days.min().astype(dt.date), days.max().astype(dt.date)


def window_days(spec: PipelineSpec, test_from: dt.date) -> tuple[list[dt.date], list[dt.date], list[dt.date]]:
    """The fit, early-stopping and test as-of dates of a test window starting on ``test_from``."""
    windows = spec.windows_before(test_from + dt.timedelta(days=spec.windows.validation_days - 1))
    return windows[0], windows[1], windows[2]


def _in(days: np.ndarray, window: list[dt.date]) -> np.ndarray:
    return np.isin(days, np.array(window, dtype="datetime64[D]"))


def split_windows(
    df: pd.DataFrame, spec: PipelineSpec, test_from: dt.date
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fit, early-stopping and test rows by as-of date (``spec.windows_before``); purge-gap rows are dropped."""
    days = as_days(df["as_of_date"])
    fit, early, test = (df[_in(days, window)] for window in window_days(spec, test_from))
    return fit, early, test


def sort_lists(df: pd.DataFrame, user: str, item: str) -> pd.DataFrame:
    """Rows by (as_of_date, user, item), so every ranking list is a run of consecutive rows."""
    return df.sort_values(["as_of_date", user, item], kind="stable").reset_index(drop=True)


def read_windows(uri: str, spec: PipelineSpec, test_from: dt.date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The fit, early-stopping and test windows of the export, each sorted by list.

    The rows to keep and their order come from the key columns alone; then the frame is built
    one column at a time (read, put in order, converted), so the export is never held whole as
    Arrow, nor as a frame and a sorted copy of it: about one copy of the kept rows.
    """
    dataset = _dataset(uri)
    names = dataset.schema.names
    if "as_of_date" not in names:
        raise TrainingDataError(f"{uri}: no `as_of_date` column; the export must select f.as_of_date.")
    user, item = spec.entities.user, spec.entities.item
    keyed = {user, item} <= set(names)
    key_table = read_table(uri, ["as_of_date", *([user, item] if keyed else [])], dataset)
    days = as_days(key_table["as_of_date"])
    keys = (
        pd.DataFrame({"d": days, "u": key_table[user].to_pandas(), "i": key_table[item].to_pandas()}) if keyed else None
    )
    del key_table
    rows = []
    for window in window_days(spec, test_from):
        picked = np.flatnonzero(_in(days, window))
        if keys is not None:  # a stable sort, as sort_lists: the same order as sorting the whole frame
            picked = keys.iloc[picked].sort_values(["d", "u", "i"], kind="stable").index.to_numpy()
        rows.append(picked)
    del keys
    take = pa.array(np.concatenate(rows))
    columns: dict[str, pd.Series] = {}
    for name in names:
        column = read_table(uri, [name], dataset)[name].take(take).to_pandas()
        if isinstance(column.dtype, np.dtype) and not column.to_numpy().flags.writeable:
            column = column.copy()  # a view of Arrow's read-only buffer; model.py may edit values in place
        columns[name] = column
    frame = pd.DataFrame(columns, copy=False)
    ends = np.cumsum([len(r) for r in rows])
    fit, early, test = (frame.iloc[a:b].reset_index(drop=True) for a, b in zip([0, *ends[:-1]], ends, strict=True))
    return fit, early, test


def read_truth(uri: str | None) -> pd.DataFrame | None:
    """Every positive in the label horizons (as_of_date, user, item, relevance), or None without a URI."""
    return None if uri is None else read_training_data(uri)


def check_training_data(
    train: pd.DataFrame, valid: pd.DataFrame, spec: PipelineSpec, uri: str, early: pd.DataFrame | None = None
) -> None:
    """Fail before training on data that cannot give a meaningful model."""
    parts = [("training", train), ("test", valid)]
    if early is not None and spec.windows.early_stopping_days:
        parts.insert(1, ("early-stopping", early))
    for name, part in parts:
        if part.empty:
            raise TrainingDataError(
                f"{uri}: the {name} window has no rows. Build features and labels for its as-of dates "
                "(airflow-ml features --labels) or change windows in pipeline.yaml."
            )
    check_columns(list(train.columns), spec.features, uri)
    if LABEL not in train.columns:
        raise TrainingDataError(f"{uri}: no `{LABEL}` column; the export must alias the label column as {LABEL}.")
    if train[LABEL].isna().any():
        raise TrainingDataError(
            f"{uri}: {int(train[LABEL].isna().sum())} training row(s) have no label. Fix labels.sql so every "
            f"candidate gets a `{spec.label.column}` (e.g. IFNULL(..., 0) for no interaction)."
        )
    classes = sorted(train[LABEL].unique().tolist())
    if len(classes) < 2:
        raise TrainingDataError(
            f"{uri}: the label `{spec.label.column}` has one class only ({classes}) in the training window; "
            "a ranker cannot learn from it. Check labels.sql and the label horizon."
        )
    keys = ["as_of_date", spec.entities.user, spec.entities.item]
    dupes = sum(int(part.duplicated(keys).sum()) for _, part in parts)
    if dupes:
        raise TrainingDataError(
            f"{uri}: {dupes} duplicate (as_of_date, user, item) rows; candidates must be unique per "
            "user and date. Fix candidates.sql."
        )


def list_sizes(df: pd.DataFrame, user: str) -> np.ndarray:
    """Ranking-list sizes, rows already sorted by (as_of_date, user)."""
    return df.groupby(["as_of_date", user], sort=False).size().to_numpy()
