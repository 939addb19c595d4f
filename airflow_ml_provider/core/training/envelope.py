"""The model envelope: what a training run writes next to ``model.txt``.

``model.txt`` is LightGBM's text format and is loaded with ``lightgbm.Booster(model_str=...)``:
a model file can never run code (no pickle anywhere). ``envelope.json`` carries identity,
reproducibility, data, results, the drift reference profile and a sample for serving's
schema check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.config import format_validation_error
from airflow_ml_provider.core.contract.spec import FeatureColumn
from airflow_ml_provider.exceptions import MLProviderError

MODEL_FILE = "model.txt"
ENVELOPE_FILE = "envelope.json"
HOOKS_FILE = "model.py"
#: Packages whose versions are recorded with every model.
RECORDED_PACKAGES = ("airflow-ml-provider", "lightgbm", "numpy", "pandas", "pyarrow", "duckdb", "sqlglot")


class ModelLoadError(MLProviderError):
    """A model or envelope is missing, corrupt or of an unknown format."""


class DataSummary(BaseModel):
    """Where the training data came from and how much of it there was."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    train_rows: int
    validation_rows: int
    train_lists: int
    validation_lists: int
    train_dates: tuple[dt.date, dt.date]
    validation_dates: tuple[dt.date, dt.date]
    #: The slice that chose the iteration (the held-out test window is validation_*).
    early_stopping_rows: int = 0
    early_stopping_dates: tuple[dt.date, dt.date] | None = None
    inf_replaced: dict[str, int] = {}
    #: ``model.sample_users``: the share of users (by FARM_FINGERPRINT of the id) whose fit and
    #: early-stopping lists were exported; the test window is whole. 1.0: every user.
    sample_users: float = 1.0
    #: ``evaluation.sample_users``: the share of users (same hash) the held-out test window judged.
    test_sample_users: float = 1.0


class Envelope(BaseModel):
    """Everything needed to trust, reproduce, serve and monitor one model version."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    name: str
    version: str
    created_at: dt.datetime
    git_sha: str | None
    spec_hash: str
    packages: dict[str, str]
    features: list[FeatureColumn]
    categories: dict[str, list[str]]
    objective: str
    params: dict[str, Any]
    best_iteration: int
    data: DataSummary
    metrics: dict[str, Any]
    profile: dict[str, Any]
    sample: dict[str, Any]
    hooks_sha256: str | None = None
    model_sha256: str | None = None
    #: Total gain of the splits on each feature at the chosen iteration (LightGBM's "gain"
    #: importance), in model order; empty in envelopes written before it was recorded.
    feature_importance: dict[str, float] = {}

    def feature_names(self) -> list[str]:
        """Feature names in model order."""
        return [f.name for f in self.features]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a model."""
    out = {}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_envelope(model_dir: str, model_text: str, envelope: Envelope, hooks_source: str | None = None) -> None:
    """Write model.txt, model.py (if any) and, last, envelope.json: its presence marks a complete model."""
    storage.write_text(storage.join(model_dir, MODEL_FILE), model_text)
    if hooks_source is not None:
        storage.write_text(storage.join(model_dir, HOOKS_FILE), hooks_source)
    storage.write_text(storage.join(model_dir, ENVELOPE_FILE), envelope.model_dump_json(indent=2))


def read_envelope(model_dir: str) -> Envelope:
    """Read and validate envelope.json with pyarrow.fs (the trainer's side); errors name the URI."""
    uri = storage.join(model_dir, ENVELOPE_FILE)
    try:
        text = storage.read_text(uri)
    except FileNotFoundError as err:
        raise ModelLoadError(f"{uri} does not exist: the training run did not finish or the URI is wrong.") from err
    return parse_envelope(text, uri)


def parse_envelope(text: str, uri: str) -> Envelope:
    """Validate envelope.json text; errors name the URI."""
    try:
        return Envelope.model_validate(json.loads(text))
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{uri} is not valid JSON ({err}); the envelope is corrupt. Retrain the model.") from err
    except ValidationError as err:
        raise ModelLoadError(f"{uri}: not a valid model envelope: {format_validation_error(err)}") from err


def check_model_text(text: str, uri: str, sha256: str | None = None) -> None:
    """Refuse a model.txt that is not whole before LightGBM parses it.

    LightGBM aborts the whole process (not an exception) on some truncated files, so a
    corrupt model must be caught here: by the checksum recorded in the envelope, and by the
    text format's own structure (one ``Tree=`` block per ``tree_sizes`` entry, then
    ``end of trees``).
    """
    if sha256 is not None and hashlib.sha256(text.encode("utf-8")).hexdigest() != sha256:
        raise ModelLoadError(
            f"{uri} does not match the checksum in its envelope: the file is corrupt, truncated or was "
            "replaced. Retrain the model, or roll back to the previous champion (airflow-ml models rollback)."
        )
    if not text.startswith("tree\n"):
        raise ModelLoadError(f"{uri} is not a LightGBM text model (it must start with 'tree'). Retrain the model.")
    sizes = next((ln for ln in text.splitlines()[:20] if ln.startswith("tree_sizes=")), None)
    declared = len(sizes.split("=", 1)[1].split()) if sizes else None
    trees = text.count("\nTree=")
    if declared is None or trees != declared or "\nend of trees" not in text:
        raise ModelLoadError(
            f"{uri} is truncated or corrupt: {trees} tree(s) found, {declared} declared, "
            f"{'no' if 'end of trees' not in text else 'an'} 'end of trees' marker. Retrain the model."
        )


def check_hooks_text(text: str, uri: str, sha256: str) -> None:
    """Refuse a model.py whose text is not the one the model was trained with, before anything imports it.

    model.py runs at serving (``transform``), so a changed file changes every list silently; the
    envelope's ``hooks_sha256`` is the checksum of the file training used.
    """
    actual = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if actual != sha256:
        raise ModelLoadError(
            f"{uri} does not match hooks_sha256 in its envelope: the file's sha256 is {actual}, the envelope "
            f"records {sha256}. It was edited or replaced after training, so it was not imported. Restore the "
            "model.py the model was trained with, or retrain the model (or roll back: airflow-ml models rollback)."
        )


def hooks_from_text(text: str, uri: str, sha256: str) -> Any:
    """The model.py hooks stored beside a model, checked against the envelope's ``hooks_sha256`` first."""
    import tempfile
    from pathlib import Path

    from airflow_ml_provider.core.contract.model_hooks import load_hooks

    check_hooks_text(text, uri, sha256)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / HOOKS_FILE
        path.write_text(text, encoding="utf-8")
        return load_hooks(path)


def booster_from_text(text: str, uri: str, sha256: str | None = None) -> Any:
    """A LightGBM Booster from model.txt text (never pickle); errors name the URI."""
    import lightgbm as lgb

    check_model_text(text, uri, sha256)
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as err:
        raise ModelLoadError(f"{uri} is corrupt or truncated: {err}. Retrain the model.") from err


def load_booster(model_dir: str, sha256: str | None = None) -> Any:
    """Load model.txt with pyarrow.fs, checked against the envelope's checksum; errors name the URI."""
    uri = storage.join(model_dir, MODEL_FILE)
    try:
        return booster_from_text(storage.read_text(uri), uri, sha256)
    except FileNotFoundError as err:
        raise ModelLoadError(f"{uri} does not exist. Check the model version's uri in ml_models.") from err
    except UnicodeDecodeError as err:
        raise ModelLoadError(f"{uri} is not a LightGBM text model (binary content). Retrain the model.") from err
