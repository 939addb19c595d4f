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
import dataclasses
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

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.model_hooks import ModelHooks, load_hooks
from airflow_ml_provider.core.contract.spec import FeatureColumn, PipelineSpec, parse_spec
from airflow_ml_provider.core.memory import release_free_memory
from airflow_ml_provider.core.training.data import check_windows, plan_windows
from airflow_ml_provider.core.training.envelope import DataSummary, Envelope, package_versions, write_envelope
from airflow_ml_provider.core.training.windows import (
    Binning,
    EarlyWindow,
    data_summary,
    early_window,
    evaluate_held_out,
    fit_window,
    held_out_window,
    local_copy,
    score_profile,
)
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


def _spec_from_uri(uri: str) -> PipelineSpec:
    try:
        return parse_spec(storage.read_text(uri), uri)
    except FileNotFoundError as err:
        raise ContractError(f"{uri}: contract file not found.") from err


@dataclasses.dataclass(frozen=True)
class _Trained:
    """A grown and evaluated model and what its envelope records; no window's frame."""

    booster: Any
    best: int  # the best iteration: the model file and the metrics stop there
    rounds: int  # rounds grown (early stopping grows its patience past the best)
    features: list[FeatureColumn]
    categories: dict[str, list[str]]
    params: dict[str, Any]
    data: DataSummary
    metrics: dict[str, Any]
    profile: dict[str, Any]
    sample: dict[str, Any]


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
    """Train, evaluate and write the envelope to ``model_dir``; return the envelope.

    Each window is read, encoded and binned by a function of its own (``core.training.windows``),
    so its frames are freed when that function returns; what the evaluation reads after training
    (the fit window's keys, the test window's evaluated columns) is freed before the envelope is
    written.
    """
    lgb = import_lightgbm()

    started = time.monotonic()
    phases = _Phases()
    trained = _train_and_test(
        lgb,
        spec,
        data_uri,
        validation_from,
        hooks,
        phases,
        name=name,
        version=version,
        champion_dir=champion_dir,
        truth_uri=truth_uri,
    )
    envelope = _write_model(trained, spec, model_dir, name=name, version=version, git_sha=git_sha, hooks=hooks)
    phases.mark("profile_envelope")
    log.info("Wrote %s %s to %s in %.1fs", name, version, model_dir, time.monotonic() - started)
    # One machine-readable line: where a training run's time goes (bench/training.py reads it).
    log.info("Trainer phases: %s", phases.summary(rounds=trained.rounds, best=trained.best))
    return envelope


def _train_and_test(
    lgb: Any,
    spec: PipelineSpec,
    data_uri: str,
    validation_from: dt.date,
    hooks: ModelHooks,
    phases: _Phases,
    *,
    name: str,
    version: str,
    champion_dir: str | None,
    truth_uri: str | None,
) -> _Trained:
    """The windows in turn, the trees grown once all are read, then the test window's metrics and profile.

    Every frame is a local of this function or of a window's: all are freed when it returns.
    """
    # Without early stopping (model.early_stopping_rounds: 0 or windows.early_stopping_days: 0)
    # the early-stopping window is never read: all num_boost_round rounds are grown.
    early_stopping = bool(spec.model.early_stopping_rounds) and spec.windows.early_stopping_days > 0
    plan = plan_windows(data_uri, spec, validation_from, early=early_stopping)
    check_windows(plan, spec)
    release_free_memory()  # the key columns and their sort: freed, but kept by the allocators
    # One window is a frame at a time where it can be: the fit window is read, encoded and binned,
    # and its feature columns freed, before the test window is read (the peak is one window, not three).
    # The test window is still read and encoded, and so checked, before any tree is grown.
    dtrain, fit = fit_window(
        lgb,
        plan,
        spec,
        hooks,
        data_uri=data_uri,
        truth_uri=truth_uri,
        defaults=DEFAULT_PARAMS,
        on_read=lambda: phases.mark("read_split_check"),
    )
    release_free_memory()  # the fit window's float matrix and feature columns, gone with fit_window
    # The early-stopping slice picks the iteration; the test window is never shown to training.
    valid_sets: list[Any] = []
    early = EarlyWindow()
    if early_stopping:
        valid_set, early = early_window(plan, spec, hooks, fit, dtrain, data_uri=data_uri)
        valid_sets.append(valid_set)
        release_free_memory()
    x_test, test = held_out_window(plan, spec, hooks, fit, data_uri=data_uri, keep_raw=bool(champion_dir))
    del plan  # nothing reads a window again: its row positions go before the trees grow
    release_free_memory()
    log.info(
        "Read %d fit rows (%d lists), %d early-stopping rows (%d lists) and %d test rows (%d lists) from %s",
        len(fit.keys),
        fit.lists.size,
        early.rows,
        early.lists,
        len(test.frame),
        test.lists.size,
        data_uri,
    )
    phases.mark("transform_encode_bin")
    booster, best, rounds = _grow(fit.binning, spec, dtrain, valid_sets, name=name, version=version)
    phases.mark("train")
    del dtrain, valid_sets  # the booster keeps the trees, not the binned data
    scores = np.asarray(booster.predict(x_test, num_iteration=best), dtype=np.float64)
    del x_test
    release_free_memory()  # the binned data and the test matrix, before the metrics build their frames
    metrics = evaluate_held_out(spec, fit, test, scores, champion_dir)
    phases.mark("test_metrics")
    profile, sample = score_profile(spec, fit, test, scores)
    data = data_summary(
        data_uri,
        fit,
        early,
        test,
        sample_users=spec.model.sample_users,
        test_sample_users=spec.evaluation.sample_users,
    )
    return _Trained(
        booster, best, rounds, fit.features, fit.categories, fit.binning.params, data, metrics, profile, sample
    )


def _grow(
    binning: Binning, spec: PipelineSpec, dtrain: Any, valid_sets: list[Any], *, name: str, version: str
) -> tuple[Any, int, int]:
    """``lgb.train`` on the binned fit window: the booster, its best iteration and the rounds grown."""
    lgb = binning.lgb
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
        len(binning.names),
        spec.model.num_boost_round,
    )
    booster = lgb.train(
        binning.params,
        dtrain,
        num_boost_round=spec.model.num_boost_round,
        valid_sets=valid_sets,
        valid_names=["early_stopping"][: len(valid_sets)],
        callbacks=callbacks,
    )
    return booster, int(booster.best_iteration or booster.current_iteration()), grown[0]


def _write_model(
    trained: _Trained,
    spec: PipelineSpec,
    model_dir: str,
    *,
    name: str,
    version: str,
    git_sha: str | None,
    hooks: ModelHooks,
) -> Envelope:
    """The envelope of a trained model, written with its model file to ``model_dir``."""
    booster, best = trained.booster, trained.best
    envelope = Envelope(
        name=name,
        version=version,
        created_at=dt.datetime.now(dt.UTC),
        git_sha=git_sha,
        spec_hash=spec.spec_hash,
        packages=package_versions(),
        features=trained.features,
        categories=trained.categories,
        objective=spec.model.objective,
        params={k: v for k, v in trained.params.items() if k != "eval_at"} | {"eval_at": [spec.evaluation.k]},
        best_iteration=best,
        data=trained.data,
        metrics=trained.metrics,
        profile=trained.profile,
        sample=trained.sample,
        hooks_sha256=hooks.source_sha256,
        feature_importance=gain_importance(booster, best),
    )
    model_text = booster.model_to_string(num_iteration=best)
    envelope.model_sha256 = hashlib.sha256(model_text.encode("utf-8")).hexdigest()
    write_envelope(model_dir, model_text, envelope, hooks.source)
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
            hooks = load_hooks(local_copy(args.hooks, Path(tmp)) if args.hooks else None)
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
