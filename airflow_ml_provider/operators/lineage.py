"""OpenLineage datasets of the operators: the tables and model artifacts each task read and wrote.

The OpenLineage provider (``pip install airflow-ml-provider[openlineage]``) calls an operator's
``get_openlineage_facets_on_complete`` after it succeeds; ``MLPlatformOperator`` implements it
with the names built here, imported only then, so DAG files parse without the provider.

Names follow the OpenLineage naming spec (spec/Naming.md), so our tables join the lineage
graph that the Google provider's BigQuery operators already draw:

- BigQuery table: namespace ``bigquery``, name ``{project}.{dataset}.{table}``.
- DuckDB table: the spec has no DuckDB entry; we use the database URI style of its other
  warehouses (scheme://authority as namespace, the qualified table as name): namespace
  ``duckdb://{absolute file path}``, name ``{catalog}.{schema}.{table}`` as DuckDB itself
  qualifies it (the catalog is the file's stem, the schema the connection's ``dataset`` or
  ``main``), e.g. ``duckdb:///home/me/.ml/warehouse.duckdb`` + ``warehouse.main.features``.
- GCS artifact: namespace ``gs://{bucket}``, name ``{object key}``.
- Local artifact: namespace ``file``, name ``{absolute path}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.config import PlatformConfig

log = logging.getLogger(__name__)

BIGQUERY_NAMESPACE = "bigquery"


@dataclass
class Lineage:
    """What one task read and wrote: table names (in the connection's dataset) and artifact URIs."""

    input_tables: list[str] = field(default_factory=list)
    output_tables: list[str] = field(default_factory=list)
    input_artifacts: list[str] = field(default_factory=list)
    output_artifacts: list[str] = field(default_factory=list)


def table_name(config: PlatformConfig, table: str) -> tuple[str, str]:
    """The (namespace, name) of a warehouse table on the connection's backend."""
    if config.backend == "gcp":
        return BIGQUERY_NAMESPACE, f"{config.project}.{config.dataset}.{table}"
    path = config.warehouse_file.expanduser().resolve()
    return f"duckdb://{path.as_posix()}", f"{path.stem}.{config.dataset or 'main'}.{table}"


def artifact_name(uri: str, home: Path | None = None) -> tuple[str, str]:
    """The (namespace, name) of an artifact URI: ``gs://bucket/key``, ``file:///path`` or a path.

    A relative path is taken under ``home`` (``AIRFLOW_ML_HOME`` by default), where local
    artifact URIs live.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "gs":
        return f"gs://{parsed.netloc}", parsed.path.lstrip("/") or "/"
    if parsed.scheme == "file":
        return "file", unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # another filesystem: keep the spec's scheme://authority
        return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/") or "/"
    path = Path(uri).expanduser()
    if not path.is_absolute():
        from airflow_ml_provider.core.contract.config import ml_home

        path = (home or ml_home()) / path
    return "file", path.as_posix()


def operator_lineage(config: PlatformConfig, lineage: Lineage) -> Any:
    """The provider's ``OperatorLineage`` for ``lineage`` (imports the OpenLineage provider)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(tables: Iterable[str], artifacts: Iterable[str]) -> list[Any]:
        names = [table_name(config, t) for t in dict.fromkeys(tables)]
        names += [artifact_name(u) for u in dict.fromkeys(artifacts)]
        return [Dataset(namespace=ns, name=name) for ns, name in dict.fromkeys(names)]

    return OperatorLineage(
        inputs=datasets(lineage.input_tables, lineage.input_artifacts),
        outputs=datasets(lineage.output_tables, lineage.output_artifacts),
    )
