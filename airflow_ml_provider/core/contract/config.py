"""Platform configuration: what the ``ml_platform`` connection's extras mean.

No connection means the embedded default: DuckDB at ``$AIRFLOW_ML_HOME/warehouse.duckdb``
and artifacts under ``$AIRFLOW_ML_HOME/artifacts``, with ``AIRFLOW_ML_HOME`` defaulting to
``$AIRFLOW_HOME/ml`` (and ``~/airflow/ml`` when ``AIRFLOW_HOME`` is unset too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_ml_provider.core.contract.identifiers import validate_dataset, validate_project
from airflow_ml_provider.exceptions import ContractError


def ml_home() -> Path:
    """``$AIRFLOW_ML_HOME``, else ``$AIRFLOW_HOME/ml``, else ``~/airflow/ml``."""
    if os.environ.get("AIRFLOW_ML_HOME"):
        return Path(os.environ["AIRFLOW_ML_HOME"]).expanduser()
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(airflow_home).expanduser() / "ml"


class PlatformConfig(BaseModel):
    """Validated extras of an ``ml_platform`` connection."""

    # Extras may hold secrets a user put in the wrong key: never echo them in tracebacks (task logs).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    backend: Literal["local", "gcp"] = "local"
    project: str | None = None
    location: str = "US"
    dataset: str | None = None
    staging_bucket: str | None = None
    warehouse_path: str | None = None
    artifact_root: str | None = None
    gcp_conn_id: str = "google_cloud_default"
    impersonation_chain: str | list[str] | None = None
    maximum_bytes_billed: int | None = Field(default=None, gt=0)
    lock_timeout_seconds: float = Field(default=120.0, gt=0)
    duckdb_stream_memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory_limit of streaming reads (batch inference candidates); past it DuckDB evicts "
        "cached blocks or spills. Default: 1MB per column and DuckDB thread, at least 128MB.",
    )
    duckdb_memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory_limit of every warehouse connection (default DuckDB's own: 80% of RAM). "
        "Past it DuckDB spills joins, aggregates and sorts to `<warehouse>.tmp` beside the file, so a "
        "million-user day fits a smaller machine at some cost in time (bench/README.md, scale.py).",
    )
    training_image_uri: str | None = Field(
        default=None,
        description="Container image of Vertex AI training jobs (gcp backend). It must have `airflow-ml-provider` "
        "installed: the job runs `python -m airflow_ml_provider.core.training.trainer` in it. "
        "E.g. us-docker.pkg.dev/my-project/ml/airflow-ml-trainer:1.0",
    )
    training_machine_type: str = Field(default="n1-standard-8", description="Machine type of the training job.")
    training_service_account: str | None = Field(
        default=None, description="Service account the training job runs as (default: Vertex AI's)."
    )
    training_network: str | None = Field(
        default=None, description="VPC network to peer the training job with (projects/<number>/global/networks/<n>)."
    )

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        return validate_project(v) if v else v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str | None) -> str | None:
        return validate_dataset(v) if v else v

    @model_validator(mode="after")
    def _gcp_needs(self) -> PlatformConfig:
        if self.backend == "gcp":
            missing = [k for k in ("project", "dataset") if not getattr(self, k)]
            if missing:
                raise ValueError(
                    f"backend 'gcp' needs {' and '.join(missing)} in the connection extras, "
                    'e.g. {"backend": "gcp", "project": "my-project", "dataset": "recsys"}'
                )
        return self

    @property
    def warehouse_file(self) -> Path:
        """The DuckDB file of the local backend."""
        return Path(self.warehouse_path).expanduser() if self.warehouse_path else ml_home() / "warehouse.duckdb"

    @property
    def artifacts_uri(self) -> str:
        """Root URI for model artifacts: ``file://...`` locally, ``gs://...`` on GCP."""
        if self.artifact_root:
            return self.artifact_root
        if self.backend == "gcp" and self.staging_bucket:
            return f"{self.staging_bucket.rstrip('/')}/airflow-ml"
        return (ml_home() / "artifacts").as_uri()

    @classmethod
    def from_extras(cls, extras: dict[str, Any] | None, source: str = "connection") -> PlatformConfig:
        """Parse connection extras; errors name the key and the fix."""
        try:
            return cls.model_validate(extras or {})
        except ValidationError as err:
            raise ContractError(f"{source}: {format_validation_error(err)}") from err


def format_validation_error(err: ValidationError) -> str:
    """One readable sentence per pydantic error: ``key.path: message (got value)``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "required key is missing; add it"
        got = (
            f" (got {e['input']!r})"
            if e["type"] not in ("missing", "extra_forbidden") and "input" in e and not isinstance(e["input"], dict)
            else ""
        )
        parts.append(f"{loc}: {msg}{got}")
    return "; ".join(parts)
