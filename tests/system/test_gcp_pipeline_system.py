"""The whole reference pipeline on real Google Cloud: the local gcp pipeline test, against a project.

features -> training as a Vertex AI CustomJob in ``SYSTEM_TESTS_TRAINING_IMAGE`` -> evaluate
and promote (Model Registry version, ``champion`` alias) -> batch inference (Storage Read API)
-> drift, in a temporary dataset and bucket prefix that are always deleted. About 10 minutes
and a few cents (docs/gcp.md). Skipped unless SYSTEM_TESTS_GCP_PROJECT, SYSTEM_TESTS_GCP_BUCKET
and SYSTEM_TESTS_TRAINING_IMAGE are set.
"""

from __future__ import annotations

import json

import pytest

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.core.contract.config import PlatformConfig
from tests.gcp_pipeline import check_invariants, run_pipeline

pytestmark = pytest.mark.system


def test_reference_pipeline_on_real_gcp(real_gcp, real_bucket, training_image, airflow_db, monkeypatch) -> None:
    extra = {
        "backend": "gcp",
        "project": real_gcp.project,
        "dataset": real_gcp.dataset,
        "location": real_gcp.location,
        "staging_bucket": f"gs://{real_bucket}/{real_gcp.prefix}",
        "training_image_uri": training_image,
        "training_machine_type": "n1-standard-4",
        "maximum_bytes_billed": 10 * 2**30,
    }
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    config = PlatformConfig(**extra)
    wh = BigQueryWarehouse(config)

    run = run_pipeline(wh)
    summary = check_invariants(wh, run)
    assert summary["users"] > 0
