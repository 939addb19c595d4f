"""Job labels follow BigQuery / Vertex AI label rules whatever the Airflow ids look like."""

from __future__ import annotations

import re

import pytest

from airflow_ml_provider.core.warehouse.labels import job_labels, sanitize_label

# https://cloud.google.com/bigquery/docs/labels-intro#requirements
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")

AWKWARD = [
    "manual__2026-03-31T00:00:00+00:00",
    "scheduled__2026-03-31T06:30:00.123456+00:00",
    "Recsys Features (Daily)",
    "feature_extract.user_features",
    "ÜBER-dag ✓",
    "x" * 200,
    "--leading-and-trailing--",
    "123_starts_with_digit",
    "a/b\\c:d@e",
    "",
]


def assert_valid_labels(labels: dict[str, str]) -> None:
    assert len(labels) <= 64
    for key, value in labels.items():
        assert LABEL_KEY.fullmatch(key), f"bad label key {key!r}"
        assert LABEL_VALUE.fullmatch(value), f"bad label value {value!r} for {key!r}"


@pytest.mark.parametrize("raw", AWKWARD)
def test_sanitized_values_follow_the_label_rules(raw):
    assert LABEL_VALUE.fullmatch(sanitize_label(raw))


@pytest.mark.parametrize("raw", AWKWARD)
def test_sanitized_keys_start_with_a_letter(raw):
    assert LABEL_KEY.fullmatch(sanitize_label(raw, key=True))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("manual__2026-03-31T00:00:00+00:00", "manual__2026-03-31t00-00-00-00-00"),
        ("Recsys Features (Daily)", "recsys-features-daily"),
        ("feature_extract.user_features", "feature_extract-user_features"),
        ("already-fine_1", "already-fine_1"),
    ],
)
def test_sanitize_label_values(raw, expected):
    assert sanitize_label(raw) == expected


def test_sanitize_label_truncates_to_63_characters():
    assert sanitize_label("a" * 100) == "a" * 63
    assert sanitize_label("9" * 100, key=True) == "k-" + "9" * 61


def test_key_starting_with_a_digit_is_prefixed():
    assert sanitize_label("2026_run", key=True) == "k-2026_run"
    assert sanitize_label("", key=True) == "k-"


def test_job_labels_trace_back_to_the_task():
    labels = job_labels(
        dag_id="recsys_features", task_id="extract.user_features", run_id="manual__2026-03-31T00:00:00+00:00"
    )
    assert labels == {
        "airflow-dag": "recsys_features",
        "airflow-task": "extract-user_features",
        "airflow-run": "manual__2026-03-31t00-00-00-00-00",
        "managed-by": "airflow-ml-provider",
    }
    assert_valid_labels(labels)


def test_missing_ids_are_left_out_but_managed_by_is_always_there():
    assert job_labels() == {"managed-by": "airflow-ml-provider"}
    assert job_labels(dag_id="d", task_id=None) == {"airflow-dag": "d", "managed-by": "airflow-ml-provider"}


def test_extra_labels_are_sanitised_and_cannot_override_managed_by():
    labels = job_labels(dag_id="d", extra={"Team": "ML Platform", "1cost-center": "R&D", "managed-by": "me"})
    assert labels["team"] == "ml-platform"
    assert labels["k-1cost-center"] == "r-d"
    assert labels["managed-by"] == "airflow-ml-provider"
    assert_valid_labels(labels)


def test_at_most_64_labels():
    labels = job_labels(dag_id="d", task_id="t", run_id="r", extra={f"k{i}": "v" for i in range(100)})
    assert len(labels) == 64
    assert_valid_labels(labels)
    assert labels["airflow-dag"] == "d"


def test_managed_by_survives_the_64_label_cap():
    labels = job_labels(dag_id="d", task_id="t", run_id="r", extra={f"k{i}": "v" for i in range(100)})
    assert labels.get("managed-by") == "airflow-ml-provider"
