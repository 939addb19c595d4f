"""
### recsys_batch_inference: daily top-k recommendations per user

Every day, once the day's `features` partition exists and a champion model is registered:

1. `features_ready` waits for the `features` partition of the logical date.
2. `champion_ready` waits for a `champion` in `ml_models` (the first run waits for the
   first promoted model; it never falls back to an implicit "latest").
3. `plan_shards` pins the champion's version for the run and splits the day's users into
   `inference.shards` shards (from the contract, 1 by default; the Variable
   `recsys_inference_shards` overrides it) by a stable hash of the user id, computed in the
   warehouse.
4. `score_shard` (one mapped task per shard, in parallel on the workers) streams its users'
   candidates in bounded Arrow batches, checks their schema against the model's, scores
   them and stages its top-k lists; a retried shard replaces only its own staged rows.
5. `publish` checks that every shard is staged exactly once and replaces the day's
   `recommendations` partition with them in one atomic write: readers see yesterday's
   lists or today's, never a mix of shards. Every attempt is logged in
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

from airflow.sdk import DAG
from recsys.assets import RECOMMENDATIONS

from airflow_ml_provider.operators.inference import (
    PlanRecommendShardsOperator,
    PublishRecommendationsOperator,
    ScoreRecommendShardOperator,
)
from airflow_ml_provider.sensors.warehouse import ChampionModelSensor, WarehousePartitionSensor

PIPELINE = Path(__file__).parent / "recsys" / "pipeline.yaml"

with DAG(
    dag_id="recsys_batch_inference",
    description="Daily top-k recommendations per user",
    doc_md=__doc__,
    schedule="0 6 * * *",
    # No Airflow start_date (Airflow 3 allows none): tasks exist for any logical date, however old the
    # data, and every task refuses a date before pipeline.yaml's start_date with a message.
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
    # The shard count is the contract's inference.shards; an Airflow Variable can override it
    # for one deployment (e.g. more workers) without a contract change.
    plan = PlanRecommendShardsOperator(
        task_id="plan_shards", model_version="champion", shards="{{ var.value.get('recsys_inference_shards', '') }}"
    )
    shards = ScoreRecommendShardOperator.partial(task_id="score_shard").expand_kwargs(plan.output)
    publish = PublishRecommendationsOperator(
        task_id="publish", plan=plan.output, shard_results=shards.output, outlets=[RECOMMENDATIONS]
    )

    [features_ready, champion_ready] >> plan >> shards >> publish
