"""``airflow-ml validate``: check a pipeline contract, its SQL and model.py in seconds, with no cloud.

The checks are values, not exceptions: each is a ``Check`` (PASS, FAIL or SKIP with a
sentence that says what is wrong and the fix), gathered in a ``ValidationReport``. The SQL
runs for real, on DuckDB, against a tiny generated demo world in a warehouse the caller
provides (the CLI uses a throwaway file in a temp dir), exactly as the pipeline runs it:
rendered, transpiled, bound and written with ``Warehouse.replace_partition``.

The checks live beside this module: ``validate_windows``, ``validate_sample`` (the demo world
and the SQL steps), ``validate_columns`` (features and label) and ``validate_model``
(model.py); ``validate_report`` holds the values they return.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.features.data_checks import sample_verdict
from airflow_ml_provider.core.validate.columns import check_features, check_label
from airflow_ml_provider.core.validate.model import check_model_hooks
from airflow_ml_provider.core.validate.report import Check, SampleRun, ValidationReport, sentence
from airflow_ml_provider.core.validate.sample import run_step, sample_as_of, seed_sample
from airflow_ml_provider.core.validate.windows import check_windows

if TYPE_CHECKING:
    from airflow_ml_provider.core.warehouse.interface import Warehouse


def validate_pipeline(pipeline: str | Path, sql_dir: str | Path, sample: Warehouse) -> ValidationReport:
    """Run every check on the contract at ``pipeline``; SQL paths are relative to ``sql_dir``.

    ``sample`` must be an empty, throwaway warehouse (DuckDB): it is seeded with a tiny demo
    world and the contract's tables are written into it.
    """
    pipeline, sql_dir = Path(pipeline), Path(sql_dir)
    report = ValidationReport(str(pipeline))
    try:
        spec = load_spec(pipeline)
    except Exception as err:  # the contract's own precise error (file, key path, fix)
        report.add("contract", "FAIL", str(err))
        for name in ("windows", "sample data", "sql", "features", "label", "data checks", "model.py"):
            report.add(name, "SKIP", "the contract does not parse; fix it first")
        return report
    report.add(
        "contract",
        "PASS",
        f"{spec.name}: {len(spec.steps)} feature step(s), {len(spec.features)} declared feature(s), "
        f"label {spec.label.step.table}.{spec.label.column}, objective {spec.model.objective}",
    )
    _guarded(report, "windows", lambda: check_windows(report, spec, sql_dir))
    run = SampleRun(as_of=sample_as_of(spec))
    if seed_sample(report, spec, sample):
        for step in [*spec.steps, spec.label.step]:
            run_step(report, spec, step, sql_dir, sample, run)
    else:
        report.add("sql", "SKIP", "no sample data to run the SQL on")
    _guarded(report, "features", lambda: check_features(report, spec, sql_dir, sample, run))
    _guarded(report, "label", lambda: check_label(report, spec, sample, run))
    failed = ", ".join(c.check for c in report.checks if c.status == "FAIL")
    skip = f"the SQL must run first; fix {failed}" if failed else ""
    _guarded(
        report,
        "data checks",
        lambda: report.add("data checks", *sample_verdict(sample, spec, run.as_of, skip_because=skip)),
    )
    _guarded(report, "model.py", lambda: check_model_hooks(report, spec, pipeline, sample, run))
    return report


def _guarded(report: ValidationReport, name: str, check: Callable[[], Check]) -> None:
    """Run a check; an unexpected error is that check's FAIL, never a crash of the whole report."""
    try:
        check()
    except Exception as err:
        report.add(name, "FAIL", sentence(err))
