"""Drift checks (core/drift*.py): the one-scan SQL on real DuckDB agrees with a numpy reference; metrics, verdicts."""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import DriftSpec
from airflow_ml_provider.core.drift import bins as drift_bins
from airflow_ml_provider.core.drift import check as drift
from airflow_ml_provider.core.drift import metrics as drift_metrics
from airflow_ml_provider.core.drift import report as drift_report
from airflow_ml_provider.core.drift import scan as drift_scan
from airflow_ml_provider.core.drift import store as drift_store
from airflow_ml_provider.core.drift import verdict as drift_verdict
from airflow_ml_provider.core.drift.bins import ColumnBins, DriftProfileError
from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS, Scan
from airflow_ml_provider.core.training.profile import categorical_profile, numeric_profile
from airflow_ml_provider.core.warehouse.sql import bind_params, parse
from airflow_ml_provider.exceptions import IdentifierError

DAY = dt.date(2026, 3, 31)
NASTY = ["it's", 'say "hi"', "back\\slash", "'); DROP TABLE t; --", "new\nline", "ünï", "", "__OTHER__", "@c0_0"]
TOL = 1e-9


def numeric(values, sql_type: str = "FLOAT64") -> ColumnBins:
    return ColumnBins.from_profile("x", {"kind": "numeric", "type": sql_type, **numeric_profile(values)})


def categorical(values, top: int = 50) -> ColumnBins:
    return ColumnBins.from_profile("c", {"kind": "categorical", "type": "STRING", **categorical_profile(values, top)})


def scan_counts(wh: DuckDBWarehouse, columns: dict[str, pa.Array], bins: list[ColumnBins], segment_by=(), **kw):
    """Load ``columns`` as one partition of table t and run the drift scan on it."""
    n = len(next(iter(columns.values()))) if columns else 0
    wh.replace_table("t", pa.table({"as_of_date": pa.array([DAY] * n, pa.date32()), **columns}))
    return drift_scan.run_scan(wh, Scan("t", "as_of_date", tuple(bins), segment_by=tuple(segment_by)), DAY, **kw)


@pytest.fixture(scope="module")
def wh():
    return DuckDBWarehouse(Path(tempfile.mkdtemp()) / "drift.duckdb", lock_timeout=10)


# --- SQL path vs numpy reference ------------------------------------------------------------------

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, -3.0, 1e300, -1e-300]),
    st.none(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=st.lists(floats, min_size=0, max_size=60), cur=st.lists(floats, max_size=60), reuse=st.data())
def test_numeric_sql_counts_and_metrics_match_numpy(wh, ref, cur, reuse):
    bins = numeric(np.array(ref, dtype=object))
    # Values exactly on the stored edges must land in the lower (right-closed) bin on both paths.
    cur = cur + reuse.draw(st.lists(st.sampled_from(list(bins.edges) or [0.0]), max_size=10))
    counts = scan_counts(wh, {"x": pa.array(cur, pa.float64())}, [bins])[ALL_SEGMENTS]["x"]
    expected = drift_bins.numpy_counts(bins, cur)
    assert counts.tolist() == expected.tolist()
    # The profile's own bins of the reference, counted by the SQL path, are the stored counts.
    assert scan_counts(wh, {"x": pa.array(ref, pa.float64())}, [bins])[ALL_SEGMENTS]["x"].tolist() == list(
        bins.reference
    )
    if sum(bins.reference) and counts.sum():
        ours = drift_metrics.column_metrics(bins, counts, 1e-4)
        theirs = drift_metrics.numpy_metrics(np.array(bins.reference), expected, 1e-4)
        for metric in ("psi", "js_distance", "l_inf"):
            assert ours[metric] == pytest.approx(theirs[metric], abs=TOL)


texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=6), st.none())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=st.lists(texts, max_size=60), cur=st.lists(texts, max_size=60), top=st.integers(1, 6))
def test_categorical_sql_counts_and_metrics_match_numpy(wh, ref, cur, top):
    bins = categorical(pd.Series(ref, dtype=object), top)
    counts = scan_counts(wh, {"c": pa.array(cur, pa.string())}, [bins])[ALL_SEGMENTS]["c"]
    expected = drift_bins.numpy_counts(bins, cur)
    assert counts.tolist() == expected.tolist()
    if sum(bins.reference) and counts.sum():
        ours = drift_metrics.column_metrics(bins, counts, 1e-4)
        theirs = drift_metrics.numpy_metrics(np.array(bins.reference), expected, 1e-4)
        for metric in ("psi", "js_distance", "l_inf"):
            assert ours[metric] == pytest.approx(theirs[metric], abs=TOL)


def test_int_and_bool_columns_bin_like_the_profile(wh):
    ints = numeric(np.arange(100) % 7, "INT64")
    flags = ColumnBins.from_profile("f", {"kind": "numeric", "type": "BOOL", **numeric_profile(np.arange(10) % 3 == 0)})
    cur_i, cur_f = [0, 3, 6, 9, None, -4], [True, False, None, True]
    got = scan_counts(wh, {"x": pa.array(cur_i, pa.int64())}, [ints])[ALL_SEGMENTS]["x"]
    assert got.tolist() == drift_bins.numpy_counts(ints, cur_i).tolist()
    got = scan_counts(wh, {"f": pa.array(cur_f, pa.bool_())}, [flags])[ALL_SEGMENTS]["f"]
    assert got.tolist() == drift_bins.numpy_counts(flags, [1.0, 0.0, None, 1.0]).tolist()


def test_many_columns_are_counted_in_one_scan(wh):
    rng = np.random.default_rng(3)
    data = {f"x{i}": rng.normal(i, 1, 500) for i in range(6)} | {"c": rng.choice(NASTY, 500)}
    bins = [ColumnBins.from_profile(k, {"type": "FLOAT64", **numeric_profile(v)}) for k, v in data.items() if k != "c"]
    bins.append(ColumnBins.from_profile("c", categorical_profile(data["c"])))
    sql, _ = drift_scan.scan_sql(Scan("t", "as_of_date", tuple(bins)), DAY, DAY)
    assert sql.count("FROM `t`") == 1
    counts = scan_counts(wh, {k: pa.array(v) for k, v in data.items()}, bins)[ALL_SEGMENTS]
    for b in bins:
        assert counts[b.name].tolist() == list(b.reference)


def test_per_item_columns_count_each_item_once_per_day(wh):
    # Item a is proposed to five users, b to one: per item, each weighs one; a row column still counts rows.
    days = [DAY - dt.timedelta(days=1)] * 4 + [DAY] * 8
    item = ["a", "a", "b", "c"] + ["a"] * 5 + ["b", "c", "c"]
    views = [9.0, 9.0, 1.0, None] + [50.0] * 5 + [1.0, 3.0, 3.0]
    seg = ["s1", "s2", "s1", "s1", "s1", "s1", "s2", "s2", "s2", "s1", "s1", "s2"]
    reference = ColumnBins.from_profile("views", {"type": "FLOAT64", **numeric_profile(np.array([1.0, 5.0, 20.0]))})
    per_item = ColumnBins.from_profile("views", {**reference.to_profile(), "per": "item_id"})
    wh.replace_table(
        "t",
        pa.table(
            {
                "as_of_date": pa.array(days, pa.date32()),
                "item_id": item,
                "views": pa.array(views, pa.float64()),
                "s": seg,
                "rows": pa.array(views, pa.float64()),
            }
        ),
    )
    by_row = ColumnBins.from_profile("rows", reference.to_profile())
    scan = Scan("t", "as_of_date", (per_item, by_row), segment_by=("s",))
    today = drift_scan.run_scan(wh, scan, DAY)
    assert today[ALL_SEGMENTS]["views"].tolist() == drift_bins.numpy_counts(per_item, [50.0, 1.0, 3.0]).tolist()
    assert today[ALL_SEGMENTS]["rows"].tolist() == drift_bins.numpy_counts(by_row, views[4:]).tolist()
    # In a segment, the items that have a row in it: a and c are in both s1 and s2 today.
    assert today["s=s1"]["views"].tolist() == drift_bins.numpy_counts(per_item, [50.0, 1.0, 3.0]).tolist()
    assert today["s=s2"]["views"].tolist() == drift_bins.numpy_counts(per_item, [50.0, 3.0]).tolist()
    # Over a window (segment references), an item counts once per day it appears.
    window = drift_scan.run_scan(wh, scan, DAY - dt.timedelta(days=1), DAY)[ALL_SEGMENTS]["views"]
    assert window.tolist() == drift_bins.numpy_counts(per_item, [9.0, 1.0, None, 50.0, 1.0, 3.0]).tolist()
    sql, _ = drift_scan.scan_sql(scan, DAY, DAY)
    parse(sql, "scan")  # GoogleSQL, as BigQuery will get it
    assert sql.count("FROM `t`") == 1 and "COUNT(DISTINCT" in sql


def test_per_item_profiles_keep_their_key_and_need_min_items():
    bins = ColumnBins.from_profile("views", {"type": "INT64", **numeric_profile(np.arange(300.0)), "per": "item_id"})
    assert bins.per == "item_id" and bins.with_reference(bins.reference).per == "item_id"
    assert ColumnBins.from_profile("views", bins.to_profile()) == bins
    with pytest.raises(IdentifierError):
        ColumnBins.from_profile("views", {**bins.to_profile(), "per": "item_id; DROP"})
    _, why = drift.scannable({"views": bins}, {"views": "BIGINT"}, "t")
    assert why == {"views": "not_in_table: table t has no column item_id, which views is counted per"}
    few = drift_bins.numpy_counts(bins, np.arange(60.0))
    config = DriftSpec(min_rows=1000, min_items=50)
    assert drift_verdict.compare({"views": bins}, {ALL_SEGMENTS: {"views": few}}, config, table="t")[0].status == (
        "evaluated"
    )
    skipped = drift_verdict.compare(
        {"views": bins}, {ALL_SEGMENTS: {"views": few}}, DriftSpec(min_items=100), table="t"
    )[0]
    assert skipped.skip_reason == "too_small: 60 current items, fewer than min_items=100"


# --- what reaches the SQL text ---------------------------------------------------------------------


def test_categories_travel_as_parameters_never_as_sql_text():
    bins = categorical(pd.Series(NASTY * 3))
    sql, params = drift_scan.scan_sql(Scan("t", "as_of_date", (bins,)), DAY, DAY)
    parse(sql, "scan")  # GoogleSQL, as BigQuery will get it
    assert "DROP TABLE" not in sql and "it's" not in sql
    bound = bind_params(sql, params, "scan")
    assert sorted(v for k, v in bound.items() if k.startswith("c")) == sorted(set(NASTY))


def test_edges_are_repr_literals_and_must_be_finite():
    assert drift_scan.sql_float(0.1) == "0.1" and float(drift_scan.sql_float(1 / 3)) == 1 / 3
    assert drift_scan.sql_float(-0.0) == "0.0"
    for bad in (math.inf, -math.inf, math.nan, "1; DROP TABLE t", True):
        with pytest.raises(DriftProfileError, match="only finite floats"):
            drift_scan.sql_float(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("profile", "match"),
    [
        ({"kind": "numeric", "edges": [1.0, math.inf], "counts": [1, 1, 1], "null": 0}, "not a finite number"),
        ({"kind": "numeric", "edges": [2.0, 1.0], "counts": [1, 1, 1], "null": 0}, "strictly increasing"),
        ({"kind": "numeric", "edges": ["1) OR (1"], "counts": [1, 1], "null": 0}, "not a finite number"),
        ({"kind": "numeric", "edges": [1.0], "counts": [1], "null": 0}, "1 bin counts for 2 bins"),
        ({"kind": "categorical", "categories": ["a", "a"], "counts": [1, 1], "other": 0, "null": 0}, "distinct"),
        ({"kind": "numeric", "edges": [1.0], "counts": [1, -1], "null": 0}, "non-negative"),
        ({"kind": "categorical", "categories": ["a"], "counts": [1]}, "missing key 'other'"),
        ({"kind": "histogram"}, "neither numeric nor categorical"),
    ],
)
def test_malformed_profiles_are_refused_with_the_column_named(profile, match):
    with pytest.raises(DriftProfileError, match=rf"column 'x' is malformed|{match}") as info:
        ColumnBins.from_profile("x", profile)
    assert match in str(info.value) and "'x'" in str(info.value)


def test_column_names_must_be_identifiers():
    with pytest.raises(ValueError, match="not a valid identifier"):
        ColumnBins.from_profile("x`; DROP", {"edges": [], "counts": [0], "null": 0})


# --- metrics -----------------------------------------------------------------------------------------


def test_identical_distributions_have_zero_distance():
    ref = np.array([10, 20, 30, 0])
    assert drift_metrics.psi(ref, ref * 3) == pytest.approx(0) and drift_metrics.js_distance(
        ref, ref * 3
    ) == pytest.approx(0)
    assert drift_metrics.l_inf(ref, ref * 3) == pytest.approx(0)


def test_disjoint_distributions():
    ref, cur = np.array([5, 0]), np.array([0, 5])
    assert drift_metrics.js_distance(ref, cur) == pytest.approx(1.0)
    assert drift_metrics.l_inf(ref, cur) == pytest.approx(1.0)
    # Empty bins count as epsilon: 2 * (1 - eps) * ln(1 / eps)
    assert drift_metrics.psi(ref, cur, 1e-4) == pytest.approx(2 * (1 - 1e-4) * math.log(1e4))


def test_psi_by_hand():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * math.log(0.5) + (0.75 - 0.5) * math.log(1.5)
    assert drift_metrics.psi(p * 100, q * 100) == pytest.approx(expected, abs=1e-12)


def test_null_rate_change_and_new_category_share():
    bins = categorical(pd.Series(["a"] * 6 + ["b"] * 4))  # every category kept: other is 0
    cur = drift_bins.numpy_counts(bins, ["a", "a", "zzz", "yyy", None, None, "b", "b"])
    m = drift_metrics.column_metrics(bins, cur, 1e-4)
    assert m["null_rate_change"] == pytest.approx(2 / 8)
    assert m["new_category_share"] == pytest.approx(2 / 6)  # of the non-null current values


def test_new_category_share_is_the_growth_of_other_when_the_reference_had_a_tail():
    bins = categorical(pd.Series(["a"] * 8 + ["b", "c"]), top=1)  # other = 2 of 10
    cur = drift_bins.numpy_counts(bins, ["a"] * 5 + ["d"] * 5)
    assert drift_metrics.new_category_share(bins, cur) == pytest.approx(0.5 - 0.2)
    assert drift_metrics.new_category_share(bins, drift_bins.numpy_counts(bins, ["a"] * 10)) == 0.0


# --- skips, thresholds, verdict -------------------------------------------------------------------------


def judge(bins, current, min_rows=5, levels=(0.1, 0.25)):
    return drift_verdict.evaluate_column(
        bins, np.asarray(current), table="t", segment=ALL_SEGMENTS, levels=levels, epsilon=1e-4, min_rows=min_rows
    )


def test_empty_constant_and_small_columns_are_skipped_with_a_reason(wh):
    varied = numeric(np.arange(100.0))
    constant = numeric(np.full(100, 5.0))
    all_null = numeric(np.full(100, np.nan))
    empty_counts = scan_counts(wh, {"x": pa.array([], pa.float64())}, [varied])[ALL_SEGMENTS]["x"]
    cases = {
        "empty: no current rows": judge(varied, empty_counts),
        "too_small: 3 current rows": judge(varied, drift_bins.numpy_counts(varied, [1.0, 2.0, 3.0])),
        "constant: every reference row is in one bin ((-inf, 5.0])": judge(
            constant, drift_bins.numpy_counts(constant, [9.0] * 9)
        ),
        "constant: every reference row is in one bin (__NULL__)": judge(
            all_null, drift_bins.numpy_counts(all_null, [1.0] * 9)
        ),
        "empty: the reference profile has no rows": judge(
            numeric(np.array([])), drift_bins.numpy_counts(varied, [1.0] * 9)
        ),
    }
    for reason, result in cases.items():
        assert result.status == "skipped" and result.severity is None and result.metrics == {}
        assert result.skip_reason.startswith(reason), result.skip_reason


def test_severity_thresholds_are_inclusive():
    bins = numeric(np.arange(100.0))
    cur = drift_bins.numpy_counts(bins, np.r_[np.arange(100.0), np.full(40, 95.0)])
    value = judge(bins, cur).metrics["psi"]
    assert judge(bins, cur, levels=(value, value + 1)).severity == "warn"
    assert judge(bins, cur, levels=(value / 2, value)).severity == "drift"
    assert judge(bins, cur, levels=(value + 1, value + 2)).severity == "ok"


def result(column, severity, segment=ALL_SEGMENTS, status="evaluated"):
    return drift_verdict.ColumnResult(
        "t", segment, column, "numeric", status, severity, {"psi": 0.3}, 0.1, 0.25, 10, 10, 0, 0
    )


def test_verdict_drift_on_a_critical_column_or_half_the_columns():
    four = [result("a", "drift"), result("b", "ok"), result("c", "ok"), result("d", "warn")]
    assert drift_verdict.dataset_verdict(four, critical=[]).verdict == "warn"
    assert drift_verdict.dataset_verdict(four, critical=["a"]).verdict == "drift"
    half = [result("a", "drift"), result("b", "drift"), result("c", "ok"), result("d", "ok")]
    v = drift_verdict.dataset_verdict(half, critical=[])
    assert (v.verdict, v.drifted, v.drifted_share, v.evaluated) == ("drift", ["a", "b"], 0.5, 4)
    assert drift_verdict.dataset_verdict([result("a", "ok")], critical=["a"]).verdict == "ok"


def test_verdict_ignores_segments_and_skipped_columns():
    rows = [result("a", "ok"), result("a", "drift", segment="s=1"), result("b", None, status="skipped")]
    v = drift_verdict.dataset_verdict(rows, critical=["a", "b"])
    assert (v.verdict, v.evaluated) == ("ok", 1)
    assert drift_verdict.dataset_verdict([result("b", None, status="skipped")], critical=[]).verdict == "skipped"


def test_per_column_thresholds_apply(wh):
    bins = numeric(np.arange(1000.0))
    cur = drift_bins.numpy_counts(bins, np.r_[np.arange(1000.0), np.full(30, 50.0)])
    loose = DriftSpec(min_rows=1)
    tight = DriftSpec(min_rows=1, thresholds={"x": {"psi_warn": 0.001, "psi_drift": 0.002}})
    counts = {ALL_SEGMENTS: {"x": cur}}
    assert drift_verdict.compare({"x": bins}, counts, loose, table="t")[0].severity == "ok"
    tightened = drift_verdict.compare({"x": bins}, counts, tight, table="t")[0]
    assert (tightened.severity, tightened.warn_threshold, tightened.threshold) == ("drift", 0.001, 0.002)


# --- segments ----------------------------------------------------------------------------------------


def test_segments_are_grouping_sets_of_the_same_scan(wh):
    rng = np.random.default_rng(5)
    x = rng.normal(size=3000)
    seg = rng.choice(["a", "b", "it's"], 3000).astype(object)
    seg[:7] = None
    bins = numeric(x)
    counts = scan_counts(wh, {"x": pa.array(x), "s": pa.array(seg, pa.string())}, [bins], segment_by=["s"])
    assert set(counts) == {ALL_SEGMENTS, "s=a", "s=b", "s=it's", "s=__NULL__"}
    total = sum(c["x"] for k, c in counts.items() if k != ALL_SEGMENTS)
    assert counts[ALL_SEGMENTS]["x"].tolist() == total.tolist() == list(bins.reference)
    assert counts["s=a"]["x"].tolist() == drift_bins.numpy_counts(bins, x[seg == "a"]).tolist()
    # Only the largest segments come back; the total still counts every row.
    capped = scan_counts(wh, {"x": pa.array(x), "s": pa.array(seg, pa.string())}, [bins], ["s"], max_segments=2)
    assert len(capped) == 3 and capped[ALL_SEGMENTS]["x"].sum() == 3000


def test_segments_compare_with_their_own_reference_and_need_enough_rows(wh):
    rng = np.random.default_rng(6)
    # Segment b is shifted in the reference AND today: no drift, although it differs from the whole.
    ref_x = np.r_[rng.normal(0, 1, 4000), rng.normal(3, 1, 4000), rng.normal(0, 1, 50)]
    seg = np.array(["a"] * 4000 + ["b"] * 4000 + ["c"] * 50)
    bins = numeric(ref_x)
    wh.replace_table(
        "f", pa.table({"as_of_date": pa.array([DAY - dt.timedelta(days=1)] * len(seg)), "x": ref_x, "s": seg})
    )
    scan = Scan("f", "as_of_date", (bins,), segment_by=("s",))
    window = (DAY - dt.timedelta(days=3), DAY - dt.timedelta(days=1))
    refs = drift_store.segment_refs(wh, scan, "m", "v1", window, max_segments=10)
    assert set(refs) == {"s=a", "s=b", "s=c"} and sum(refs["s=b"]["x"].reference) == 4000
    wh.execute("DELETE FROM f")  # the stored references are used from now on, not rebuilt
    assert drift_store.segment_refs(wh, scan, "m", "v1", window, max_segments=10) == refs
    cur = drift_bins.numpy_counts(bins, rng.normal(3, 1, 4000))
    counts = {ALL_SEGMENTS: {"x": cur}, "s=b": {"x": cur}, "s=c": {"x": np.ones_like(cur)}, "s=zz": {"x": cur}}
    results = {
        r.segment: r
        for r in drift_verdict.compare(
            {"x": bins}, counts, DriftSpec(min_segment_rows=100), table="f", segment_refs=refs
        )
    }
    assert results[ALL_SEGMENTS].severity == "drift"
    assert results["s=b"].severity == "ok"
    assert results["s=c"].skip_reason.startswith("too_small")
    assert results["s=zz"].skip_reason.startswith("no_reference")


# --- prediction drift on a hand-made recommendations partition -----------------------------------------


def test_prediction_drift_counts_only_this_model_versions_scores(wh):
    rng = np.random.default_rng(8)
    reference = numeric_profile(rng.normal(1.0, 0.3, 5000))
    n = 2000
    recs = pa.table(
        {
            "prediction_date": pa.array([DAY] * 2 * n, pa.date32()),
            "user_id": [f"u{i}" for i in range(2 * n)],
            "score": np.r_[rng.normal(1.0, 0.3, n), rng.normal(3.0, 0.3, n)],
            "model_name": ["recsys"] * 2 * n,
            "model_version": ["v1"] * n + ["v0"] * n,
        }
    )
    wh.replace_table("recommendations", recs)
    config = DriftSpec(min_rows=100)
    same = drift.check_predictions(wh, {"score_topk": reference}, DAY, config, "recommendations", "recsys", "v1")
    assert (same[0].column, same[0].n_cur, same[0].severity) == ("score", n, "ok")
    other = drift.check_predictions(wh, {"score_topk": reference}, DAY, config, "recommendations", "recsys", "v0")
    assert other[0].severity == "drift" and other[0].metrics["psi"] > 1
    missing = drift.check_predictions(wh, {}, DAY, config, "recommendations", "recsys", "v1")
    assert missing[0].skip_reason.startswith("no_reference: the model envelope has no score_topk")


# --- stored profiles and results rows -----------------------------------------------------------------


def test_store_profile_is_idempotent_and_keeps_quotes(wh):
    profile = {
        "features": {"c": {"kind": "categorical", "type": "STRING", **categorical_profile(pd.Series(NASTY))}},
        "score_topk": numeric_profile(np.arange(50.0)),
    }
    assert drift_store.store_profile(wh, "recsys", "v9", profile) == 2
    drift_store.store_profile(wh, "recsys", "v9", profile)
    rows = wh.query(
        "SELECT scope, column_name, segment, n, TO_JSON_STRING(profile) AS p FROM drift_profiles "
        "WHERE model_version = 'v9' ORDER BY scope"
    ).to_pylist()
    assert [(r["scope"], r["column_name"], r["segment"], r["n"]) for r in rows] == [
        ("feature", "c", ALL_SEGMENTS, len(NASTY)),
        ("prediction", "score", ALL_SEGMENTS, 50),
    ]
    assert sorted(json.loads(rows[0]["p"])["categories"]) == sorted(NASTY)


def test_report_rows_and_summary():
    bins = numeric(np.arange(200.0))
    ok = judge(bins, drift_bins.numpy_counts(bins, np.arange(200.0)))
    bad = judge(bins, drift_bins.numpy_counts(bins, np.full(200, 500.0)))
    bad = drift_verdict.ColumnResult(**{**bad.__dict__, "column": "y"})
    skipped = judge(bins, np.zeros(len(bins.codes), dtype=np.int64))
    skipped = drift_verdict.ColumnResult(**{**skipped.__dict__, "column": "z"})
    report = drift_report.DriftReport(
        DAY, "run", "recsys", "v1", [ok, bad, skipped], drift_verdict.dataset_verdict([ok, bad], [])
    )
    rows = report.rows(dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    assert len(rows) == 4 + 4 + 1 + 1  # 4 metrics x 2 numeric columns, 1 skipped row, the verdict row
    psi_y = next(r for r in rows if r["feature"] == "y" and r["metric"] == "psi")
    assert (psi_y["severity"], psi_y["threshold"], psi_y["warn_threshold"]) == ("drift", 0.25, 0.1)
    assert rows[-1]["feature"] == drift_report.DATASET and rows[-1]["severity"] == "drift"
    assert report.to_arrow(dt.datetime(2026, 4, 1, tzinfo=dt.UTC)).schema == drift_report.results_schema()
    summary = report.summary()
    assert summary["verdict"] == "drift" and summary["drifted"] == ["y"]
    assert summary["worst_psi"]["column"] == "y" and summary["skipped"] == {"z": "empty: no current rows"}
    json.dumps(summary)
    assert report.table()[-1].startswith("verdict drift: 1 of 2 columns drifted")
