"""Drift checks computed inside the warehouse: one SQL scan per table counts rows into the stored bins.

This module runs one check (``check_drift``: the day's features and recommendation scores
against one model version's reference profile). The pieces live beside it:

- ``drift_bins``: a column's bins, from its reference profile (``core/training/profile.py``)
- ``drift_scan``: the one GoogleSQL aggregation per table that counts rows into those bins
- ``drift_metrics``: PSI, JS distance, L-infinity and the rest, from bin counts only
- ``drift_verdict``: a column's severity and the dataset's verdict
- ``drift_report``: the check's report and its ``drift_results`` rows
- ``drift_store``: the ``drift_results`` and ``drift_profiles`` tables
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.drift.bins import ColumnBins, DriftProfileError, profile_bins
from airflow_ml_provider.core.drift.report import DriftReport
from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS, Scan, run_scan
from airflow_ml_provider.core.drift.store import segment_refs
from airflow_ml_provider.core.drift.verdict import ColumnResult, compare, dataset_verdict, skipped_column

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import DriftSpec, PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse

#: Partition columns of the tables a check scans (as the feature and inference operators write them).
FEATURES_PARTITION = "as_of_date"
PREDICTIONS_PARTITION = "prediction_date"


def _is_string_type(sql_type: str) -> bool:
    """Whether a warehouse column type (GoogleSQL or DuckDB) holds strings."""
    return sql_type.upper().startswith(("STRING", "VARCHAR", "TEXT"))


def scannable(
    bins: Mapping[str, ColumnBins], table_types: Mapping[str, str], table: str
) -> tuple[list[ColumnBins], dict[str, str]]:
    """Columns the table can be scanned for, and why the others cannot (missing, or a changed type)."""
    ok, why = [], {}
    for name, b in bins.items():
        if name not in table_types:
            why[name] = f"not_in_table: table {table} has no column {name}"
        elif b.per is not None and b.per not in table_types:
            why[name] = f"not_in_table: table {table} has no column {b.per}, which {name} is counted per"
        elif _is_string_type(table_types[name]) != (b.kind == "categorical"):
            why[name] = f"type_mismatch: the reference is {b.kind} but {table}.{name} is {table_types[name]}"
        else:
            ok.append(b)
    return ok, why


def check_table(
    warehouse: Warehouse,
    scan: Scan,
    day: dt.date,
    config: DriftSpec,
    *,
    skipped: Mapping[str, str] | None = None,
    segment_refs: Mapping[str, Mapping[str, ColumnBins]] | None = None,
) -> list[ColumnResult]:
    """Scan one table for ``day`` (one query) and judge every column; ``skipped`` maps column -> reason."""
    results = [
        skipped_column(b, table=scan.table, segment=ALL_SEGMENTS, levels=config.levels(b.name), reason=reason)
        for b in scan.columns
        if (reason := (skipped or {}).get(b.name))
    ]
    live = Scan(
        scan.table,
        scan.partition_column,
        tuple(b for b in scan.columns if b.name not in (skipped or {})),
        scan.filters,
        scan.segment_by,
    )
    if live.columns:
        counts = run_scan(warehouse, live, day, max_segments=config.max_segments)
        bins = {b.name: b for b in live.columns}
        results += compare(bins, counts, config, table=scan.table, segment_refs=segment_refs)
    return results


def check_drift(
    warehouse: Warehouse,
    spec: PipelineSpec,
    profile: Mapping[str, Any],
    day: dt.date,
    *,
    model_name: str,
    model_version: str,
    run_id: str,
    train_window: tuple[dt.date, dt.date] | None = None,
    predictions_table: str | None = "recommendations",
) -> DriftReport:
    """Check ``day``'s features (one scan) and, when the contract asks, its recommendation scores (one scan)."""
    from airflow_ml_provider.core.contract.spec import PREDICTION_COLUMN

    config = spec.drift
    features = profile.get("features") or {}
    bins = profile_bins(features, config.monitored([c for c in features if c != PREDICTION_COLUMN]))
    table = spec.feature_table
    types = warehouse.table_columns(table)
    live, skipped = scannable(bins, types, table)
    missing = [c for c in config.segment_by if c not in types]
    if missing:
        raise DriftProfileError(
            f"drift.segment_by names {missing}, which table {table} does not have. Segment by columns of {table}."
        )
    scan = Scan(table, FEATURES_PARTITION, tuple(bins.values()), segment_by=tuple(config.segment_by))
    refs = None
    if scan.segment_by and train_window:
        live_scan = Scan(table, FEATURES_PARTITION, tuple(live), segment_by=scan.segment_by)
        refs = segment_refs(warehouse, live_scan, model_name, model_version, train_window, config.max_segments)
    results = check_table(warehouse, scan, day, config, skipped=skipped, segment_refs=refs)
    if predictions_table and config.predictions and config.monitored([PREDICTION_COLUMN]):
        results += check_predictions(warehouse, profile, day, config, predictions_table, model_name, model_version)
    verdict = dataset_verdict(results, config.critical_features, config.drifted_share)
    return DriftReport(day, run_id, model_name, model_version, results, verdict)


def check_predictions(
    warehouse: Warehouse,
    profile: Mapping[str, Any],
    day: dt.date,
    config: DriftSpec,
    table: str,
    model_name: str,
    model_version: str,
) -> list[ColumnResult]:
    """Prediction drift: the day's recommendation scores of this model version against its top-k validation scores."""
    from airflow_ml_provider.core.contract.spec import PREDICTION_COLUMN

    reference = profile.get("score_topk")
    if not reference:
        placeholder = ColumnBins(PREDICTION_COLUMN, "numeric", "FLOAT64", reference=(0, 0, 0))
        reason = "no_reference: the model envelope has no score_topk profile; retrain to build one"
        return [
            skipped_column(
                placeholder, table=table, segment=ALL_SEGMENTS, levels=config.levels(PREDICTION_COLUMN), reason=reason
            )
        ]
    bins = {
        PREDICTION_COLUMN: ColumnBins.from_profile(
            PREDICTION_COLUMN, {"kind": "numeric", "type": "FLOAT64", **reference}
        )
    }
    _, skipped = scannable(bins, warehouse.table_columns(table), table)
    scan = Scan(
        table,
        PREDICTIONS_PARTITION,
        tuple(bins.values()),
        filters={"model_name": model_name, "model_version": model_version},
        # Rows filled from the global popularity list have no score: the model did not rank them.
        not_null=(PREDICTION_COLUMN,),
    )
    return check_table(warehouse, scan, day, config, skipped=skipped)
