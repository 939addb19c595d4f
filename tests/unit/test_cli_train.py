"""`airflow-ml train` names its versions as the training DAG does."""

from __future__ import annotations

import datetime as dt
import re

from airflow_ml_provider.cli_models import cli_version
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
