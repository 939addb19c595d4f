"""The trainer's phase log line (what bench/training.py reads), and the contract's optional training costs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_ml_provider.core.contract.model_hooks import DEFAULT_HOOKS
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.training.trainer import train
from tests.paths import PIPELINE

# In a fresh interpreter: the peak so far of a test process depends on the tests before it.
PHASES = """
import json
from airflow_ml_provider.core.training.trainer import _Phases
phases = _Phases()
sum(i * i for i in range(200_000))
phases.mark("read")
block = bytearray(64 * 2**20)
block[::4096] = b"x" * len(block[::4096])
phases.mark("grow")
print(phases.summary(rounds=3, best=2))
"""


def test_phases_report_wall_cpu_and_the_peak_memory_so_far():
    out = subprocess.run([sys.executable, "-c", PHASES], capture_output=True, text=True, check=True)
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(line["wall"]) == ["read", "grow"]
    assert list(line["cpu"]) == ["before", "read", "grow"] and line["cpu"]["read"] > 0
    assert (line["rounds"], line["best"]) == (3, 2)
    peaks = line["peak_rss_mb"]
    assert list(peaks) == ["before", "read", "grow"]
    if sys.platform != "linux":
        pytest.skip("peak memory checked on Linux only")
    assert peaks["grow"] >= peaks["read"] + 60  # the 64 MB are counted in the phase that took them


# --- the contract's optional training costs: off means skipped, and the trees do not change ---------

RUN = dt.date(2026, 3, 31)


def _export(tmp_path: Path, spec) -> tuple[str, dt.date]:
    """Candidate rows with every model feature of ``spec`` for all its as-of dates; the label follows a feature."""
    rng = np.random.default_rng(11)
    train, valid = spec.training_dates(RUN)
    days, users, items = [*train, *valid], 40, 12
    n = len(days) * users * items
    cols: dict[str, object] = {
        "as_of_date": pa.array(np.repeat(np.array(days, dtype="datetime64[D]"), users * items), pa.date32()),
        "user_id": np.tile(np.repeat([f"u{u:03d}" for u in range(users)], items), len(days)),
        "item_id": np.tile([f"i{i:03d}" for i in range(items)], len(days) * users),
    }
    for f in spec.features:
        if f.type == "STRING":
            cols[f.name] = rng.choice(["a", "b", "c"], size=n)
        elif f.type == "INT64":
            cols[f.name] = rng.integers(0, 20, size=n)
        else:
            cols[f.name] = rng.normal(size=n)
    signal = np.asarray(cols["candidate_score"], dtype=np.float64) + rng.normal(scale=1.0, size=n)
    cols["label"] = (signal > 1.0).astype(np.int64)
    cols["seen_before"] = np.zeros(n, dtype=bool)
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(cols), path)
    return str(path), valid[0]


def _train(tmp_path: Path, spec, data: str, test_from: dt.date, name: str):
    return train(
        spec, data, str(tmp_path / name), name="t", version=name, validation_from=test_from, hooks=DEFAULT_HOOKS
    )


def _trees(model_dir: Path) -> str:
    text = (model_dir / "model.txt").read_text()
    return text[text.find("Tree=0") : text.find("end of trees")]


def test_lean_settings_train_the_same_trees_and_skip_what_they_switch_off(tmp_path, caplog):
    base = load_spec(PIPELINE)
    model = base.model.model_copy(update={"num_boost_round": 60, "early_stopping_rounds": 5, "params": {}})
    full_spec = base.model_copy(update={"model": model})
    data, test_from = _export(tmp_path, full_spec)
    with caplog.at_level(logging.INFO, logger="airflow_ml_provider.trainer"):
        full = _train(tmp_path, full_spec, data, test_from, "full")
    grown = json.loads(caplog.text.split("Trainer phases: ")[-1].splitlines()[0])["rounds"]
    assert full.best_iteration < 60 and grown == full.best_iteration + 5  # early stopping did stop
    assert full.data.early_stopping_rows > 0 and full.metrics["lift_ci"]["samples"] > 0

    lean_spec = full_spec.model_copy(
        update={
            "model": model.model_copy(update={"early_stopping_rounds": 0, "num_boost_round": full.best_iteration}),
            "evaluation": full_spec.evaluation.model_copy(update={"bootstrap_samples": 0}),
        }
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="airflow_ml_provider.trainer"):
        lean = _train(tmp_path, lean_spec, data, test_from, "lean")
    assert "early_stopping's ndcg" not in caplog.text  # no validation set scored during training
    assert _trees(tmp_path / "lean") == _trees(tmp_path / "full")
    assert lean.best_iteration == full.best_iteration
    assert lean.metrics["scopes"] == full.metrics["scopes"]
    # Switched off means not done: no early-stopping rows read, no bootstrap resample drawn.
    assert (lean.data.early_stopping_rows, lean.data.early_stopping_dates) == (0, None)
    assert lean.metrics["lift_ci"]["samples"] == 0 and lean.metrics["lift_ci"]["low"] is None


def test_early_stopping_rounds_zero_is_accepted_and_negative_is_not():
    base = load_spec(PIPELINE).model
    assert base.model_validate({**base.model_dump(), "early_stopping_rounds": 0}).early_stopping_rounds == 0
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        base.model_validate({**base.model_dump(), "early_stopping_rounds": -1})
