"""Judging drift: a column's severity from its metrics, and the dataset's verdict from its columns.

PSI at or over a column's drift level is drift, over its warn level a warning; empty, constant
and too-small columns are skipped with a reason. Segments are judged against their own
reference but do not vote in the dataset verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from airflow_ml_provider.core.drift.bins import ColumnBins
from airflow_ml_provider.core.drift.metrics import column_metrics
from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import DriftSpec


@dataclass(frozen=True)
class ColumnResult:
    """One column of one segment of one scanned table: its metrics and severity, or why it was skipped."""

    table: str
    segment: str
    column: str
    kind: str
    status: str  # evaluated | skipped
    severity: str | None  # ok | warn | drift; None when skipped
    metrics: dict[str, float]
    warn_threshold: float
    threshold: float
    n_ref: int
    n_cur: int
    null_rate_ref: float | None
    null_rate_cur: float | None
    skip_reason: str | None = None


def skip_reason(bins: ColumnBins, current: np.ndarray, min_rows: int) -> str | None:
    """Why a column cannot be judged (empty, too small, constant reference), or None."""
    n_ref, n_cur = sum(bins.reference), int(current.sum())
    if n_ref == 0:
        return "empty: the reference profile has no rows"
    if n_cur == 0:
        return "empty: no current rows"
    unit, key = ("items", "min_items") if bins.per else ("rows", "min_rows")
    if n_cur < min_rows:
        return f"too_small: {n_cur} current {unit}, fewer than {key}={min_rows}"
    if n_ref < min_rows:
        return f"too_small: {n_ref} reference {unit}, fewer than {key}={min_rows}"
    populated = [label for label, c in zip(bins.labels, bins.reference, strict=True) if c]
    if len(populated) == 1:
        return f"constant: every reference row is in one bin ({populated[0]}), so PSI cannot tell drift from noise"
    return None


def evaluate_column(
    bins: ColumnBins,
    current: np.ndarray,
    *,
    table: str,
    segment: str,
    levels: tuple[float, float],
    epsilon: float,
    min_rows: int,
) -> ColumnResult:
    """Metrics and severity of one column (PSI >= drift level: drift; >= warn level: warn), or a skip."""
    ref = np.asarray(bins.reference, dtype=np.int64)
    n_ref, n_cur = int(ref.sum()), int(current.sum())
    null = bins.null_index
    rates = (ref[null] / n_ref if n_ref else None, current[null] / n_cur if n_cur else None)
    reason = skip_reason(bins, current, min_rows)
    metrics = {} if reason else column_metrics(bins, current, epsilon)
    severity = None
    if not reason:
        severity = "drift" if metrics["psi"] >= levels[1] else "warn" if metrics["psi"] >= levels[0] else "ok"
    return ColumnResult(
        table=table,
        segment=segment,
        column=bins.name,
        kind=bins.kind,
        status="skipped" if reason else "evaluated",
        severity=severity,
        metrics=metrics,
        warn_threshold=levels[0],
        threshold=levels[1],
        n_ref=n_ref,
        n_cur=n_cur,
        null_rate_ref=None if rates[0] is None else float(rates[0]),
        null_rate_cur=None if rates[1] is None else float(rates[1]),
        skip_reason=reason,
    )


def skipped_column(
    bins: ColumnBins, *, table: str, segment: str, levels: tuple[float, float], reason: str
) -> ColumnResult:
    """A column that could not be scanned at all (not in the table, wrong type, no reference)."""
    return ColumnResult(
        table=table,
        segment=segment,
        column=bins.name,
        kind=bins.kind,
        status="skipped",
        severity=None,
        metrics={},
        warn_threshold=levels[0],
        threshold=levels[1],
        n_ref=sum(bins.reference),
        n_cur=0,
        null_rate_ref=None,
        null_rate_cur=None,
        skip_reason=reason,
    )


@dataclass(frozen=True)
class Verdict:
    """The dataset's verdict from the whole-population columns."""

    verdict: str  # drift | warn | ok | skipped
    drifted: list[str]
    warned: list[str]
    evaluated: int
    drifted_share: float


def dataset_verdict(results: Sequence[ColumnResult], critical: Sequence[str], drifted_share: float = 0.5) -> Verdict:
    """Drift when a critical column drifts or the drifted share is >= ``drifted_share``; warn when any warns.

    Segments inform but do not vote: the thresholds are calibrated on the whole population,
    and a small segment's PSI is noisier.
    """
    judged = [r for r in results if r.segment == ALL_SEGMENTS and r.status == "evaluated"]
    drifted = [r.column for r in judged if r.severity == "drift"]
    warned = [r.column for r in judged if r.severity == "warn"]
    share = len(drifted) / len(judged) if judged else 0.0
    if not judged:
        verdict = "skipped"
    elif set(drifted) & set(critical) or share >= drifted_share:
        verdict = "drift"
    else:
        verdict = "warn" if drifted or warned else "ok"
    return Verdict(verdict, drifted, warned, len(judged), share)


def compare(
    bins: Mapping[str, ColumnBins],
    counts: Mapping[str, Mapping[str, np.ndarray]],
    config: DriftSpec,
    *,
    table: str,
    segment_refs: Mapping[str, Mapping[str, ColumnBins]] | None = None,
) -> list[ColumnResult]:
    """Evaluate every column of every segment of one scan (segments against their own reference)."""
    results = []
    for segment, columns in counts.items():
        is_total = segment == ALL_SEGMENTS
        refs = bins if is_total else (segment_refs or {}).get(segment, {})
        for name, current in columns.items():
            levels = config.levels(name)
            if name not in refs:
                reason = "no_reference: the segment has no rows in the training window"
                results.append(skipped_column(bins[name], table=table, segment=segment, levels=levels, reason=reason))
                continue
            results.append(
                evaluate_column(
                    refs[name],
                    current,
                    table=table,
                    segment=segment,
                    levels=levels,
                    epsilon=config.epsilon,
                    min_rows=config.min_count(refs[name].per, segment=not is_total),
                )
            )
    return results
