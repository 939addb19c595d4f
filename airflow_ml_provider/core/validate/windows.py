"""The ``windows`` check: label and time windows coherent with each other and with the SQL using them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.core.validate.sample import SAMPLE_END

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec, SqlStep
    from airflow_ml_provider.core.validate.report import Check, ValidationReport


def _params_used(step: SqlStep, sql_dir: Path, spec: PipelineSpec | None = None) -> set[str] | None:
    """The ``@params`` a step's SQL uses; None when it cannot be read or parsed (the SQL check says why)."""
    from airflow_ml_provider.core.features.render import render_sql
    from airflow_ml_provider.core.warehouse.sql import referenced_params

    try:
        return referenced_params(render_sql(step, sql_dir, SAMPLE_END, spec), str(sql_dir / step.sql))
    except Exception:
        return None


def window_problems(spec: PipelineSpec, sql_dir: Path) -> list[str]:
    """Incoherent label and time windows, each a sentence with the fix; empty when coherent."""
    # windows.training_days >= validation_days is the contract's own rule (spec_sections.Windows).
    w, problems = spec.windows, []
    per_user = spec.evaluation.lists == "user"
    for key, value in (("evaluation.k", spec.evaluation.k), ("inference.top_k", spec.inference.top_k)):
        if per_user and value > spec.candidates_per_user:
            problems.append(
                f"{key} ({value}) exceeds candidates_per_user ({spec.candidates_per_user}): at least "
                f"{value - spec.candidates_per_user} items of every list would be the global popularity fill, "
                f"not the model's; raise candidates_per_user or lower {key}"
            )
    uses_lookback = False
    steps_used = [(step, _params_used(step, sql_dir, spec)) for step in spec.steps]
    for step, used in steps_used:
        if used is None:
            continue
        uses_lookback |= "lookback_days" in used
        if "label_horizon_days" in used:
            problems.append(
                f"{step.sql} uses @label_horizon_days: feature SQL must not look past @as_of "
                "(label leakage); only the label step may"
            )
        if "as_of" not in used:
            problems.append(
                f"{step.sql} does not use @as_of: a feature partition must only see data up to its "
                "as-of date; filter with `DATE(event_ts) <= @as_of`"
            )
    if all(used is not None for _, used in steps_used) and not uses_lookback:
        problems.append(
            f"no feature step uses @lookback_days, so windows.feature_lookback_days ({w.feature_lookback_days}) "
            "has no effect; filter events with `DATE(event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)`"
        )
    label_used = _params_used(spec.label.step, sql_dir, spec)
    if label_used is not None:
        for param, why in (
            ("as_of", "labels must look forward from each as-of date"),
            ("label_horizon_days", f"so labels ignore windows.label_horizon_days ({w.label_horizon_days})"),
        ):
            if param not in label_used:
                problems.append(
                    f"{spec.label.step.sql} does not use @{param}: {why}; count events in "
                    "`(@as_of, DATE_ADD(@as_of, INTERVAL @label_horizon_days DAY)]`"
                )
    return problems


def check_windows(report: ValidationReport, spec: PipelineSpec, sql_dir: Path) -> Check:
    """The label and time windows are coherent with each other and with the SQL that uses them."""
    problems = window_problems(spec, sql_dir)
    if problems:
        return report.add("windows", "FAIL", "; ".join(problems))
    w = spec.windows
    run = dt.date(2026, 3, 31)
    train, valid = spec.training_dates(run)
    needed = (run - train[0]).days + w.feature_lookback_days
    return report.add(
        "windows",
        "PASS",
        f"features look back {w.feature_lookback_days}d, labels {w.label_horizon_days}d ahead; a run on day D "
        f"trains on {len(train)} as-of dates D-{(run - train[0]).days}..D-{(run - train[-1]).days} and validates "
        f"on D-{(run - valid[0]).days}..D-{(run - valid[-1]).days} (time split, {w.label_horizon_days}d gap); "
        f"needs {needed} days of events",
    )
