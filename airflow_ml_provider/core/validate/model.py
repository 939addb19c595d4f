"""The ``model.py`` check: only the documented hooks, and transform() keeps the features encodable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.validate.report import sentence

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.validate.report import Check, SampleRun, ValidationReport
    from airflow_ml_provider.core.warehouse.interface import Warehouse


def check_model_hooks(
    report: ValidationReport, spec: PipelineSpec, pipeline: Path, sample: Warehouse, run: SampleRun
) -> Check:
    """model.py offers only the documented hooks, with the right signatures and return types."""
    from airflow_ml_provider.core.contract.model_hooks import load_hooks

    beside = pipeline.parent / "model.py"
    if spec.model.hooks is None:
        if beside.exists():
            return report.add(
                "model.py",
                "FAIL",
                f"{beside} exists but the contract does not name it, so the pipeline ignores it; set "
                "`model.hooks: model.py` in the contract, or delete the file",
            )
        return report.add("model.py", "SKIP", "no model.hooks in the contract: the provider's defaults are used")
    path = pipeline.parent / spec.model.hooks
    try:
        hooks = load_hooks(path)
        params = hooks.params(_default_params(spec))
        detail = f"{path} offers only documented hooks; params() returns {len(params)} parameters"
        frame = _sample_frame(spec, sample, run)
        if frame is not None:
            detail += _check_transform(spec, hooks.transform, frame, str(path))
        else:
            detail += "; transform() not run: the sample has no feature rows matching the declared features"
    except Exception as err:
        return report.add("model.py", "FAIL", sentence(err))
    return report.add("model.py", "PASS", detail)


def _default_params(spec: PipelineSpec) -> dict[str, Any]:
    from airflow_ml_provider.core.training.trainer import DEFAULT_PARAMS

    return {**DEFAULT_PARAMS, **spec.model.params, "objective": spec.model.objective}


def _sample_frame(spec: PipelineSpec, sample: Warehouse, run: SampleRun) -> Any:
    """The sample's serving rows (keys and features), or None when the feature step gave none."""
    from airflow_ml_provider.core.inference.scoring import candidate_features_sql

    if not run.ran.get(spec.feature_table):
        return None
    try:
        return sample.query_df(candidate_features_sql(spec), {"as_of": run.as_of}, source="sample features")
    except Exception:
        return None  # the features check reports what is wrong with the columns


def _check_transform(spec: PipelineSpec, transform: Callable[[Any], Any], frame: Any, source: str) -> str:
    """Run transform() on the sample rows and encode the result as training and serving would."""
    from airflow_ml_provider.core.training.encoding import encode, fit_categories

    out = transform(frame.copy())
    encode(out, spec.features, fit_categories(out, spec.features), source=f"{source}: transform() output")
    return f"; transform() keeps the {len(spec.features)} declared features encodable on {len(frame)} sample rows"
