"""The drift reference profile: decile edges, right-closed bins, null/inf/other counts, JSON-safe values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from airflow_ml_provider.core.training.profile import bin_numeric, build_profile, categorical_profile, numeric_profile


def assert_plain_json(value):
    """Only the types json.dumps writes natively: no numpy scalars, no NaN."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert value is None or type(value) in (int, float, str, bool), f"{value!r} is a {type(value).__name__}"


def test_bins_are_right_closed_with_open_outer_bins():
    bins = bin_numeric([1.0, 2.0, 3.0], np.array([-100.0, 0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 1e9]))
    assert bins.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]


def test_bins_with_no_edges_are_one_bin():
    assert bin_numeric([], np.array([-1.0, 0.0, 5.0])).tolist() == [0, 0, 0]


def test_deciles_and_counts_of_one_to_ten():
    p = numeric_profile(np.arange(1, 11))
    # linear quantile of 1..10 at q is 1 + 9q
    assert p["edges"] == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    assert p["counts"] == [1] * 10
    assert (p["n"], p["null"], p["inf"], p["null_share"]) == (10, 0, 0, 0.0)
    assert (p["min"], p["max"], p["mean"]) == (1.0, 10.0, 5.5)


def test_values_on_an_edge_fall_in_the_lower_bin():
    # 0..10: deciles are exactly 1..9, so every integer but 0 and 10 sits on an edge.
    p = numeric_profile(np.arange(0, 11, dtype=float))
    assert p["edges"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert p["counts"] == [2, 1, 1, 1, 1, 1, 1, 1, 1, 1]  # bin 0 holds 0 and 1; bin 9 holds only 10


def test_duplicate_edges_are_removed_for_a_mostly_zero_column():
    p = numeric_profile(np.r_[np.zeros(90), np.arange(1, 11)])
    # deciles 0.1 .. 0.8 are all 0; 0.9 interpolates between the 90th (0) and 91st (1) value
    assert p["edges"] == pytest.approx([0.0, 0.1])
    assert p["counts"] == [90, 0, 10]


def test_nulls_and_infinities_are_counted_apart_from_the_bins():
    p = numeric_profile(pd.Series([1.0, 2.0, None, np.nan, np.inf, -np.inf, 3.0], dtype=object))
    assert (p["null"], p["inf"], p["n"]) == (2, 2, 7)
    assert p["null_share"] == pytest.approx(2 / 7)
    assert sum(p["counts"]) == 3
    assert (p["min"], p["max"], p["mean"]) == (1.0, 3.0, 2.0)


def test_nullable_integer_series():
    p = numeric_profile(pd.Series([1, None, 3], dtype="Int64"))
    assert (p["null"], sum(p["counts"]), p["n"]) == (1, 2, 3)


def test_constant_column_has_one_edge():
    p = numeric_profile(np.full(20, 5.0))
    assert p["edges"] == [5.0]
    assert p["counts"] == [20, 0]
    assert (p["min"], p["max"], p["mean"]) == (5.0, 5.0, 5.0)


@pytest.mark.parametrize(
    "values", [np.full(4, np.nan), pd.Series([None] * 4, dtype=object), np.array([np.inf, -np.inf, np.nan, np.nan])]
)
def test_column_without_finite_values_has_no_edges_and_one_empty_bin(values):
    p = numeric_profile(values)
    assert p["edges"] == []
    assert p["counts"] == [0]
    assert p["n"] == 4
    assert p["null"] + p["inf"] == 4
    assert (p["min"], p["max"], p["mean"]) == (None, None, None)
    json.dumps(p, allow_nan=False)


def test_empty_column():
    p = numeric_profile(np.array([], dtype=float))
    assert (p["edges"], p["counts"], p["n"], p["null_share"]) == ([], [0], 0, 0.0)
    c = categorical_profile(pd.Series([], dtype=object))
    assert (c["categories"], c["counts"], c["other"], c["null"], c["n"], c["null_share"]) == ([], [], 0, 0, 0, 0.0)


def test_negative_zero_edges_are_stored_as_zero():
    p = numeric_profile(np.r_[np.full(10, -0.0), [1.0]])
    assert json.dumps(p["edges"][0]) == "0.0"


def test_values_near_the_float_limits_do_not_overflow_the_edges():
    big = np.finfo(np.float64).max
    p = numeric_profile(np.array([-big, big, big]))
    assert all(np.isfinite(p["edges"]))
    assert sum(p["counts"]) == 3
    json.dumps(p, allow_nan=False)


def test_top_categories_break_count_ties_by_name_and_count_the_rest_as_other():
    values = pd.Series(["c", "a", "b", "c", "b", "a", "a", None, "d", None, np.nan])
    p = categorical_profile(values, top=2)
    assert p["categories"] == ["a", "b"]  # a: 3; b and c tie at 2, b wins by name
    assert p["counts"] == [3, 2]
    assert p["other"] == 3  # c twice, d once
    assert (p["null"], p["n"]) == (3, 11)
    assert p["null_share"] == pytest.approx(3 / 11)
    assert sum(p["counts"]) + p["other"] + p["null"] == p["n"]


def test_default_keeps_fifty_categories():
    values = np.array([f"cat_{i:03d}" for i in range(80) for _ in range(80 - i)], dtype=object)
    p = categorical_profile(values)
    assert p["categories"] == [f"cat_{i:03d}" for i in range(50)]
    assert p["counts"] == list(range(80, 30, -1))
    assert p["other"] == sum(range(1, 31))
    assert sum(p["counts"]) + p["other"] == p["n"] == len(values)


def test_categorical_dtype_does_not_list_unused_categories():
    values = pd.Series(["a", "b", "a"], dtype=pd.CategoricalDtype(["a", "b", "zz"]))
    p = categorical_profile(values)
    assert (p["categories"], p["counts"]) == (["a", "b"], [2, 1])


def test_categories_are_compared_as_strings():
    p = categorical_profile(pd.Series([1, "1", 2], dtype=object))
    assert (p["categories"], p["counts"]) == (["1", "2"], [2, 1])


def test_build_profile_covers_every_declared_column():
    df = pd.DataFrame(
        {
            "country": ["jp", "us", "jp", None, "fr"],
            "age": pd.array([20, 30, None, 40, 50], dtype="Int64"),
            "spend": [0.5, np.nan, np.inf, 2.5, 1.0],
            "is_new": [True, False, True, True, False],
            "ignored": [1, 2, 3, 4, 5],
        }
    )
    p = build_profile(df, {"country": "STRING", "age": "INT64", "spend": "FLOAT64", "is_new": "BOOL"})
    assert list(p) == ["country", "age", "spend", "is_new"]
    assert {c: (e["kind"], e["type"]) for c, e in p.items()} == {
        "country": ("categorical", "STRING"),
        "age": ("numeric", "INT64"),
        "spend": ("numeric", "FLOAT64"),
        "is_new": ("numeric", "BOOL"),
    }
    assert (p["country"]["categories"], p["country"]["counts"], p["country"]["null"]) == (
        ["jp", "fr", "us"],
        [2, 1, 1],
        1,
    )
    assert (p["spend"]["null"], p["spend"]["inf"]) == (1, 1)
    assert (p["is_new"]["min"], p["is_new"]["max"], p["is_new"]["mean"]) == (0.0, 1.0, 0.6)
    for entry in p.values():
        other = entry.get("other", 0) + entry.get("inf", 0)
        assert sum(entry["counts"]) + other + entry["null"] == entry["n"] == len(df)


def test_profile_round_trips_through_strict_json():
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "x": np.r_[rng.normal(size=995), [np.nan, np.inf, -np.inf, np.nan, 0.0]],
            "n": rng.integers(0, 5, 1000),
            "flag": rng.random(1000) < 0.2,
            "cat": rng.choice(np.array(["a", "b", "c", None], dtype=object), 1000),
            "empty": np.full(1000, np.nan),
        }
    )
    p = build_profile(df, {"x": "FLOAT64", "n": "INT64", "flag": "BOOL", "cat": "STRING", "empty": "FLOAT64"})
    assert_plain_json(p)
    assert json.loads(json.dumps(p, allow_nan=False)) == p


@pytest.mark.parametrize(
    ("columns", "match"),
    [({"d": "DATE"}, "type 'DATE', which drift checks cannot profile"), ({"missing": "INT64"}, "not in the training")],
)
def test_build_profile_errors_name_the_column(columns, match):
    df = pd.DataFrame({"d": pd.to_datetime(["2026-01-01"]), "x": [1]})
    with pytest.raises(ValueError, match=match):
        build_profile(df, columns)


FLOATS = hnp.arrays(
    np.float64,
    st.integers(0, 60),
    elements=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf]),  # repeats, so edges collide
    ),
)


@settings(max_examples=300, deadline=None)
@given(values=FLOATS)
def test_every_row_lands_in_exactly_one_bin_or_count(values):
    p = numeric_profile(values)
    assert sum(p["counts"]) + p["null"] + p["inf"] == p["n"] == len(values)
    assert len(p["counts"]) == len(p["edges"]) + 1
    assert p["edges"] == sorted(set(p["edges"]))
    finite = values[np.isfinite(values)]
    assert p["counts"] == np.bincount(bin_numeric(p["edges"], finite), minlength=len(p["counts"])).tolist()
    json.dumps(p, allow_nan=False)


def test_wide_frame_is_profiled_without_per_row_python():
    rng = np.random.default_rng(11)
    n = 300_000
    df = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(5)})
    df["cat"] = rng.choice(np.array([f"c{i}" for i in range(200)], dtype=object), n)
    p = build_profile(df, {**{f"f{i}": "FLOAT64" for i in range(5)}, "cat": "STRING"})
    assert all(sum(e["counts"]) + e.get("other", 0) == n for e in p.values())


def test_per_item_columns_are_profiled_once_per_item_and_day():
    # A popular item proposed to many users weighs once per day, like any other item.
    df = pd.DataFrame(
        {
            "as_of_date": ["d1"] * 5 + ["d2"] * 3,
            "item_id": ["a", "a", "a", "a", "b", "a", "a", "b"],
            "views": [100, 100, 100, 100, 1, 90, 90, 2],
            "pair": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    profile = build_profile(df, {"views": "INT64", "pair": "INT64"}, per_item=["views"], keys=("as_of_date", "item_id"))
    one_per_item_and_day = numeric_profile(np.array([100, 1, 90, 2]))
    assert profile["views"] == {"kind": "numeric", "type": "INT64", **one_per_item_and_day, "per": "item_id"}
    assert profile["pair"]["n"] == 8 and "per" not in profile["pair"]
    with pytest.raises(ValueError, match="per_item columns need keys"):
        build_profile(df, {"views": "INT64"}, per_item=["views"])
