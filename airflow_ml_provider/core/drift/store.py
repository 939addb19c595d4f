"""Where drift checks keep their data: ``drift_results`` rows and ``drift_profiles`` references.

A model version's reference profile is stored when it is registered; a check stores the
per-segment references it builds from the version's training window, once, and reads them
back on every later check.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.drift.bins import ColumnBins
from airflow_ml_provider.core.drift.report import DriftReport, results_schema
from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS, Scan, run_scan

if TYPE_CHECKING:
    from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult

RESULTS_TABLE = "drift_results"
PROFILES_TABLE = "drift_profiles"


def ensure_tables(warehouse: Warehouse) -> None:
    """Create ``drift_results`` and ``drift_profiles`` from their DDL in sql/ddl/ unless they exist."""
    from airflow_ml_provider.core.warehouse import ddl

    ddl.ensure_tables(warehouse, RESULTS_TABLE, PROFILES_TABLE)


def write_results(warehouse: Warehouse, report: DriftReport) -> WriteResult:
    """Replace the date's ``drift_results`` partition with the report, keeping other models' rows of that date."""
    import pyarrow as pa

    ensure_tables(warehouse)
    schema = results_schema()
    others = warehouse.query(
        f"SELECT * FROM {RESULTS_TABLE} WHERE logical_date = @day AND model_name != @model_name",
        {"day": report.logical_date, "model_name": report.model_name},
        source=f"{RESULTS_TABLE} (other models)",
    ).select(schema.names)
    rows = pa.concat_tables([others.cast(schema), report.to_arrow(dt.datetime.now(dt.UTC))])
    return warehouse.replace_partition(
        RESULTS_TABLE, "logical_date", report.logical_date, rows, cluster_by=("model_name", "feature")
    )


def profile_rows(profile: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(scope, column, column profile) of a model profile: features, and ``score`` from ``score_topk``."""
    rows = [("feature", name, dict(body)) for name, body in (profile.get("features") or {}).items()]
    if profile.get("score_topk"):
        rows.append(("prediction", "score", {"kind": "numeric", "type": "FLOAT64", **profile["score_topk"]}))
    return rows


def insert_profiles(
    warehouse: Warehouse,
    model_name: str,
    version: str,
    rows: Sequence[tuple[str, str, dict[str, Any]]],
    *,
    segment_by: Sequence[str] = (),
    segments: Sequence[str] = (),
) -> int:
    """Insert profile rows for one version and ``segment_by`` in ONE statement, unless already stored.

    ``rows`` are (scope, column, profile); ``segments`` gives each row's segment (default: all rows).
    The ``NOT EXISTS`` guard makes a rerun a no-op, and one statement is all or nothing.
    """
    if not rows:
        return 0
    params: dict[str, Any] = {"model_name": model_name, "version": version, "segment_by": ",".join(segment_by)}
    selects = []
    for i, (scope, column, body) in enumerate(rows):
        bins = ColumnBins.from_profile(column, body)  # validates before anything is stored
        params |= {
            f"scope{i}": scope,
            f"col{i}": column,
            f"seg{i}": segments[i] if segments else ALL_SEGMENTS,
            f"kind{i}": bins.kind,
            f"n{i}": int(sum(bins.reference)),
            f"null{i}": float(bins.to_profile()["null_share"]),
            f"prof{i}": json.dumps(body, sort_keys=True, allow_nan=False),
        }
        selects.append(
            f"SELECT @scope{i} AS scope, @col{i} AS column_name, @seg{i} AS segment, @kind{i} AS kind, "
            f"@n{i} AS n, @null{i} AS null_share, @prof{i} AS profile"
        )
    sql = f"""INSERT INTO {PROFILES_TABLE}
  (model_name, model_version, scope, column_name, segment_by, segment, kind, n, null_share, profile, created_at)
SELECT @model_name, @version, r.scope, r.column_name, @segment_by, r.segment, r.kind, r.n, r.null_share,
  PARSE_JSON(r.profile), CURRENT_TIMESTAMP()
FROM (
  {" UNION ALL ".join(selects)}
) AS r
WHERE NOT EXISTS (
  SELECT 1 FROM {PROFILES_TABLE} AS d
  WHERE d.model_name = @model_name AND d.model_version = @version AND d.segment_by = @segment_by
)"""
    warehouse.execute(sql, params, source=f"{PROFILES_TABLE} insert")
    return len(rows)


def store_profile(warehouse: Warehouse, model_name: str, version: str, profile: Mapping[str, Any]) -> int:
    """Store a model version's reference profile in ``drift_profiles`` (one row per column); idempotent.

    Call it when a model is registered: analysts query the stored baselines, and the
    table is where a check keeps segment references it builds for the same version.
    """
    ensure_tables(warehouse)
    return insert_profiles(warehouse, model_name, version, profile_rows(profile))


def load_segment_refs(
    warehouse: Warehouse, model_name: str, version: str, segment_by: Sequence[str], bins: Mapping[str, ColumnBins]
) -> dict[str, dict[str, ColumnBins]] | None:
    """Stored segment references (segment -> column -> bins) of a version, or None when none are stored."""
    sql = f"""SELECT segment, column_name, TO_JSON_STRING(profile) AS profile FROM {PROFILES_TABLE}
WHERE model_name = @model_name AND model_version = @version AND segment_by = @segment_by AND scope = 'feature'"""
    params = {"model_name": model_name, "version": version, "segment_by": ",".join(segment_by)}
    rows = warehouse.query(sql, params, source=f"{PROFILES_TABLE} segment references").to_pylist()
    if not rows:
        return None
    out: dict[str, dict[str, ColumnBins]] = {}
    for row in rows:
        if row["column_name"] in bins:
            out.setdefault(row["segment"], {})[row["column_name"]] = ColumnBins.from_profile(
                row["column_name"], json.loads(row["profile"])
            )
    return out


def segment_refs(
    warehouse: Warehouse,
    scan: Scan,
    model_name: str,
    version: str,
    window: tuple[dt.date, dt.date],
    max_segments: int,
) -> dict[str, dict[str, ColumnBins]]:
    """Per-segment reference counts in the stored bins, built once per version from its training window."""
    bins = {b.name: b for b in scan.columns}
    ensure_tables(warehouse)
    stored = load_segment_refs(warehouse, model_name, version, scan.segment_by, bins)
    if stored is not None:
        return stored
    counts = run_scan(warehouse, scan, window[0], window[1], max_segments)
    counts.pop(ALL_SEGMENTS, None)  # the whole population's reference is the envelope's profile
    refs = {seg: {n: bins[n].with_reference(c.tolist()) for n, c in cols.items()} for seg, cols in counts.items()}
    rows = [("feature", n, b.to_profile()) for cols in refs.values() for n, b in cols.items()]
    segments = [seg for seg, cols in refs.items() for _ in cols]
    insert_profiles(warehouse, model_name, version, rows, segment_by=scan.segment_by, segments=segments)
    return refs
