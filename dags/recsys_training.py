"""
### recsys_training: labels, training, evaluation gate, promotion

Weekly (Monday 04:00 UTC), or as soon as `recsys_drift` reports drift:

1. `training_window` reads the time windows from `dags/recsys/pipeline.yaml` and lists
   the as-of dates to train and validate on (a time split, never random).
2. `labels` (one mapped task per date) writes the label partitions; each looks only at the
   `label_horizon_days` after its date.
3. `train` exports features + labels to Parquet and runs the trainer: a local subprocess on
   the embedded default, a Vertex AI CustomJob on GCP (deferrable; a retry reattaches to
   the same job). It registers a `candidate` in `ml_models`, scored against the popularity
   baseline and the current champion on the same validation rows.
4. `evaluate_and_promote` applies the contract's gate. A pass moves the `champion` alias and
   emits the `recsys_model` asset; a fail marks the candidate `rejected` and the task is
   skipped with the reasons.

**Owners:** `sql/recsys/labels.sql`, `dags/recsys/model.py` and the feature list: data
science. This DAG, the operators and the runners: ML platform engineering.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task
from recsys.assets import DRIFT_DETECTED, MODEL

from airflow_ml_provider.operators.evaluation import EvaluateAndPromoteOperator
from airflow_ml_provider.operators.features import FeatureExtractOperator
from airflow_ml_provider.operators.training import TrainModelOperator

PIPELINE = Path(__file__).parent / "recsys" / "pipeline.yaml"
SQL_DIR = os.environ.get("AIRFLOW_ML_SQL_DIR", str(Path(__file__).parent.parent / "sql"))

with DAG(
    dag_id="recsys_training",
    description="Train, gate and promote the recommender",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 4 * * 1", timezone="UTC"), assets=(DRIFT_DETECTED,)),
    # No Airflow start_date (Airflow 3 allows none): tasks exist for any logical date, however old the
    # data, and every task refuses a date before pipeline.yaml's start_date with a message.
    catchup=False,
    max_active_runs=1,
    template_searchpath=[SQL_DIR],
    default_args={"pipeline": str(PIPELINE), "retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["ml", "recsys", "training"],
):

    @task
    def training_window(contract: str, ds: str | None = None) -> list[str]:
        """As-of dates (training + validation) whose labels the trainer needs."""
        import datetime as dt

        from airflow_ml_provider.core.contract.spec import load_spec

        spec = load_spec(contract)
        train, valid = spec.training_dates(dt.date.fromisoformat(str(ds)))
        return [d.isoformat() for d in [*train, *valid]]

    window = training_window(str(PIPELINE))
    labels = FeatureExtractOperator.partial(task_id="labels", table="labels", max_active_tis_per_dag=1).expand(
        partition_date=window
    )
    train = TrainModelOperator(task_id="train")
    promote = EvaluateAndPromoteOperator(
        task_id="evaluate_and_promote",
        version="{{ ti.xcom_pull(task_ids='train')['version'] }}",
        outlets=[MODEL],
    )

    labels >> train >> promote
