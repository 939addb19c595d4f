"""
### recsys_features: daily feature partitions for the recommender

Builds one `as_of_date` partition per table for the run's logical date, from the SQL
steps named in `dags/recsys/pipeline.yaml`:

| task | table | reads |
|---|---|---|
| `source_checks` | (none: a gate) | events |
| `user_features` | `user_features` | events, items |
| `item_features` | `item_features` | events, items |
| `candidates` | `candidates` | events, items |
| `features` | `features` (the model input) | the three above, events |
| `data_checks` | `data_checks` | events, the four above |

Every write replaces its partition atomically, so reruns and backfills never duplicate
rows. The data checks of the contract's `checks:` section guard the date: `source_checks`
stops it before any step writes when the events are stale, duplicated or in the future, or
when any step's new rows (computed with the steps they read, not yet written) fail a check
or the SQL fails, so a date's steps are all-or-nothing; each step checks its own new
rows (not_null, unique, accepted_values, range) again before publishing them;
`data_checks` records every verdict of the date in `data_checks`. The `features` task
emits the `recsys_features` asset that training and batch inference wait for.

Trigger it with the `steps` param (e.g. `user_features,features`) to rebuild only those steps
and the steps that `ref()` them after changing their SQL or a source column: the other tasks
keep their partitions, and a rebuilt step reads their published rows, so the tables end up as
a full rebuild would write them.

**Owners:** SQL and the contract: data science (`sql/recsys/`, `pipeline.yaml`).
This DAG: ML platform engineering. Backend: the `ml_platform_default` connection
(none means the embedded DuckDB warehouse).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from recsys.assets import FEATURES

from airflow_ml_provider.operators.checks import DataCheckOperator
from airflow_ml_provider.operators.features import FeatureExtractOperator

PIPELINE = Path(__file__).parent / "recsys" / "pipeline.yaml"
SQL_DIR = os.environ.get("AIRFLOW_ML_SQL_DIR", str(Path(__file__).parent.parent / "sql"))

with DAG(
    dag_id="recsys_features",
    description="Daily feature partitions for the recommender",
    doc_md=__doc__,
    schedule="@daily",
    # No Airflow start_date (Airflow 3 allows none): Airflow creates the tasks for any logical date,
    # however old the data, and every task refuses a date before pipeline.yaml's start_date with a
    # message (a DAG start_date after the date would create no task and report success).
    catchup=False,
    template_searchpath=[SQL_DIR],
    default_args={"pipeline": str(PIPELINE), "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "steps": Param(
            "",
            type="string",
            description="Rebuild only these step tables (comma-separated, e.g. user_features,features) and the "
            "steps that ref() them; the others keep their partitions. Empty: every step.",
        ),
        "force_replace": Param(
            False,
            type="boolean",
            description="Replace the date's partitions even from a partial event history or with far fewer users "
            "than they hold (the checks refuse it otherwise).",
        ),
    },
    tags=["ml", "recsys", "features"],
):
    # The events, then every step's new rows computed and checked before any step writes:
    # a failure anywhere leaves every table of the date as it was (all-or-nothing).
    force = "{{ params.force_replace }}"
    source_checks = DataCheckOperator(task_id="source_checks", scope="preflight", record=False, force_replace=force)
    # With the `steps` param, a step neither named nor reading a named step keeps its partition.
    steps = "{{ params.steps }}"
    user_features = FeatureExtractOperator(
        task_id="user_features", table="user_features", steps=steps, force_replace=force
    )
    item_features = FeatureExtractOperator(
        task_id="item_features", table="item_features", steps=steps, force_replace=force
    )
    candidates = FeatureExtractOperator(task_id="candidates", table="candidates", steps=steps, force_replace=force)
    features = FeatureExtractOperator(
        task_id="features", table="features", steps=steps, force_replace=force, outlets=[FEATURES]
    )

    data_checks = DataCheckOperator(task_id="data_checks")

    source_checks >> [user_features, item_features, candidates] >> features >> data_checks
