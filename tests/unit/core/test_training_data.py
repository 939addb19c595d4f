"""The trainer's input: windows cut in Arrow equal the old whole-frame sort and split; matrices by column."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.training.data import (
    EARLY,
    FIT,
    TEST,
    TrainingDataError,
    as_days,
    check_windows,
    day_range,
    list_sizes,
    plan_windows,
    read_training_data,
    read_window,
    read_windows,
    sort_lists,
    split_windows,
    window_days,
)
from airflow_ml_provider.core.training.encoding import encode, encode_consuming, fit_categories
from tests.paths import PIPELINE

SPEC = load_spec(PIPELINE)
RUN = dt.date(2026, 3, 31)


def export(tmp_path, seed: int = 3):
    """An export as DuckDB writes it: rows in no particular order, every as-of date of the run."""
    rng = np.random.default_rng(seed)
    train, valid = SPEC.training_dates(RUN)
    days = [*train, *valid]
    rows = [(d, f"u{u}", f"i{i}") for d in days for u in range(6) for i in rng.choice(40, size=5, replace=False)]
    rng.shuffle(rows)
    n = len(rows)
    table = pa.table(
        {
            "as_of_date": pa.array([r[0] for r in rows], pa.date32()),
            "user_id": [r[1] for r in rows],
            "item_id": [r[2] for r in rows],
            "candidate_source": rng.choice(["repeat", "covisit", None], size=n).tolist(),
            "candidate_score": rng.normal(size=n),
            "label": rng.integers(0, 2, size=n),
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    return path, valid[0]


def test_windows_cut_in_arrow_equal_sorting_and_splitting_the_whole_frame(tmp_path):
    path, test_from = export(tmp_path)
    whole = sort_lists(read_training_data(str(path)), "user_id", "item_id")
    expected = split_windows(whole, SPEC, test_from)
    got = read_windows(str(path), SPEC, test_from)
    for want, part in zip(expected, got, strict=True):
        assert len(part) > 0
        pd.testing.assert_frame_equal(part, want.reset_index(drop=True))
    # Every row of a window is in its window's dates, and lists are runs of consecutive rows.
    fit_days = set(SPEC.evaluation_windows(RUN).fit)
    assert set(got[0]["as_of_date"]) == fit_days
    assert list_sizes(got[0], "user_id").sum() == len(got[0])
    assert (list_sizes(got[0], "user_id") == 5).all()


def test_an_export_without_as_of_date_is_named(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"user_id": ["u"], "item_id": ["i"]}), path)
    with pytest.raises(TrainingDataError, match="no `as_of_date` column"):
        read_windows(str(path), SPEC, dt.date(2026, 3, 18))


def test_days_of_pandas_dates_and_of_arrow_dates_agree():
    dates = [dt.date(2026, 3, 2), dt.date(2026, 2, 28), dt.date(2026, 3, 1)]
    from_pandas = as_days(pd.Series(dates, dtype=object))
    from_arrow = as_days(pa.chunked_array([pa.array(dates, pa.date32())]))
    assert from_pandas.tolist() == from_arrow.tolist() == dates
    assert day_range(from_pandas) == (dt.date(2026, 2, 28), dt.date(2026, 3, 2))


def test_column_major_encoding_has_the_same_values_as_row_major(tmp_path):
    path, test_from = export(tmp_path)
    fit = read_windows(str(path), SPEC, test_from)[0]
    # Nulls and +/-inf (missing) in both kinds of column, unseen categories in none.
    fit.loc[fit.index[::7], "candidate_score"] = np.inf
    fit.loc[fit.index[1::9], "candidate_score"] = np.nan
    features = [
        f.model_copy(update={"nullable": True})
        for f in SPEC.features
        if f.name in ("candidate_source", "candidate_score")
    ]
    categories = fit_categories(fit, features)
    rows, cols = encode(fit, features, categories), encode(fit, features, categories, order="F")
    assert rows.inf_replaced == cols.inf_replaced == {"candidate_score": int(np.isinf(fit["candidate_score"]).sum())}
    rows, cols = rows.matrix, cols.matrix
    assert rows.flags["C_CONTIGUOUS"] and cols.flags["F_CONTIGUOUS"] and not cols.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(rows, cols)  # NaN == NaN here


def test_the_trainer_imports_lightgbm_without_scikit_learn_and_leaves_it_importable():
    code = (
        "import json, sys\n"
        "from airflow_ml_provider.core.training.trainer import import_lightgbm\n"
        "lgb = import_lightgbm()\n"
        "hidden = 'sklearn' not in sys.modules\n"
        "import sklearn\n"  # a model.py may still use it
        "print(json.dumps([hidden, lgb.Dataset.__name__, sklearn.__name__]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, "Dataset", "sklearn"]


def test_windows_read_by_row_group_from_several_files_equal_the_whole_frame(tmp_path):
    """A sharded export (BigQuery writes many files) with small row groups: each window read alone is exact."""
    path, test_from = export(tmp_path, seed=5)
    table = pq.read_table(path)
    folder = tmp_path / "sharded"
    folder.mkdir()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "000.parquet", row_group_size=97)
    pq.write_table(table.slice(half), folder / "001.parquet", row_group_size=131)
    whole = sort_lists(read_training_data(str(path)), "user_id", "item_id")
    expected = split_windows(whole, SPEC, test_from)
    plan = plan_windows(str(folder), SPEC, test_from)
    for index in (TEST, FIT, EARLY):  # any order: each read stands alone
        pd.testing.assert_frame_equal(read_window(plan, index), expected[index].reset_index(drop=True))


def test_without_early_stopping_the_early_window_is_not_read_nor_required(tmp_path):
    path, test_from = export(tmp_path)
    early_days = set(window_days(SPEC, test_from)[EARLY])
    table = pq.read_table(path)
    keep = [d not in early_days for d in table["as_of_date"].to_pylist()]
    pq.write_table(table.filter(pa.array(keep)), path)  # an export with no early-stopping rows at all
    with pytest.raises(TrainingDataError, match="the early-stopping window has no rows"):
        check_windows(plan_windows(str(path), SPEC, test_from), SPEC)
    plan = plan_windows(str(path), SPEC, test_from, early=False)
    check_windows(plan, SPEC)
    assert plan.windows[EARLY] == [] and len(plan.rows[EARLY]) == 0
    fit, early, test = (read_window(plan, i) for i in (FIT, EARLY, TEST))
    assert early.empty and list(early.columns) == list(fit.columns)
    assert len(fit) and len(test)


def test_duplicate_lists_are_counted_from_the_keys_before_any_feature_is_read(tmp_path):
    path, test_from = export(tmp_path)
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 3)]), path)
    with pytest.raises(TrainingDataError, match="3 duplicate"):
        check_windows(plan_windows(str(path), SPEC, test_from), SPEC)


def test_encoding_that_consumes_the_frame_equals_encoding_and_keeps_what_is_asked(tmp_path):
    path, test_from = export(tmp_path)
    fit = read_windows(str(path), SPEC, test_from)[0]
    fit.loc[fit.index[::7], "candidate_score"] = np.inf
    features = [
        f.model_copy(update={"nullable": True})
        for f in SPEC.features
        if f.name in ("candidate_source", "candidate_score")
    ]
    categories = fit_categories(fit, features)
    want = encode(fit, features, categories, order="F")
    got = encode_consuming(fit, features, categories, "fit", keep={"candidate_source"})
    np.testing.assert_array_equal(got.matrix, want.matrix)
    assert got.matrix.flags["F_CONTIGUOUS"] and got.inf_replaced == want.inf_replaced
    assert "candidate_score" not in fit.columns and "candidate_source" in fit.columns
