"""The trainer's windows (fit, early stopping, the held-out test window), each read by a function of its own.

A window's whole frame is a local of its function, freed when it returns: the fit window's
features are binned and gone before the early-stopping window is read, and that one before
the test window. A window hands back only what is read later: its binned Dataset, the fit
window's keys (the evaluation's popularity and dates), the test window's evaluated columns
and matrix (scored once the trees are grown), list sizes and the small summaries the envelope
records. The test window's evaluation after training is here too: its metrics, the champion's
on the same rows, the score profile and the serving sample.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.model_hooks import ModelHooks
from airflow_ml_provider.core.contract.spec import FeatureColumn, PipelineSpec
from airflow_ml_provider.core.contract.spec_drift import DRIFT_TYPES
from airflow_ml_provider.core.evaluation.offline import evaluate_window
from airflow_ml_provider.core.training.data import (
    EARLY,
    FIT,
    LABEL,
    TEST,
    TrainingDataError,
    WindowRows,
    as_days,
    check_training_data,
    day_range,
    list_sizes,
    read_truth,
    read_window,
)
from airflow_ml_provider.core.training.encoding import encode, encode_consuming, fit_categories
from airflow_ml_provider.core.training.envelope import DataSummary
from airflow_ml_provider.core.training.job import SEEN
from airflow_ml_provider.core.training.profile import build_profile, numeric_profile
from airflow_ml_provider.exceptions import MLProviderError

log = logging.getLogger("airflow_ml_provider.trainer")  # the trainer's logger: its lines, its order

SAMPLE_ROWS = 5


def _labels(frame: pd.DataFrame, ranking: bool) -> np.ndarray:
    """LightGBM's labels: relevance grades for a ranker, 0/1 otherwise."""
    y = frame[LABEL].to_numpy(dtype=np.float64)
    return y if ranking else (y > 0).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Binning:
    """How every window becomes a LightGBM Dataset: the same params, feature names and categorical features."""

    lgb: Any
    params: dict[str, Any]
    names: list[str]
    categorical: list[str]
    ranking: bool

    def dataset(self, matrix: np.ndarray, frame: pd.DataFrame, lists: np.ndarray, reference: Any = None) -> Any:
        """A window's LightGBM Dataset, binned now (LightGBM then frees its copy of the matrix).

        The params go in here: binned without them, the data would use LightGBM's defaults
        (seed, max_bin, min_data_in_leaf's pre-filter), not the contract's.
        """
        return self.lgb.Dataset(
            matrix,
            _labels(frame, self.ranking),
            group=lists if self.ranking else None,
            reference=reference,
            feature_name=self.names,
            categorical_feature=self.categorical,
            free_raw_data=True,
            params=self.params,
        ).construct()


@dataclasses.dataclass(frozen=True)
class FitWindow:
    """What the fit window leaves once binned: no feature column, only what later steps read."""

    keys: pd.DataFrame  # as_of_date, user, item and label: the evaluation's popularity and dates
    lists: np.ndarray  # list sizes
    features: list[FeatureColumn]
    categories: dict[str, list[str]]
    profile: dict[str, Any]  # the drift profile of the features
    inf_replaced: dict[str, int]
    binning: Binning
    truth: pd.DataFrame | None  # read with the fit window, before anything is transformed
    popular: pd.DataFrame | None = None  # the global popularity lists of the test window's users
    dropped: dict[str, str] = dataclasses.field(default_factory=dict)  # constant features left out of the model


@dataclasses.dataclass(frozen=True)
class EarlyWindow:
    """What the early-stopping window leaves once binned: its count and dates (empty without early stopping)."""

    rows: int = 0
    lists: int = 0
    dates: tuple[dt.date, dt.date] | None = None


@dataclasses.dataclass(frozen=True)
class HeldOutWindow:
    """The test window once encoded: the columns the metrics read, never shown to training."""

    frame: pd.DataFrame  # the evaluated columns (the features are in the matrix)
    raw: pd.DataFrame | None  # before model.py's transform, for the champion (None without one)
    sample: pd.DataFrame  # the serving sample: a few rows' features
    lists: np.ndarray
    inf_replaced: dict[str, int]


def fit_window(
    lgb: Any,
    plan: WindowRows,
    spec: PipelineSpec,
    hooks: ModelHooks,
    *,
    data_uri: str,
    truth_uri: str | None,
    defaults: dict[str, Any],
    on_read: Callable[[], None],
) -> tuple[Any, FitWindow]:
    """Read, check, profile, encode and bin the fit window: its binned Dataset and what is left of it.

    ``on_read()`` runs once the fit window and the truth are read and the window checked (the
    trainer marks a phase there), before model.py's transform.
    """
    user = spec.entities.user
    train_df = read_window(plan, FIT)
    check_training_data(train_df, spec, data_uri)
    truth, popular = read_truth(truth_uri)
    on_read()
    train_df = hooks.transform(train_df)
    lists = list_sizes(train_df, user)

    features = spec.model_features
    for skipped, why in spec.skipped_features.items():
        log.info("Feature %s skipped: %s in pipeline.yaml; it stays in the table, out of the model", skipped, why)
    dropped = constant_features(train_df, features)
    for name, why in dropped.items():
        log.info("Feature %s dropped: %s; it stays in the table, out of the model", name, why)
    features = [f for f in features if f.name not in dropped]
    if not features:
        raise TrainingDataError(
            f"{data_uri}: every model feature is constant in the fit window ({', '.join(dropped)}): the trees "
            "have nothing to split on. Check the feature SQL (or model.py's transform) and the source data."
        )
    categories = fit_categories(train_df, features)
    # The drift profile is the last reader of the fit window's features besides encoding.
    # Dates and timestamps are not binned for drift; every other declared type is.
    profiled: dict[str, str] = {f.name: f.type for f in features if f.type in DRIFT_TYPES}
    keys = ("as_of_date", spec.entities.item)  # drift.per_item features: one row per item and as-of date
    frame = train_df[[*keys, *profiled]] if spec.drift.per_item else train_df[list(profiled)]
    feature_profile = build_profile(frame, profiled, spec.drift.per_item, keys)
    del frame
    # Column-major matrices: LightGBM reads them as they are (no copy), and filling one is a
    # column copy, not the cache-unfriendly row-major scatter that serving's batches need. Each
    # feature column leaves the frame once copied: the frame and the matrix are never both whole.
    kept = {"as_of_date", user, spec.entities.item, LABEL}
    x_train = encode_consuming(train_df, features, categories, f"{data_uri} (training)", kept)
    ranking = spec.model.ranking
    params = hooks.params(
        {
            **defaults,
            **spec.model.params,
            "objective": spec.model.objective,
            "metric": "ndcg" if ranking else "auc",
            "eval_at": [spec.evaluation.k],
        }
    )
    names = [f.name for f in features]
    categorical = [f.name for f in features if f.type == "STRING"]
    binning = Binning(lgb, params, names, categorical, ranking)
    dtrain = binning.dataset(x_train.matrix, train_df, lists)
    # The training matrix is binned: its float copy and the rest of the frame go on return, before
    # the other windows are read. Only the columns the evaluation reads (popularity, dates) stay.
    rest = train_df[["as_of_date", user, spec.entities.item, LABEL]]
    return dtrain, FitWindow(
        rest, lists, features, categories, feature_profile, x_train.inf_replaced, binning, truth, popular, dropped
    )


def constant_features(frame: pd.DataFrame, features: list[FeatureColumn]) -> dict[str, str]:
    """Features with one value (NULL counts as a value) in the fit window: name -> why, for the log and envelope.

    A constant column cannot split a tree, yet it shifts LightGBM's binning and feature sampling:
    retraining on the same data with two constant columns added once changed the model (54 -> 57
    rounds). They leave the model as skipped features do, and serving never reads them.
    """
    out: dict[str, str] = {}
    for f in features:
        if f.name in frame.columns and frame[f.name].nunique(dropna=False) <= 1:
            value = frame[f.name].iloc[0] if len(frame) else None
            item = getattr(value, "item", None)
            value = item() if callable(item) else value  # numpy scalars print as np.int64(3)
            out[f.name] = f"constant in the fit window (every row {'NULL' if pd.isna(value) else repr(value)})"
    return out


def early_window(
    plan: WindowRows, spec: PipelineSpec, hooks: ModelHooks, fit: FitWindow, dtrain: Any, *, data_uri: str
) -> tuple[Any, EarlyWindow]:
    """Read, encode and bin the early-stopping window (binned with the fit window's bins): its Dataset and counts."""
    early_df = hooks.transform(read_window(plan, EARLY))
    lists = list_sizes(early_df, spec.entities.user)
    x_early = encode(early_df, fit.features, fit.categories, source=f"{data_uri} (early stopping)", order="F")
    dataset = fit.binning.dataset(x_early.matrix, early_df, lists, reference=dtrain)
    # Nothing reads the early-stopping rows again but their count and dates.
    days = as_days(early_df["as_of_date"])
    return dataset, EarlyWindow(len(early_df), int(lists.size), day_range(days) if days.size else None)


def held_out_window(
    plan: WindowRows, spec: PipelineSpec, hooks: ModelHooks, fit: FitWindow, *, data_uri: str, keep_raw: bool
) -> tuple[np.ndarray, HeldOutWindow]:
    """Read and encode the test window: its matrix, and the columns the metrics read.

    It is read and encoded, and so checked, before any tree is grown; it is scored after.
    """
    user, item = spec.entities.user, spec.entities.item
    valid_df = read_window(plan, TEST)
    # A shallow copy under pandas copy-on-write: a transform that edits columns in place never
    # touches valid_raw (the same object would have been edited with it).
    valid_raw = valid_df.copy(deep=False) if keep_raw else None
    valid_df = hooks.transform(valid_df)
    lists = list_sizes(valid_df, user)
    # The serving sample keeps the features of a few rows; the metrics read only these columns.
    sample_rows = valid_df.head(SAMPLE_ROWS)[[user, item, *fit.binning.names]].copy()
    evaluated = {"as_of_date", user, item, LABEL, SEEN, spec.evaluation.candidate_order or LABEL}
    x_valid = encode_consuming(valid_df, fit.features, fit.categories, f"{data_uri} (test)", evaluated)
    return x_valid.matrix, HeldOutWindow(valid_df, valid_raw, sample_rows, lists, x_valid.inf_replaced)


# --- the test window after training: its metrics, the champion's, and what the envelope records ---


def evaluate_held_out(
    spec: PipelineSpec, fit: FitWindow, test: HeldOutWindow, scores: np.ndarray, champion_dir: str | None
) -> dict[str, Any]:
    """The test window's metrics per scope and ranker, and the champion's on the same rows; logged."""
    item = spec.entities.item
    catalog = int(pd.concat([fit.keys[item], test.frame[item]]).nunique())
    metrics = evaluate_window(test.frame, scores, fit.keys, fit.truth, spec, catalog, popular=fit.popular)
    metrics["champion"] = (
        score_champion(champion_dir, test.raw, fit.keys, spec, catalog, fit.truth, fit.popular)
        if champion_dir and test.raw is not None
        else None
    )
    for scope, rankers in metrics["scopes"].items():
        for ranker, m in rankers.items():
            log.info(
                "Test window %s..%s, %s @%d, %s: ndcg %.4f recall %.4f map %.4f over %d lists",
                *metrics["test_dates"],
                scope,
                spec.evaluation.k,
                ranker,
                m["ndcg"],
                m["recall"],
                m["map"],
                m["lists"],
            )
    metrics["skipped_features"] = {**spec.skipped_features, **fit.dropped}
    if metrics["candidate_recall"] is not None:
        log.info("Candidate recall on the test window: %.4f", metrics["candidate_recall"])
    return metrics


def local_copy(uri: str, workdir: Path) -> Path:
    """A local path for a file URI (copied when remote, e.g. gs://)."""
    path = storage.local_path(uri)
    if path is not None:
        return path
    target = workdir / uri.rsplit("/", 1)[-1]
    target.write_bytes(storage.read_bytes(uri))
    return target


def score_champion(
    champion_dir: str,
    valid_raw: pd.DataFrame,
    train: pd.DataFrame,
    spec: PipelineSpec,
    catalog: int,
    truth: pd.DataFrame | None = None,
    popular: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The current champion's metrics on the candidate's test window (same rows, same k, same scope).

    Comparing stored metrics from different weeks would compare data, not models. A champion
    whose features are no longer in the data cannot be compared; that is recorded, not hidden.
    """
    from airflow_ml_provider.core.training.envelope import HOOKS_FILE, hooks_from_text, load_booster, read_envelope

    envelope = read_envelope(champion_dir)
    with tempfile.TemporaryDirectory() as tmp:
        hooks_uri = storage.join(champion_dir, HOOKS_FILE)
        hooks = (
            hooks_from_text(local_copy(hooks_uri, Path(tmp)).read_text("utf-8"), hooks_uri, envelope.hooks_sha256)
            if envelope.hooks_sha256
            else None
        )  # checked against the envelope before import, as at serving
        frame = (hooks.transform if hooks else (lambda d: d))(valid_raw.copy())
    try:
        matrix = encode(frame, envelope.features, envelope.categories, source=f"champion {envelope.version}").matrix
    except MLProviderError as err:
        return {"version": envelope.version, "comparable": False, "reason": str(err)}
    booster = load_booster(champion_dir, envelope.model_sha256)
    scores = np.asarray(booster.predict(matrix, num_iteration=envelope.best_iteration), dtype=np.float64)
    metrics = evaluate_window(valid_raw, scores, train, truth, spec, catalog, bootstrap=False, popular=popular)["model"]
    return {"version": envelope.version, "comparable": True, **metrics}


def _top_k_scores(df: pd.DataFrame, scores: np.ndarray, user: str, k: int) -> np.ndarray:
    """The k best scores of every (as_of_date, user) list."""
    frame = pd.DataFrame({"g": df.groupby(["as_of_date", user], sort=False).ngroup().to_numpy(), "s": scores})
    frame = frame.sort_values(["g", "s"], ascending=[True, False], kind="stable")
    return frame["s"].to_numpy()[frame.groupby("g").cumcount().to_numpy() < k]


def score_profile(
    spec: PipelineSpec, fit: FitWindow, test: HeldOutWindow, scores: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The drift reference profile (features, scores, top-k scores) and the serving sample."""
    profile = {
        "features": fit.profile,
        "score": numeric_profile(scores),
        # What batch inference keeps: prediction drift compares recommendations.score with this.
        "score_topk": numeric_profile(_top_k_scores(test.frame, scores, spec.entities.user, spec.evaluation.k)),
    }
    sample = {
        "input": json.loads(test.sample.to_json(orient="records")),
        "output": [float(s) for s in scores[:SAMPLE_ROWS]],
    }
    return profile, sample


def data_summary(
    data_uri: str,
    fit: FitWindow,
    early: EarlyWindow,
    test: HeldOutWindow,
    *,
    sample_users: float = 1.0,
    test_sample_users: float = 1.0,
) -> DataSummary:
    """What the envelope records of the three windows."""
    return DataSummary(
        uri=data_uri,
        train_rows=len(fit.keys),
        validation_rows=len(test.frame),
        train_lists=int(fit.lists.size),
        validation_lists=int(test.lists.size),
        train_dates=day_range(as_days(fit.keys["as_of_date"])),
        validation_dates=day_range(as_days(test.frame["as_of_date"])),
        early_stopping_rows=early.rows,
        early_stopping_dates=early.dates,
        inf_replaced={**fit.inf_replaced, **{f"test.{k}": v for k, v in test.inf_replaced.items()}},
        sample_users=sample_users,
        test_sample_users=test_sample_users,
    )
