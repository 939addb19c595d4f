"""`airflow-ml train`: versions named as the training DAG names them, and output a person can read."""

from __future__ import annotations

import datetime as dt
import logging
import re

from airflow_ml_provider.cli_models import TrainerLines, _train_summary, cli_version, train_lines
from airflow_ml_provider.core.registry.promotion import Promotion
from airflow_ml_provider.core.training.job import model_version

RUN_DATE = dt.date(2026, 3, 31)


def test_cli_versions_follow_the_dags_scheme():
    version, run_id = cli_version(RUN_DATE, now=dt.datetime(2026, 12, 7, 11, 0, tzinfo=dt.UTC))
    assert re.fullmatch(r"20260331-[0-9a-f]{8}", version)
    assert version == model_version(RUN_DATE, run_id)  # the function the DAG's TrainModelOperator calls
    assert run_id == "cli__2026-12-07T11:00:00+00:00"  # the origin, kept in the run id, not the version


def test_each_cli_run_gets_its_own_version_and_smoke_runs_say_so():
    first, _ = cli_version(RUN_DATE, now=dt.datetime(2026, 12, 7, 11, 0, tzinfo=dt.UTC))
    second, _ = cli_version(RUN_DATE, now=dt.datetime(2026, 12, 7, 11, 0, 1, tzinfo=dt.UTC))
    smoke, smoke_run = cli_version(RUN_DATE, smoke=True, now=dt.datetime(2026, 12, 7, 11, 0, tzinfo=dt.UTC))
    assert len({first, second, smoke}) == 3
    assert smoke_run.startswith("smoke__") and smoke.startswith("20260331-")
    assert not any(v.endswith(("-cli", "-smoke")) for v in (first, second, smoke))


def _trained(**over):
    trained = {
        "model_name": "recsys",
        "version": "20260331-bbd132dd",
        "uri": "file:///tmp/a/recsys/20260331-bbd132dd/model",
        "k": 10,
        "scope": "all_active",
        "baseline_name": "candidate_order",
        "model": {"ndcg": 0.38684, "recall": 0.53181},
        "baseline": {"ndcg": 0.32903, "recall": 0.44841},
        "candidate_recall": 0.76923,
        "test_dates": ["2026-03-18", "2026-03-24"],
        "lift_ci": {"metric": "ndcg", "low": 0.1301, "high": 0.2267, "confidence": 0.95},
        **over,
    }
    return trained


def test_train_prints_a_readable_verdict_not_raw_metrics():
    trained = _trained()
    decision = Promotion("recsys", trained["version"], "promote", True, True, ["ndcg@10 ... +17.6% ..."], None)
    lines = train_lines({**_train_summary(trained, decision), "run_id": "cli__x"}, trained)
    assert lines[0] == (
        "recsys 20260331-bbd132dd promoted to champion: ndcg@10 0.3868 vs candidate order 0.3290 "
        "(+17.6%, 95% CI +13.0% to +22.7%), recall@10 0.5318, candidate recall 0.7692 "
        "(all_active, test 2026-03-18..2026-03-24)"
    )
    assert lines[1] == "  model: file:///tmp/a/recsys/20260331-bbd132dd/model"
    assert not any("{" in line for line in lines)


def test_a_rejected_candidate_says_why():
    trained = _trained()
    decision = Promotion("recsys", trained["version"], "reject", False, False, ["ndcg is below the champion"], None)
    lines = train_lines(_train_summary(trained, decision), trained)
    assert " rejected by the gate: " in lines[0]
    assert "  gate: ndcg is below the champion" in lines


def test_trainer_lines_lose_the_raw_json_and_the_repeated_timestamp():
    def record(line: str) -> logging.LogRecord:
        return logging.LogRecord("airflow_ml_provider.backends.local_trainer", 20, "", 0, "[trainer] %s", (line,), None)

    keep = TrainerLines()
    raw = record('{"model_dir": "file:///m", "metrics": {"k": 10}}')
    phases = record('2026-12-07 11:55:00,555 INFO Trainer phases: {"wall": {}}')
    metric = record("2026-12-07 11:55:00,498 INFO Test window 2026-03-18..2026-03-24, model: ndcg 0.49")
    warning = record("2026-12-07 11:55:00,498 WARNING few lists")
    assert not keep.filter(raw) and not keep.filter(phases)
    assert (
        keep.filter(metric) and metric.getMessage() == "[trainer] Test window 2026-03-18..2026-03-24, model: ndcg 0.49"
    )
    assert keep.filter(warning) and warning.getMessage() == "[trainer] WARNING few lists"
