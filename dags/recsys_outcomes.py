"""
### recsys_outcomes: what the served lists actually did, beside the global popularity list

Every day, for the newest served date whose label horizon has passed (the run's date minus
(`label_horizon_days` + 1); with a 7-day horizon the run of April 9 judges April 1):

1. `served` waits for that date's `recommendations` partition (written by `recsys_batch_inference`).
2. `outcomes` puts each served list beside everything its user viewed, carted or bought in the
   horizon (recommended or not; `sql/recsys/outcomes.sql`), and the same day's global popularity
   list beside them (the gate's definition: `docs/evaluation.md`), and replaces the date's partition of
   `recommendation_outcomes`: lists, active users, hits, hit rate, precision/recall/ndcg@k,
   purchases and revenue from recommended items, coverage; per model version. The metrics are
   the offline evaluation's own functions, so realized and offline ndcg@k mean the same thing.

A date whose horizon has not passed (by the clock, or in the loaded events) is refused with the
day it becomes ready, and nothing is written. Backfill: `airflow backfill create --dag-id
recsys_outcomes --from-date A --to-date B` judges the served dates A-8..B-8 (with a 7-day horizon); to judge one served
date, trigger with the param `prediction_date`. A rerun replaces the date's rows.

**Owners:** ML platform engineering (this DAG, the operator, the table). The relevance grades in
`outcomes.sql` follow `labels.sql`: data science.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param

from airflow_ml_provider.operators.outcomes import OutcomeEvaluationOperator
from airflow_ml_provider.sensors.warehouse import WarehousePartitionSensor

PIPELINE = Path(__file__).parent / "recsys" / "pipeline.yaml"
SQL_DIR = os.environ.get("AIRFLOW_ML_SQL_DIR", str(Path(__file__).parent.parent / "sql"))


def served_date(ds: str) -> str:
    """The newest served date whose horizon has passed by the run's date ``ds`` (the contract's horizon).

    A DAG macro: the contract is read when a task renders, never at parse time.
    """
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.evaluation.horizon import newest_ready_date
    from airflow_ml_provider.operators.base import parse_date

    horizon = load_spec(PIPELINE).windows.label_horizon_days
    return newest_ready_date(parse_date(ds, "ds"), horizon).isoformat()


#: The served date a run judges: the `prediction_date` param, else the run's date minus the contract's
#: label_horizon_days + 1 (the sensor and the operator wait on and judge the same date; the operator
#: refuses a date whose horizon has not passed either way).
SERVED = "{{ params.prediction_date or served_date(ds) }}"

with DAG(
    dag_id="recsys_outcomes",
    description="Realized outcomes of served recommendations vs the global popularity list",
    doc_md=__doc__,
    schedule="0 7 * * *",
    start_date=pendulum.datetime(2026, 3, 1, tz="UTC"),
    catchup=False,
    template_searchpath=[SQL_DIR],
    user_defined_macros={"served_date": served_date},
    params={
        "prediction_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="served date to judge (default: run date - label_horizon_days - 1)",
        )
    },
    default_args={"pipeline": str(PIPELINE), "retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["ml", "recsys", "outcomes"],
):
    served = WarehousePartitionSensor(
        task_id="served",
        table="recommendations",
        partition_column="prediction_date",
        partition_date=SERVED,
        producer_dag="recsys_batch_inference",
        poke_interval=600,
        timeout=6 * 3600,
        mode="reschedule",
    )
    outcomes = OutcomeEvaluationOperator(task_id="outcomes", prediction_date=SERVED)

    served >> outcomes
