"""model.py hooks: transform() must keep the columns it is given, and check_hooks finds that before any data moves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_ml_provider.core.contract.model_hooks import HooksError, check_hooks, load_hooks
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.training.job import check_model_hooks, training_columns
from tests.paths import PIPELINE


def _model(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "model.py"
    path.write_text(body)
    return path


def test_transform_that_renames_a_feature_is_blamed_with_the_columns(tmp_path):
    path = _model(tmp_path, "def transform(df):\n    return df.rename(columns={'item_price': 'price'})\n")
    columns = training_columns(load_spec(PIPELINE))
    with pytest.raises(
        HooksError,
        match=r"model\.py: transform\(\) dropped or renamed column\(s\) item_price; "
        r"it returned new column\(s\) price instead\..*remove a feature from `features:`",
    ):
        check_hooks(path, columns)


def test_transform_that_drops_features_names_them_at_serving_too(tmp_path):
    path = _model(tmp_path, "def transform(df):\n    return df.drop(columns=['a', 'b'])\n")
    hooks = load_hooks(path)
    with pytest.raises(HooksError, match=r"transform\(\) dropped or renamed column\(s\) a, b\. "):
        hooks.transform(pd.DataFrame({"a": [1], "b": [2], "c": [3]}))


def test_reference_model_py_passes_the_early_check():
    spec = load_spec(PIPELINE)
    check_model_hooks(spec, PIPELINE)
    hooks = check_hooks(PIPELINE.parent / "model.py", training_columns(spec))
    out = hooks.transform(pd.DataFrame({"pair_price_ratio": [50.0], "x": [1]}))
    assert list(out.columns) == ["pair_price_ratio", "x"] and out["pair_price_ratio"].iloc[0] == 10.0


def test_model_py_that_fails_to_import_fails_the_early_check(tmp_path):
    contract = tmp_path / "pipeline.yaml"
    contract.write_text(PIPELINE.read_text())
    _model(tmp_path, "import no_such_module\n")
    with pytest.raises(HooksError, match=r"model\.py: fails to import: ModuleNotFoundError"):
        check_model_hooks(load_spec(contract), contract)


def test_model_py_is_checked_against_the_envelope_before_it_is_imported(tmp_path):
    import hashlib

    from airflow_ml_provider.core.training.envelope import ModelLoadError, hooks_from_text

    trained = "def transform(df):\n    return df\n"
    recorded = hashlib.sha256(trained.encode()).hexdigest()
    assert hooks_from_text(trained, "file:///m/model.py", recorded).source_sha256 == recorded
    edited = trained + "raise SystemExit('imported')\n"  # would end the process if it were imported
    with pytest.raises(ModelLoadError) as info:
        hooks_from_text(edited, "file:///m/model.py", recorded)
    message = str(info.value)
    assert message.startswith("file:///m/model.py does not match hooks_sha256 in its envelope")
    assert hashlib.sha256(edited.encode()).hexdigest() in message and recorded in message
    assert "Restore the model.py the model was trained with, or retrain the model" in message
