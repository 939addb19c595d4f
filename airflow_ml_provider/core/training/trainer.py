"""The training entrypoint: ``python -m airflow_ml_provider.core.training.trainer``.

The same command runs in a local subprocess and in a Vertex AI CustomJob, with the same
arguments and Vertex's environment conventions (``AIP_MODEL_DIR`` is where the model goes).
It reads the contract and the exported training data (Parquet), splits it by as-of date
into three windows (never at random): fit, early stopping (purged from fit by the label
horizon) and a held-out test window nothing has seen. It trains a LightGBM ranker grouped by
(as_of_date, user), evaluates the test window per scope against the baselines
(``core.evaluation.offline``), and writes a model envelope.
Everything it checks, it checks before spending training time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.model_hooks import ModelHooks, load_hooks
from airflow_ml_provider.core.contract.spec import PipelineSpec, parse_spec
from airflow_ml_provider.core.contract.spec_drift import DRIFT_TYPES
from airflow_ml_provider.core.evaluation.offline import evaluate_window
from airflow_ml_provider.core.memory import release_free_memory
from airflow_ml_provider.core.training.data import (
    EARLY,
    FIT,
    LABEL,
    TEST,
    as_days,
    check_training_data,
    check_windows,
    day_range,
    list_sizes,
    plan_windows,
    read_truth,
    read_window,
)
from airflow_ml_provider.core.training.encoding import encode, encode_consuming, fit_categories
from airflow_ml_provider.core.training.envelope import DataSummary, Envelope, package_versions, write_envelope
from airflow_ml_provider.core.training.job import SEEN
from airflow_ml_provider.core.training.profile import build_profile, numeric_profile
from airflow_ml_provider.exceptions import ContractError, MLProviderError

log = logging.getLogger("airflow_ml_provider.trainer")

#: Provider defaults; pipeline.yaml's model.params and model.py's params() override them.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
SAMPLE_ROWS = 5


def _spec_from_uri(uri: str) -> PipelineSpec:
    try:
        return parse_spec(storage.read_text(uri), uri)
    except FileNotFoundError as err:
        raise ContractError(f"{uri}: contract file not found.") from err


def _local_copy(uri: str, workdir: Path) -> Path:
    """A local path for a file URI (copied when remote, e.g. gs://)."""
    path = storage.local_path(uri)
    if path is not None:
        return path
    target = workdir / uri.rsplit("/", 1)[-1]
    target.write_bytes(storage.read_bytes(uri))
    return target


def _top_k_scores(df: pd.DataFrame, scores: np.ndarray, user: str, k: int) -> np.ndarray:
    """The k best scores of every (as_of_date, user) list."""
    frame = pd.DataFrame({"g": df.groupby(["as_of_date", user], sort=False).ngroup().to_numpy(), "s": scores})
    frame = frame.sort_values(["g", "s"], ascending=[True, False], kind="stable")
    return frame["s"].to_numpy()[frame.groupby("g").cumcount().to_numpy() < k]


def _labels(frame: pd.DataFrame, ranking: bool) -> np.ndarray:
    """LightGBM's labels: relevance grades for a ranker, 0/1 otherwise."""
    y = frame[LABEL].to_numpy(dtype=np.float64)
    return y if ranking else (y > 0).astype(np.float64)


def score_champion(
    champion_dir: str,
    valid_raw: pd.DataFrame,
    train: pd.DataFrame,
    spec: PipelineSpec,
    catalog: int,
    truth: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The current champion's metrics on the candidate's test window (same rows, same k, same scope).

    Comparing stored metrics from different weeks would compare data, not models. A champion
    whose features are no longer in the data cannot be compared; that is recorded, not hidden.
    """
    from airflow_ml_provider.core.training.envelope import HOOKS_FILE, load_booster, read_envelope

    envelope = read_envelope(champion_dir)
    with tempfile.TemporaryDirectory() as tmp:
        hooks_uri = storage.join(champion_dir, HOOKS_FILE)
        hooks = load_hooks(_local_copy(hooks_uri, Path(tmp))) if envelope.hooks_sha256 else None
        frame = (hooks.transform if hooks else (lambda d: d))(valid_raw.copy())
    try:
        matrix = encode(frame, envelope.features, envelope.categories, source=f"champion {envelope.version}").matrix
    except MLProviderError as err:
        return {"version": envelope.version, "comparable": False, "reason": str(err)}
    booster = load_booster(champion_dir, envelope.model_sha256)
    scores = np.asarray(booster.predict(matrix, num_iteration=envelope.best_iteration), dtype=np.float64)
    metrics = evaluate_window(valid_raw, scores, train, truth, spec, catalog, bootstrap=False)["model"]
    return {"version": envelope.version, "comparable": True, **metrics}


def train(
    spec: PipelineSpec,
    data_uri: str,
    model_dir: str,
    *,
    name: str,
    version: str,
    validation_from: dt.date,
    hooks: ModelHooks,
    git_sha: str | None = None,
    champion_dir: str | None = None,
    truth_uri: str | None = None,
) -> Envelope:
    """Train, evaluate and write the envelope to ``model_dir``; return the envelope."""
    lgb = import_lightgbm()

    started = time.monotonic()
    phases = _Phases()
    user = spec.entities.user
    # Without early stopping (model.early_stopping_rounds: 0 or windows.early_stopping_days: 0)
    # the early-stopping window is never read: all num_boost_round rounds are grown.
    early_stopping = bool(spec.model.early_stopping_rounds) and spec.windows.early_stopping_days > 0
    plan = plan_windows(data_uri, spec, validation_from, early=early_stopping)
    check_windows(plan, spec)
    release_free_memory()  # the key columns and their sort: freed, but kept by the allocators
    # One window is a frame at a time where it can be: the fit window is read, encoded and binned,
    # and its feature columns freed, before the test window is read (the peak is one window, not three).
    train_df = read_window(plan, FIT)
    check_training_data(train_df, spec, data_uri)
    truth = read_truth(truth_uri)
    phases.mark("read_split_check")
    train_df = hooks.transform(train_df)
    groups = {"fit": list_sizes(train_df, user)}

    features = spec.model_features
    for skipped, why in spec.skipped_features.items():
        log.info("Feature %s skipped: %s in pipeline.yaml; it stays in the table, out of the model", skipped, why)
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
    names = [f.name for f in features]
    categorical = [f.name for f in features if f.type == "STRING"]
    ranking = spec.model.ranking
    params = hooks.params(
        {
            **DEFAULT_PARAMS,
            **spec.model.params,
            "objective": spec.model.objective,
            "metric": "ndcg" if ranking else "auc",
            "eval_at": [spec.evaluation.k],
        }
    )

    def binned(matrix: np.ndarray, frame: pd.DataFrame, window: str, reference: Any = None) -> Any:
        """A window's LightGBM Dataset, binned now (LightGBM then frees its copy of the matrix).

        The params go in here: binned without them, the data would use LightGBM's defaults
        (seed, max_bin, min_data_in_leaf's pre-filter), not the contract's.
        """
        return lgb.Dataset(
            matrix,
            _labels(frame, ranking),
            group=groups[window] if ranking else None,
            reference=reference,
            feature_name=names,
            categorical_feature=categorical,
            free_raw_data=True,
            params=params,
        ).construct()

    dtrain = binned(x_train.matrix, train_df, "fit")
    # The training matrix is binned: drop the float copy before the other windows are read
    # (the test window is still read and encoded, and so checked, before any tree is grown).
    inf_train = x_train.inf_replaced
    del x_train
    release_free_memory()
    # Only the columns the evaluation reads (popularity, dates) stay, so trees grow in less memory.
    train_df = train_df[["as_of_date", user, spec.entities.item, LABEL]]
    # The early-stopping slice picks the iteration; the test window is never shown to training.
    valid_sets = []
    early_rows, early_days = 0, np.array([], dtype="datetime64[D]")
    if early_stopping:
        early_df = hooks.transform(read_window(plan, EARLY))
        groups["early"] = list_sizes(early_df, user)
        x_early = encode(early_df, features, categories, source=f"{data_uri} (early stopping)", order="F")
        valid_sets.append(binned(x_early.matrix, early_df, "early", reference=dtrain))
        # Nothing reads the early-stopping rows again but their count and dates.
        early_rows, early_days = len(early_df), as_days(early_df["as_of_date"])
        del x_early, early_df
        release_free_memory()
    valid_df = read_window(plan, TEST)
    # A shallow copy under pandas copy-on-write: a transform that edits columns in place never
    # touches valid_raw (the same object would have been edited with it).
    valid_raw = valid_df.copy(deep=False) if champion_dir else None
    valid_df = hooks.transform(valid_df)
    groups["test"] = list_sizes(valid_df, user)
    # The serving sample keeps the features of a few rows; the metrics read only these columns.
    sample_rows = valid_df.head(SAMPLE_ROWS)[[user, spec.entities.item, *names]].copy()
    evaluated = {"as_of_date", user, spec.entities.item, LABEL, SEEN, spec.evaluation.candidate_order or LABEL}
    x_valid = encode_consuming(valid_df, features, categories, f"{data_uri} (test)", evaluated)
    release_free_memory()
    log.info(
        "Read %d fit rows (%d lists), %d early-stopping rows (%d lists) and %d test rows (%d lists) from %s",
        len(train_df),
        groups["fit"].size,
        early_rows,
        groups["early"].size if early_stopping else 0,
        len(valid_df),
        groups["test"].size,
        data_uri,
    )
    phases.mark("transform_encode_bin")
    inf_replaced = {**inf_train, **{f"test.{k}": v for k, v in x_valid.inf_replaced.items()}}
    grown = [0]  # rounds grown: the booster lgb.train returns is cut back to the best iteration

    def count_rounds(env: Any) -> None:
        grown[0] = env.iteration + 1

    callbacks: list[Callable[..., Any]] = [lgb.log_evaluation(period=25), count_rounds]
    if valid_sets and spec.model.early_stopping_rounds:
        callbacks.append(lgb.early_stopping(spec.model.early_stopping_rounds, verbose=False))
    _route_lightgbm_logs()
    log.info(
        "Training %s %s: objective=%s, %d features, up to %d rounds",
        name,
        version,
        spec.model.objective,
        len(names),
        spec.model.num_boost_round,
    )
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=spec.model.num_boost_round,
        valid_sets=valid_sets,
        valid_names=["early_stopping"][: len(valid_sets)],
        callbacks=callbacks,
    )
    best = int(booster.best_iteration or booster.current_iteration())
    phases.mark("train")
    del dtrain, valid_sets  # the booster keeps the trees, not the binned data
    scores = np.asarray(booster.predict(x_valid.matrix, num_iteration=best), dtype=np.float64)
    del x_valid
    release_free_memory()  # the binned data and the test matrix, before the metrics build their frames
    catalog = int(pd.concat([train_df[spec.entities.item], valid_df[spec.entities.item]]).nunique())
    metrics = evaluate_window(valid_df, scores, train_df, truth, spec, catalog)
    metrics["champion"] = (
        score_champion(champion_dir, valid_raw, train_df, spec, catalog, truth)
        if champion_dir and valid_raw is not None
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
    metrics["skipped_features"] = spec.skipped_features
    if metrics["candidate_recall"] is not None:
        log.info("Candidate recall on the test window: %.4f", metrics["candidate_recall"])
    phases.mark("test_metrics")

    profile = {
        "features": feature_profile,
        "score": numeric_profile(scores),
        # What batch inference keeps: prediction drift compares recommendations.score with this.
        "score_topk": numeric_profile(_top_k_scores(valid_df, scores, user, spec.evaluation.k)),
    }
    sample = {
        "input": json.loads(sample_rows.to_json(orient="records")),
        "output": [float(s) for s in scores[:SAMPLE_ROWS]],
    }
    envelope = Envelope(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.UTC),
        git_sha=git_sha,
        spec_hash=spec.spec_hash,
        packages=package_versions(),
        features=features,
        categories=categories,
        objective=spec.model.objective,
        params={k: v for k, v in params.items() if k != "eval_at"} | {"eval_at": [spec.evaluation.k]},
        best_iteration=best,
        data=DataSummary(
            uri=data_uri,
            train_rows=len(train_df),
            validation_rows=len(valid_df),
            train_lists=int(groups["fit"].size),
            validation_lists=int(groups["test"].size),
            train_dates=day_range(as_days(train_df["as_of_date"])),
            validation_dates=day_range(as_days(valid_df["as_of_date"])),
            early_stopping_rows=early_rows,
            early_stopping_dates=day_range(early_days) if early_days.size else None,
            inf_replaced=inf_replaced,
        ),
        metrics=metrics,
        profile=profile,
        sample=sample,
        hooks_sha256=hooks.source_sha256,
        feature_importance=gain_importance(booster, best),
    )
    model_text = booster.model_to_string(num_iteration=best)
    envelope.model_sha256 = hashlib.sha256(model_text.encode("utf-8")).hexdigest()
    write_envelope(model_dir, model_text, envelope, hooks.source)
    phases.mark("profile_envelope")
    log.info("Wrote %s %s to %s in %.1fs", name, version, model_dir, time.monotonic() - started)
    # One machine-readable line: where a training run's time goes (bench/training.py reads it).
    log.info("Trainer phases: %s", phases.summary(rounds=grown[0], best=best))
    return envelope


def import_lightgbm() -> Any:
    """Import LightGBM without scikit-learn.

    LightGBM imports scikit-learn (and with it SciPy's stats) when it is installed, only for its
    sklearn-style estimators, which the trainer does not use: about 1 s of CPU and 65 MB of
    memory per training run. Hide it during the import; a model.py that imports scikit-learn
    itself still gets it (it is loaded before this, or imports it normally afterwards).
    """
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        import lightgbm

        return lightgbm
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` raise ImportError
    try:
        import lightgbm
    finally:
        del sys.modules["sklearn"]
    return lightgbm


def gain_importance(booster: Any, iteration: int) -> dict[str, float]:
    """Total split gain per feature up to ``iteration``, in model order (what the Models page charts)."""
    gains = booster.feature_importance(importance_type="gain", iteration=iteration)
    return {name: float(g) for name, g in zip(booster.feature_name(), gains, strict=True)}


class _Phases:
    """Wall and CPU seconds (this process, every thread) per named phase, each from the previous mark.

    ``cpu["before"]`` is the CPU the process spent before training began: when it runs as the
    entrypoint, the interpreter, the imports, the contract and model.py.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self._last, self._last_cpu = time.monotonic(), time.process_time()
        self.cpu: dict[str, float] = {"before": round(self._last_cpu, 3)}
        self.peak_rss_mb: dict[str, float] = {"before": _peak_rss_mb()}

    def mark(self, name: str) -> None:
        now, cpu = time.monotonic(), time.process_time()
        self.wall[name], self.cpu[name] = round(now - self._last, 3), round(cpu - self._last_cpu, 3)
        self.peak_rss_mb[name] = _peak_rss_mb()  # the process's peak so far: where it grew is where it was set
        self._last, self._last_cpu = now, cpu

    def summary(self, **extra: int) -> str:
        """One JSON line: bench/training.py reads it."""
        return json.dumps({"wall": self.wall, "cpu": self.cpu, "peak_rss_mb": self.peak_rss_mb, **extra})


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far in MB (0 where the OS cannot tell).

    Linux: VmHWM, which starts afresh at exec; ``ru_maxrss`` would report the parent's
    resident memory at fork (e.g. an Airflow worker's) as the trainer's own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0.0
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # macOS reports bytes, Linux KiB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)


def _route_lightgbm_logs() -> None:
    import lightgbm as lgb

    lgb.register_logger(log)


def build_parser() -> argparse.ArgumentParser:
    """The trainer's arguments (the same locally and on Vertex AI)."""
    p = argparse.ArgumentParser(
        prog="python -m airflow_ml_provider.core.training.trainer",
        description="Train a LightGBM ranker from exported features and write a model envelope to $AIP_MODEL_DIR.",
    )
    p.add_argument("--pipeline", required=True, help="URI of pipeline.yaml (file://, gs:// or a path)")
    p.add_argument("--train-data", required=True, help="URI of the exported training Parquet (file or folder)")
    p.add_argument(
        "--validation-from", required=True, type=dt.date.fromisoformat, help="first as-of date of the test window"
    )
    p.add_argument("--truth-data", help="URI of every positive in the label horizons (end-to-end evaluation)")
    p.add_argument("--model-name", required=True)
    p.add_argument("--model-version", required=True)
    p.add_argument("--hooks", help="URI of model.py (optional)")
    p.add_argument("--champion-dir", help="URI of the current champion's envelope folder, scored on the same window")
    p.add_argument("--git-sha", default=os.environ.get("GIT_SHA"))
    p.add_argument("--model-dir", default=os.environ.get("AIP_MODEL_DIR"), help="default: $AIP_MODEL_DIR")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training job; exit 1 with one clear line on a known error."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if not args.model_dir:
        print("trainer: error: set --model-dir or AIP_MODEL_DIR", file=sys.stderr)
        return 2
    try:
        spec = _spec_from_uri(args.pipeline)
        with tempfile.TemporaryDirectory() as tmp:
            hooks = load_hooks(_local_copy(args.hooks, Path(tmp)) if args.hooks else None)
            envelope = train(
                spec,
                args.train_data,
                args.model_dir,
                name=args.model_name,
                version=args.model_version,
                validation_from=args.validation_from,
                hooks=hooks,
                git_sha=args.git_sha,
                champion_dir=args.champion_dir,
                truth_uri=args.truth_data,
            )
    except MLProviderError as err:
        print(f"trainer: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"model_dir": args.model_dir, "version": envelope.version, "metrics": envelope.metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
