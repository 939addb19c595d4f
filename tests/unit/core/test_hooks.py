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
