"""
### recsys_drift: are today's features and scores still what the champion was trained on?

Runs each time `recsys_batch_inference` publishes the `recsys_recommendations` asset:

1. `drift_check` counts the day's `features` partition and the day's `recommendations.score`
   of the champion into the bins of the champion's reference profile (built at training),
   one SQL scan per table, in the warehouse. PSI, JS distance, L-infinity, null-rate change
   and the share of new categories are computed from the bins and written to the day's
   partition of `drift_results` (a rerun replaces it). The thresholds, monitored columns,
   segments and `fail_on` come from `drift:` in `dags/recsys/pipeline.yaml`.
2. `signal_drift` emits the `recsys_drift_detected` asset, which starts `recsys_training`,
   only when the verdict is drift (a critical feature drifted, or at least half of the
   columns did). Otherwise it is skipped, and a skipped task emits no asset event.

With `fail_on: drift` or `warn` the check task fails instead, so no retraining starts
until someone has looked: choose it when drift should page a human rather than retrain.

**Owners:** the `drift:` thresholds and critical features: data science. This DAG, the
operator and the `drift_results` / `drift_profiles` tables: ML platform engineering.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task
from recsys.assets import DRIFT_DETECTED, RECOMMENDATIONS

from airflow_ml_provider.operators.drift import DriftCheckOperator

PIPELINE = Path(__file__).parent / "recsys" / "pipeline.yaml"

with DAG(
    dag_id="recsys_drift",
    description="Feature and prediction drift against the champion's reference profile",
    doc_md=__doc__,
    schedule=[RECOMMENDATIONS],
    # No Airflow start_date (Airflow 3 allows none): tasks exist for any logical date, however old the
    # data, and every task refuses a date before pipeline.yaml's start_date with a message.
    catchup=False,
    max_active_runs=1,
    default_args={"pipeline": str(PIPELINE), "retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["ml", "recsys", "drift"],
):
    check = DriftCheckOperator(task_id="drift_check", model_version="champion")

    @task(outlets=[DRIFT_DETECTED], retries=0)
    def signal_drift(summary: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
        """Emit recsys_drift_detected, with what drifted, when the verdict is drift; skip otherwise."""
        from airflow.sdk.exceptions import AirflowSkipException

        if summary["verdict"] != "drift":
            raise AirflowSkipException(f"no drift on {summary['logical_date']}: the verdict is {summary['verdict']}")
        keys = ("logical_date", "model_version", "drifted", "drifted_share", "worst_psi")
        outlet_events[DRIFT_DETECTED].extra = {k: summary[k] for k in keys}
        return summary

    signal_drift(check.output)
