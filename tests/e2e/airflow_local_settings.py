"""Cluster policies of the e2e test Airflow (copied into ``$AIRFLOW_HOME/config``); test-only.

The reference DAGs are production-shaped: retries with minute-long delays, sensors poking
every few minutes, and cron schedules that would start a run for *today* as soon as a DAG
is unpaused. The e2e world lives in spring 2026, so the policies, driven by env:

- ``AML_E2E_SCHEDULE_END`` (ISO date): the DAG's ``end_date``, so unpausing a cron DAG
  creates no run for the machine's present; tests trigger or backfill the dates they mean.
- ``AML_E2E_RETRIES`` / ``AML_E2E_RETRY_DELAY_SECONDS``: every task's retries and delay,
  so an automatic retry after a kill happens within seconds.
- ``AML_E2E_POKE_SECONDS``: sensors' poke interval.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


def dag_policy(dag) -> None:
    end = os.environ.get("AML_E2E_SCHEDULE_END")
    if end:
        dag.end_date = datetime.fromisoformat(end).replace(tzinfo=UTC)


def task_policy(task) -> None:
    if os.environ.get("AML_E2E_RETRIES"):
        task.retries = int(os.environ["AML_E2E_RETRIES"])
    if os.environ.get("AML_E2E_RETRY_DELAY_SECONDS"):
        task.retry_delay = timedelta(seconds=float(os.environ["AML_E2E_RETRY_DELAY_SECONDS"]))
        task.retry_exponential_backoff = 0
    if os.environ.get("AML_E2E_POKE_SECONDS") and hasattr(task, "poke_interval"):
        task.poke_interval = float(os.environ["AML_E2E_POKE_SECONDS"])
