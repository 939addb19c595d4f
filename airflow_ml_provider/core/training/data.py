"""The trainer's input: the exported Parquet read into three time windows, sorted and checked.

Rows are split by as-of date (never at random) into fit, early stopping and the held-out test
window; rows of the purge gaps between them are dropped while still in Arrow, so they never
become pandas rows. Each window is sorted by (as_of_date, user, item): LightGBM's ranking
groups are consecutive rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.spec import PipelineSpec
from airflow_ml_provider.core.training.encoding import check_columns
from airflow_ml_provider.exceptions import MLProviderError

LABEL = "label"
#: The windows of plan_windows / read_window, in time order.
FIT, EARLY, TEST = 0, 1, 2


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


@dataclass(frozen=True)
class WindowRows:
    """Which export rows make each window (fit, early stopping, test), in list order; nothing else read yet."""

    uri: str
    dataset: pads.Dataset
    keys: tuple[str, str]  # the user and item columns
    windows: tuple[list[dt.date], list[dt.date], list[dt.date]]
    #: Per window: positions in the export (in the file order a scan returns), sorted by list.
    rows: tuple[np.ndarray, np.ndarray, np.ndarray]
    #: Per window: rows whose (as_of_date, user, item) repeats the row before it.
    duplicates: tuple[int, int, int]


def plan_windows(uri: str, spec: PipelineSpec, test_from: dt.date, *, early: bool = True) -> WindowRows:
    """The rows of the fit, early-stopping and test windows, from the key columns alone.

    ``early=False`` leaves the early-stopping window empty: without early stopping nothing reads it.
    """
    dataset = _dataset(uri)
    names = dataset.schema.names
    if "as_of_date" not in names:
        raise TrainingDataError(f"{uri}: no `as_of_date` column; the export must select f.as_of_date.")
    user, item = spec.entities.user, spec.entities.item
    missing = [c for c in (user, item) if c not in names]
    if missing:
        raise TrainingDataError(f"{uri}: no {missing} column; the export must select the user and item ids.")
    key_table = read_table(uri, ["as_of_date", user, item], dataset)
    days = as_days(key_table["as_of_date"])
    windows = window_days(spec, test_from)
    if not early:
        windows = (windows[0], [], windows[2])
    rows, dupes = [], []
    for window in windows:
        inside = np.flatnonzero(_in(days, window))
        part = key_table.take(pa.array(inside))
        # Arrow's sort is stable, as sort_lists: the same order as sorting the whole frame (nulls last).
        order = pc.sort_indices(part, sort_keys=[(c, "ascending") for c in part.column_names]).to_numpy()
        rows.append(inside[order])
        dupes.append(_repeats(part.take(pa.array(order))))
    del key_table
    return WindowRows(
        uri,
        dataset,
        (user, item),
        windows,
        (rows[0], rows[1], rows[2]),
        (dupes[0], dupes[1], dupes[2]),
    )


def _repeats(table: pa.Table) -> int:
    """Rows equal to the row before them in every column (nulls equal to nulls, as pandas' duplicated)."""
    if table.num_rows < 2:
        return 0
    same = pa.array(np.ones(table.num_rows - 1, dtype=bool))
    for column in table.columns:
        after, before = column[1:], column[:-1]
        both_null = pc.and_(pc.is_null(after), pc.is_null(before))
        same = pc.and_(same, pc.fill_null(pc.equal(after, before), both_null))
    return int(pc.sum(same).as_py() or 0)


def read_window(plan: WindowRows, index: int) -> pd.DataFrame:
    """One window's rows (0 fit, 1 early stopping, 2 test) as a frame in list order, built one column at a time.

    Only the Parquet row groups holding the window's rows are decoded, and only one window is
    ever a frame at a time unless the caller keeps several: the trainer reads the test window
    after the fit window is binned.
    """
    rows = plan.rows[index]
    if not len(rows):
        return plan.dataset.schema.empty_table().to_pandas()
    # Only the row groups that hold the window's rows are decoded; ``take`` indexes their rows.
    fragments, take = _row_groups_of(plan.dataset, rows)
    columns: dict[str, pd.Series] = {}
    keys: dict[str, pa.ChunkedArray] = {}
    for name in plan.dataset.schema.names:
        try:
            read = pa.concat_tables([f.to_table(columns=[name], schema=plan.dataset.schema) for f in fragments])
        except (FileNotFoundError, OSError) as err:
            raise TrainingDataError(f"training data {plan.uri} cannot be read: {err}") from err
        taken = read[name].take(take)
        if name in ("as_of_date", *plan.keys):
            keys[name] = taken
        column = taken.to_pandas()
        if isinstance(column.dtype, np.dtype) and not column.to_numpy().flags.writeable:
            column = column.copy()  # a view of Arrow's read-only buffer; model.py may edit values in place
        columns[name] = column
    frame = pd.DataFrame(columns, copy=False)
    # Guards the scan order the positions rely on (the plan's read and this one list rows alike).
    if not _in_list_order(keys["as_of_date"], *(keys[k] for k in plan.keys)):
        raise TrainingDataError(f"training data {plan.uri}: rows came back out of order; run again.")
    return frame


def _row_groups_of(dataset: pads.Dataset, rows: np.ndarray) -> tuple[list[pads.Fragment], pa.Array]:
    """The Parquet row groups holding ``rows`` (positions in the dataset's scan order: files, then
    row groups), and where each of ``rows`` is in those row groups read one after the other."""
    fragments = list(dataset.get_fragments())
    groups: list[tuple[int, int]] = []  # (fragment, row group id) in scan order
    sizes: list[int] = []
    for i, fragment in enumerate(fragments):
        fragment.ensure_complete_metadata()
        for g in fragment.row_groups:
            groups.append((i, g.id))
            sizes.append(g.num_rows)
    starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    group = np.searchsorted(starts, rows, side="right") - 1
    wanted = np.unique(group)
    offset = np.zeros(len(sizes), dtype=np.int64)
    offset[wanted] = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64)[wanted])[:-1]])
    ids: dict[int, list[int]] = {}
    for j in wanted.tolist():
        ids.setdefault(groups[j][0], []).append(groups[j][1])
    subsets = [fragments[i].subset(row_group_ids=g) for i, g in ids.items()]
    return subsets, pa.array(offset[group] + (rows - starts[group]))


def _in_list_order(days: pa.ChunkedArray, users: pa.ChunkedArray, items: pa.ChunkedArray) -> bool:
    """True when rows are sorted by (as_of_date, user, item) (compared in Arrow: no Python objects)."""
    if len(days) < 2:
        return True

    def step(col: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
        after, before = col[1:], col[:-1]
        return pc.greater(after, before), pc.equal(after, before)

    (d_up, d_eq), (u_up, u_eq), (i_up, i_eq) = step(days), step(users), step(items)
    ok = pc.or_(d_up, pc.and_(d_eq, pc.or_(u_up, pc.and_(u_eq, pc.or_(i_up, i_eq)))))
    return bool(pc.all(ok).as_py())


def read_windows(
    uri: str, spec: PipelineSpec, test_from: dt.date, *, early: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The fit, early-stopping and test windows of the export, each sorted by list (all three at once)."""
    plan = plan_windows(uri, spec, test_from, early=early)
    return read_window(plan, 0), read_window(plan, 1), read_window(plan, 2)


def read_truth(uri: str | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The evaluation export (``truth_data_sql``) as two frames, or (None, None) without a URI.

    The truth: every positive in the label horizons (as_of_date, user, item, relevance, seen_before).
    The popularity lists: as_of_date, user, item, popularity_rank (None for an export made before
    they were part of it).
    """
    if uri is None:
        return None, None
    frame = read_training_data(uri)
    if "popularity_rank" not in frame.columns:
        return frame, None
    listed = frame["popularity_rank"].notna().to_numpy()
    truth = frame.loc[~listed].drop(columns="popularity_rank").reset_index(drop=True)
    popular = frame.loc[listed].drop(columns=["relevance", "seen_before"], errors="ignore").reset_index(drop=True)
    popular["popularity_rank"] = popular["popularity_rank"].astype("int64")
    return truth, popular


def check_windows(plan: WindowRows, spec: PipelineSpec) -> None:
    """Fail before reading any feature on windows that are empty or hold a list twice."""
    parts = [("training", 0), ("early-stopping", 1), ("test", 2)]
    for name, index in parts:
        if index == 1 and not plan.windows[1]:
            continue  # no early stopping (model.early_stopping_rounds or windows.early_stopping_days is 0)
        if not len(plan.rows[index]):
            raise TrainingDataError(
                f"{plan.uri}: the {name} window has no rows. Build features and labels for its as-of dates "
                "(airflow-ml features --labels) or change windows in pipeline.yaml."
            )
    dupes = sum(plan.duplicates)
    if dupes:
        raise TrainingDataError(
            f"{plan.uri}: {dupes} duplicate (as_of_date, {spec.entities.user}, {spec.entities.item}) rows; "
            "candidates must be unique per user and date. Fix candidates.sql."
        )


def check_training_data(train: pd.DataFrame, spec: PipelineSpec, uri: str) -> None:
    """Fail before training on fit-window data that cannot give a meaningful model."""
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


def list_sizes(df: pd.DataFrame, user: str) -> np.ndarray:
    """Ranking-list sizes, rows already sorted by (as_of_date, user)."""
    return df.groupby(["as_of_date", user], sort=False).size().to_numpy()
