"""Checking a date for drift: the one way the drift stage runs (DriftCheckOperator, ``airflow-ml drift``).

Resolve the model (a pinned version or the champion), read its reference profile from the
envelope, scan the date (``check_drift``), replace the date's ``drift_results`` partition, and
say whether the verdict fails under the contract's (or the caller's) ``fail_on``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core import storage
from airflow_ml_provider.exceptions import ContractError

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.drift.report import DriftReport
    from airflow_ml_provider.core.warehouse.interface import Warehouse

log = logging.getLogger(__name__)

#: fail_on -> the verdicts that fail the check.
FAILING_VERDICTS: dict[str, tuple[str, ...]] = {"drift": ("drift",), "warn": ("warn", "drift"), "never": ()}


@dataclass(frozen=True)
class DriftCheck:
    """A recorded drift check: the report, its small summary (with the write) and, if it fails, why."""

    report: DriftReport
    summary: dict[str, Any]
    failure: str | None


def check_fail_on(fail_on: str, where: str) -> str:
    """``fail_on`` if it is one of ``FAILING_VERDICTS``; else a ``ContractError`` naming ``where``."""
    if fail_on not in FAILING_VERDICTS:
        raise ContractError(f"{where}: fail_on must be one of {', '.join(FAILING_VERDICTS)}, got {fail_on!r}.")
    return fail_on


def run_drift_check(
    warehouse: Warehouse,
    spec: PipelineSpec,
    day: dt.date,
    *,
    run_id: str,
    model_version: str = "champion",
    model_name: str | None = None,
    fail_on: str | None = None,
    predictions_table: str | None = "recommendations",
    artifacts: storage.Artifacts = storage.DEFAULT_ARTIFACTS,
    logger: Any = None,
) -> DriftCheck:
    """Check ``day`` against the model's reference profile and replace its ``drift_results`` partition.

    ``failure`` is a sentence when the verdict is one ``fail_on`` (default: the contract's
    ``drift.fail_on``) fails on; the results are written either way.
    """
    from airflow_ml_provider.core.drift.check import check_drift
    from airflow_ml_provider.core.drift.store import write_results
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE, parse_envelope

    out = logger or log
    fail_on = check_fail_on(fail_on or spec.drift.fail_on, "drift check")
    name = model_name or spec.name
    record = ModelRegistry(warehouse, artifact_root=artifacts.root).locate(name, model_version, artifacts.exists)
    uri = storage.join(record.uri, ENVELOPE_FILE)
    envelope = parse_envelope(artifacts.read_text(uri), uri)
    out.info("Checking %s for drift against %s %s (%s)", day, name, record.version, record.uri)
    report = check_drift(
        warehouse,
        spec,
        envelope.profile,
        day,
        model_name=name,
        model_version=record.version,
        run_id=run_id,
        train_window=envelope.data.train_dates,
        predictions_table=predictions_table,
    )
    written = write_results(warehouse, report).as_dict()
    for line in report.table():
        out.info("Drift | %s", line)
    summary = {**report.summary(), "results": written}
    failure = None
    if summary["verdict"] in FAILING_VERDICTS[fail_on]:
        failure = (
            f"drift check of {day} against {name} {record.version}: verdict {summary['verdict']} with "
            f"fail_on={fail_on!r} (drifted: {', '.join(summary['drifted']) or 'none'}; warned: "
            f"{', '.join(summary['warned']) or 'none'}). The results are in drift_results for {day}."
        )
    return DriftCheck(report, summary, failure)
