"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_ml_provider import __version__


def _field(label: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    """A connection form field; every field is optional (``null`` allowed)."""
    return {"label": label, "schema": {"type": [kind, "null"], **extra}}


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its connection type and its integrations to Airflow."""
    return {
        "package-name": "airflow-ml-provider",
        "name": "ML Platform (batch recommendations)",
        "description": "Feature extraction, training, batch top-k inference and drift checks on "
        "BigQuery and Vertex AI, with an embedded DuckDB default for laptops and CI.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "ML Platform",
                "external-doc-url": "https://github.com/airflow-ml-provider/airflow-ml-provider",
                "tags": ["ml"],
            }
        ],
        "hooks": [{"integration-name": "ML Platform", "python-modules": ["airflow_ml_provider.hooks.ml_platform"]}],
        "operators": [
            {
                "integration-name": "ML Platform",
                "python-modules": [
                    "airflow_ml_provider.operators.features",
                    "airflow_ml_provider.operators.training",
                    "airflow_ml_provider.operators.evaluation",
                    "airflow_ml_provider.operators.inference",
                    "airflow_ml_provider.operators.drift",
                    "airflow_ml_provider.operators.checks",
                    "airflow_ml_provider.operators.outcomes",
                ],
            }
        ],
        "sensors": [{"integration-name": "ML Platform", "python-modules": ["airflow_ml_provider.sensors.warehouse"]}],
        "triggers": [{"integration-name": "ML Platform", "python-modules": ["airflow_ml_provider.triggers.vertex_ai"]}],
        "extra-links": [
            "airflow_ml_provider.links.vertex_ai.VertexTrainingJobLink",
            "airflow_ml_provider.links.bigquery.BigQueryTableLink",
            "airflow_ml_provider.links.ml_platform.ModelPageLink",
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_ml_provider.hooks.ml_platform.MLPlatformHook",
                "connection-type": "ml_platform",
                "hook-name": "ML Platform",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port"],
                    "relabeling": {},
                    "placeholders": {
                        "backend": "local",
                        "project": "my-gcp-project",
                        "dataset": "recsys",
                        "staging_bucket": "gs://my-bucket",
                    },
                },
                "conn-fields": {
                    "backend": _field("Backend (local or gcp)", enum=["local", "gcp", None]),
                    "project": _field("GCP project id"),
                    "location": _field("Location (BigQuery / Vertex AI region)"),
                    "dataset": _field("BigQuery dataset (DuckDB schema locally)"),
                    "staging_bucket": _field("Staging bucket (gs://...)"),
                    "warehouse_path": _field("DuckDB file (local backend)"),
                    "artifact_root": _field("Artifact root URI (file://... or gs://...)"),
                    "gcp_conn_id": _field("Google Cloud connection id"),
                    "maximum_bytes_billed": _field("Maximum bytes billed per query", "integer"),
                    "training_image_uri": _field("Vertex AI training image (with airflow-ml-provider)"),
                    "training_machine_type": _field("Vertex AI training machine type"),
                    "training_service_account": _field("Vertex AI training service account"),
                },
            }
        ],
    }
