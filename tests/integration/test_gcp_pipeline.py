"""The whole reference pipeline on ``backend: gcp``, through the real Google clients and hooks, on local endpoints.

features -> training as a Vertex AI CustomJob (the local endpoint runs the job's container
command, the trainer entrypoint, as a subprocess with the ``AIP_*`` environment, artifacts on
the local GCS) -> evaluate and promote (a Model Registry version and the ``champion`` alias)
-> batch inference (candidates through the Storage Read API) -> drift. The same driver runs
against a real project in tests/system/test_gcp_pipeline_system.py. The requests each
service received are printed at the end of the run, per kind.
"""

from __future__ import annotations

import pytest

from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
from airflow_ml_provider.core.contract.config import PlatformConfig
from tests.fakes.gcp import LocalGcp
from tests.fakes.google_auth import google_cloud_connection_uri
from tests.gcp_pipeline import check_invariants, run_pipeline

pytestmark = pytest.mark.integration


def _report(request: pytest.FixtureRequest, lines: list[str]) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


def test_reference_pipeline_runs_on_gcp_through_the_real_clients(
    gcp: LocalGcp, vertex_endpoint, airflow_db, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_ML_PLATFORM_DEFAULT",
        gcp.ml_platform_connection(
            training_image_uri="local/airflow-ml-trainer:test", training_machine_type="n1-standard-4"
        ),
    )
    # The service-account key (token from the local endpoint) for BigQuery and Vertex AI alike.
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", google_cloud_connection_uri(gcp.project, gcp.bigquery.url + "/token")
    )
    # Batch inference in two user shards: two mapped tasks, each with its own Storage Read session.
    monkeypatch.setenv("AIRFLOW_VAR_RECSYS_INFERENCE_SHARDS", "2")
    config = PlatformConfig(backend="gcp", project=gcp.project, dataset=gcp.dataset, location="US")
    wh = BigQueryWarehouse(config)

    run = run_pipeline(wh)
    summary = check_invariants(wh, run)

    (job,) = vertex_endpoint.calls("CreateCustomJob")
    container = job.custom_job.job_spec.worker_pool_specs[0].container_spec
    assert list(container.command) == ["python", "-m", "airflow_ml_provider.core.training.trainer"]
    assert container.image_uri == "local/airflow-ml-trainer:test"
    (name,) = [j for j in vertex_endpoint.jobs]
    assert vertex_endpoint.job(name).state == "JOB_STATE_SUCCEEDED"
    aliases = vertex_endpoint.aliases("recsys")
    assert any("champion" in a for a in aliases.values()), aliases
    assert gcp.storage.sessions, "batch inference read its candidates through the Storage Read API"
    shard_queries = [c["query"] for c in gcp.bigquery.job_configs("query") if "@shard_index" in c["query"]]
    shard_reads = [q for q in shard_queries if "popularity_rank" not in q]
    assert len(shard_reads) == 2, "each shard ran its own candidate query (and read it in its own session)"
    # ... and its own popularity fill for the users short of k (core/inference/fallback.py).
    assert len(shard_queries) - len(shard_reads) == 2
    assert len(gcp.storage.sessions) >= 2
    assert not gcp.bigquery.job_configs("copy"), "partitions are published by query, never copied"

    bigquery = gcp.bigquery.requests_by_kind()
    vertex = {}
    for call in vertex_endpoint.requests:
        vertex[call[0]] = vertex.get(call[0], 0) + 1
    _report(
        request,
        [
            f"gcp pipeline on local endpoints: champion {summary['champion']}, {summary['n']} recommendations "
            f"for {summary['users']} users, {summary['drift_rows']} drift rows",
            "  BigQuery requests: " + ", ".join(f"{k} {v}" for k, v in bigquery.items()),
            f"  Storage Read sessions: {len(gcp.storage.sessions)}, rows streamed: {gcp.storage.rows_sent}",
            "  Vertex AI requests: " + ", ".join(f"{k} {v}" for k, v in sorted(vertex.items())),
        ],
    )
