"""
### recsys_batch_inference: daily top-k recommendations per user

Every day, once the day's `features` partition exists and a champion model is registered:

1. `features_ready` waits for the `features` partition of the logical date.
2. `champion_ready` waits for a `champion` in `ml_models` (the first run waits for the
   first promoted model; it never falls back to an implicit "latest").
3. `recommend` streams the candidates in bounded Arrow batches, checks their schema
   against the model's, scores them with the champion's LightGBM model and replaces the
   day's `recommendations` partition atomically. Every attempt is logged in
   `recommendation_runs`. It emits the `recsys_recommendations` asset, which starts
   `recsys_drift`.

Analysts read `recommendations` / `recommendations_latest` (see `docs/tables.md` and the
starter queries in `sql/analytics/`).

**Owners:** ML platform engineering (this DAG, the operator, the tables). The candidate
SQL and the model: data science.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG
from recsys.assets import RECOMMENDATIONS

from airflow_ml_provider.operators.inference import BatchRecommendOperator
from airflow_ml_provider.sensors.warehouse import ChampionModelSensor, WarehousePartitionSensor

PIPELINE = Path(__file__).parent / "recsys" / "pipeline.yaml"

with DAG(
    dag_id="recsys_batch_inference",
    description="Daily top-k recommendations per user",
    doc_md=__doc__,
    schedule="0 6 * * *",
    # Every task refuses a logical date before pipeline.yaml's start_date (the DAG itself starts early
    # so that `airflow dags test` of such a date fails with that message instead of running nothing).
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"pipeline": str(PIPELINE), "retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["ml", "recsys", "inference"],
):
    features_ready = WarehousePartitionSensor(
        task_id="features_ready",
        table="features",
        producer_dag="recsys_features",
        poke_interval=300,
        timeout=6 * 3600,
        mode="reschedule",
    )
    champion_ready = ChampionModelSensor(
        task_id="champion_ready", model_name="recsys", poke_interval=600, timeout=12 * 3600, mode="reschedule"
    )
    recommend = BatchRecommendOperator(task_id="recommend", model_version="champion", outlets=[RECOMMENDATIONS])

    [features_ready, champion_ready] >> recommend
