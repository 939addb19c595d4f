"""``model.sample_users``: lists sampled by a hash of the user id, whole lists, the same users on both backends.

As in test_shards.py, the local BigQuery runs the SQL on DuckDB with the same ``fingerprint64``,
so agreement shows that the SQL, its parameters and the read path pick the same users on both;
that ``fingerprint64`` is BigQuery's FARM_FINGERPRINT is tested there.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pydantic import ValidationError

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.inference.shards import fingerprint64
from airflow_ml_provider.core.training.envelope import DataSummary
from airflow_ml_provider.core.training.job import SAMPLE_BUCKETS, training_data_sql, training_params
from tests.fakes.gcp import DATASET, PROJECT, LocalGcp
from tests.paths import PIPELINE

RUN = dt.date(2026, 3, 31)
SPEC = load_spec(PIPELINE)
USERS = [f"u{i:04d}" for i in range(240)]
ITEMS = ["i1", "i2", "i3"]
VALUES = {"STRING": "x", "INT64": 1, "FLOAT64": 1.0}


def _sampled(share: float):
    return SPEC.model_copy(update={"model": SPEC.model.model_copy(update={"sample_users": share})})


def _tables() -> tuple[pa.Table, pa.Table]:
    """Every user with the same three items on every as-of date of the run's windows."""
    params = training_params(SPEC, RUN)
    first, last = params["train_start"], params["validation_end"]
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    keys = [(d, u, i) for d in days for u in USERS for i in ITEMS]
    cols = {
        "as_of_date": pa.array([k[0] for k in keys], pa.date32()),
        "user_id": [k[1] for k in keys],
        "item_id": [k[2] for k in keys],
    }
    features = pa.table({**cols, **{f.name: [VALUES[f.type]] * len(keys) for f in SPEC.features}})
    labels = pa.table({**cols, SPEC.label.column: pa.array([1] * len(keys), pa.int64())})
    return features, labels


def _load(wh) -> None:
    features, labels = _tables()
    wh.replace_table(SPEC.feature_table, features)
    wh.replace_table(SPEC.label.step.table, labels)


def _rows(wh, spec) -> list[tuple[dt.date, str, str]]:
    got = wh.query(training_data_sql(spec), training_params(spec, RUN), source="training export").to_pylist()
    return sorted((r["as_of_date"], r["user_id"], r["item_id"]) for r in got)


def _hashed(share: float) -> set[str]:
    hashes = fingerprint64(pa.array(USERS)).to_pylist()
    return {u for u, h in zip(USERS, hashes, strict=True) if abs(int(h)) % SAMPLE_BUCKETS < share * SAMPLE_BUCKETS}


def _check_sample(rows: list[tuple[dt.date, str, str]], share: float) -> None:
    params = training_params(SPEC, RUN)
    fit = [r for r in rows if r[0] <= params["train_end"]]
    test = [r for r in rows if r[0] >= params["validation_start"]]
    users = _hashed(share)
    assert 0 < len(users) < len(USERS)
    assert {r[1] for r in fit} == users  # the hashed users, on the fit and early-stopping dates
    assert {r[1] for r in test} == set(USERS)  # the test window is never sampled
    fit_days = {r[0] for r in fit}
    assert len(fit) == len(fit_days) * len(users) * len(ITEMS)  # whole lists: every item, every date


def test_sampling_keeps_the_hashed_users_whole_lists_and_the_whole_test_window(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _load(wh)
    rows = _rows(wh, _sampled(0.3))
    _check_sample(rows, 0.3)
    assert rows == _rows(wh, _sampled(0.3))  # deterministic
    assert set(_rows(wh, _sampled(0.3))) <= set(_rows(wh, _sampled(0.6)))  # a larger share adds users


def test_without_a_sample_the_export_is_unchanged():
    assert "FARM_FINGERPRINT" not in training_data_sql(SPEC) and "sample_buckets" not in training_params(SPEC, RUN)
    assert training_params(_sampled(0.25), RUN)["sample_buckets"] == SAMPLE_BUCKETS // 4
    assert DataSummary.model_fields["sample_users"].default == 1.0


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_a_share_outside_0_1_is_refused_naming_the_key(share):
    with pytest.raises(ValidationError, match="sample_users"):
        SPEC.model.model_validate({**SPEC.model.model_dump(), "sample_users": share})


@pytest.mark.integration
def test_both_backends_sample_the_same_users(tmp_path, gcp: LocalGcp):
    local = DuckDBWarehouse(tmp_path / "w.duckdb")
    bigquery = BigQueryWarehouse(PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US"))
    for wh in (local, bigquery):
        _load(wh)
    on_duckdb, on_bigquery = _rows(local, _sampled(0.3)), _rows(bigquery, _sampled(0.3))
    assert on_duckdb == on_bigquery
    _check_sample(on_bigquery, 0.3)


def test_the_envelope_records_the_sample(tmp_path):
    from tests.unit.core.test_trainer import _export, _train

    model = SPEC.model.model_copy(update={"num_boost_round": 5, "early_stopping_rounds": 0, "sample_users": 0.5})
    spec = SPEC.model_copy(update={"model": model})
    data, test_from = _export(tmp_path, spec)
    envelope = _train(tmp_path, spec, data, test_from, "sampled")
    assert envelope.data.sample_users == 0.5
    on_disk = (tmp_path / "sampled" / "envelope.json").read_text()
    assert '"sample_users": 0.5' in on_disk or '"sample_users":0.5' in on_disk


# --- evaluation.sample_users: the test window judges a hashed share of the users ------------------


def _judged(share: float, train_share: float = 1.0):
    evaluation = SPEC.evaluation.model_copy(update={"sample_users": share})
    model = SPEC.model.model_copy(update={"sample_users": train_share})
    return SPEC.model_copy(update={"evaluation": evaluation, "model": model})


def _truth_users(wh, spec) -> dict[str, set[str]]:
    """The users of the truth export's test-date positives and of its popularity lists."""
    from airflow_ml_provider.core.training.job import truth_data_sql, truth_params

    got = wh.query(truth_data_sql(spec), truth_params(spec, RUN), source="truth export").to_pylist()
    start = training_params(spec, RUN)["validation_start"]
    test = [r for r in got if r["as_of_date"] >= start]
    return {
        "positives": {r["user_id"] for r in test if r["popularity_rank"] is None},
        "popularity": {r["user_id"] for r in test if r["popularity_rank"] is not None},
        "fit": {r["user_id"] for r in got if r["as_of_date"] < start},
    }


def test_the_test_window_judges_the_hashed_users_whole_lists_and_the_fit_keeps_everyone(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _load(wh)
    params = training_params(_judged(0.3), RUN)
    assert params["test_sample_buckets"] == round(0.3 * SAMPLE_BUCKETS) and "sample_buckets" not in params
    rows = _rows(wh, _judged(0.3))
    fit = [r for r in rows if r[0] <= params["train_end"]]
    test = [r for r in rows if r[0] >= params["validation_start"]]
    assert {r[1] for r in fit} == set(USERS)
    assert {r[1] for r in test} == _hashed(0.3)
    assert len(test) == len({r[0] for r in test}) * len(_hashed(0.3)) * len(ITEMS)  # whole lists


def test_both_samples_together_use_one_hash(tmp_path):
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _load(wh)
    params = training_params(_judged(0.6, train_share=0.3), RUN)
    rows = _rows(wh, _judged(0.6, train_share=0.3))
    assert {r[1] for r in rows if r[0] <= params["train_end"]} == _hashed(0.3)
    assert {r[1] for r in rows if r[0] >= params["validation_start"]} == _hashed(0.6)


def test_the_truth_and_the_baselines_judge_the_same_users_as_the_model(tmp_path):
    # The gate compares the model with the popularity list on the same users: the truth export
    # (positives and popularity lists of the test dates) is filtered by the same hash; fit-date
    # positives are kept whole.
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _load(wh)
    wh.replace_table("events", _events())
    wh.replace_table("items", pa.table({"item_id": ITEMS, "category": ["c"] * 3, "price": [1.0] * 3}))
    whole, judged = _truth_users(wh, _judged(1.0)), _truth_users(wh, _judged(0.3))
    assert whole["positives"] == set(USERS) and judged["positives"] == _hashed(0.3)
    assert judged["popularity"] == _hashed(0.3) & whole["popularity"] and judged["popularity"]
    assert judged["fit"] == whole["fit"] == set(USERS)


def _events() -> pa.Table:
    """One view per user and item the day before the test window: every test-date user is active (served)."""
    params = training_params(SPEC, RUN)
    day = dt.datetime.combine(params["validation_start"] - dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    pairs = [(u, i) for u in USERS for i in ITEMS]
    return pa.table(
        {
            "user_id": [p[0] for p in pairs],
            "item_id": [p[1] for p in pairs],
            "event_type": ["view"] * len(pairs),
            "event_ts": pa.array([day] * len(pairs), pa.timestamp("us", tz="UTC")),
        }
    )


@pytest.mark.integration
def test_both_backends_judge_the_same_users(tmp_path, gcp: LocalGcp):
    local = DuckDBWarehouse(tmp_path / "w.duckdb")
    bigquery = BigQueryWarehouse(PlatformConfig(backend="gcp", project=PROJECT, dataset=DATASET, location="US"))
    for wh in (local, bigquery):
        _load(wh)
    spec = _judged(0.3, train_share=0.6)
    assert _rows(local, spec) == _rows(bigquery, spec)


def test_the_envelope_records_the_test_sample(tmp_path):
    from tests.unit.core.test_trainer import _export, _train

    model = SPEC.model.model_copy(update={"num_boost_round": 5, "early_stopping_rounds": 0})
    spec = _judged(0.5).model_copy(update={"model": model})
    data, test_from = _export(tmp_path, spec)
    envelope = _train(tmp_path, spec, data, test_from, "judged")
    assert envelope.data.test_sample_users == 0.5


def test_the_export_reads_the_three_windows_and_not_the_purge_gap(tmp_path):
    # Every date from the first fit date to the last test date has rows; the export keeps the
    # fit, early-stopping and test dates only (the trainer drops the gap's rows anyway).
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    _load(wh)
    fit, early, test = SPEC.evaluation_windows(RUN)
    exported = {r[0] for r in _rows(wh, SPEC)}
    assert exported == {*fit, *early, *test}
    assert early[0] - fit[-1] > dt.timedelta(days=1)  # the reference contract has a gap to skip
