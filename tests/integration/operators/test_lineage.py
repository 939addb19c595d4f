"""OpenLineage datasets of the operators, on a real small DuckDB world and through the provider's extractor.

Each operator runs for real (features, training with the subprocess trainer, batch inference,
drift, outcomes); then the OpenLineage provider's ``ExtractorManager`` extracts its lineage the
way the provider's listener does after a task succeeds, and the test reads namespaces and names.
One test also sends the extracted lineage through the provider's adapter to a file transport
and reads the emitted COMPLETE event.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from airflow.sdk import DAG

from airflow_ml_provider.core.contract.config import PlatformConfig
from airflow_ml_provider.operators.lineage import artifact_name, table_name
from tests.integration.reliability.conftest import DAY, MODEL, World, build_world, copy_world
from tests.paths import SQL_DIR

pytest.importorskip("airflow.providers.openlineage", reason="needs the [openlineage] extra")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("lineage_world"))


@pytest.fixture
def world(built: World, tmp_path: Path, monkeypatch) -> World:
    w = copy_world(built, tmp_path / "case")
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", w.connection())
    return w


def extracted(op, run_id: str = "manual__lineage"):
    """The provider's ``OperatorLineage`` for ``op`` once it succeeded, as its listener gets it."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.utils.state import TaskInstanceState

    ti = types.SimpleNamespace(dag_id=op.dag_id, task_id=op.task_id, run_id=run_id, try_number=1)
    return ExtractorManager().extract_metadata(
        dagrun=types.SimpleNamespace(run_id=run_id),
        task=op,
        task_instance_state=TaskInstanceState.SUCCESS,
        task_instance=ti,
    )


def extract(op) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(inputs, outputs) of ``op``'s lineage as (namespace, name)."""
    got = extracted(op)
    return [(d.namespace, d.name) for d in got.inputs], [(d.namespace, d.name) for d in got.outputs]


def run(op, run_id: str = "manual__lineage", render: bool = False):
    ti = types.SimpleNamespace(dag_id=op.dag_id, task_id=op.task_id, run_id=run_id, try_number=1)
    context = {"ds": DAY.isoformat(), "logical_date": None, "ti": ti}
    if render:
        op.render_template_fields(context)
    return op.execute(context)


def duckdb(w: World, *tables: str) -> list[tuple[str, str]]:
    return [(f"duckdb://{w.warehouse.resolve().as_posix()}", f"warehouse.main.{t}") for t in tables]


def test_feature_step_reads_what_its_sql_names_and_writes_its_table(world):
    from airflow_ml_provider.operators.features import FeatureExtractOperator

    with DAG("lineage_features", schedule=None, template_searchpath=[str(SQL_DIR)]):
        op = FeatureExtractOperator(
            task_id="features", table="user_features", pipeline=str(world.pipeline), partition_date=str(DAY)
        )
    run(op, render=True)
    inputs, outputs = extract(op)
    assert sorted(inputs) == sorted(duckdb(world, "events", "items"))
    assert outputs == duckdb(world, "user_features")


def test_training_reads_features_and_labels_and_writes_the_registry_and_the_model_folder(world):
    from airflow_ml_provider.operators.training import TrainModelOperator

    with DAG("lineage_training", schedule=None):
        op = TrainModelOperator(task_id="train", pipeline=str(world.pipeline), run_date=str(DAY))
    out = run(op, run_id="scheduled__lineage")
    inputs, outputs = extract(op)
    assert inputs == duckdb(world, "features", "labels")
    model_dir = out["uri"].removeprefix("file://")
    assert model_dir.startswith(world.artifacts.as_posix())
    assert outputs == [*duckdb(world, "ml_models"), ("file", model_dir)]


def test_batch_inference_reads_features_and_the_champion_and_writes_recommendations(world):
    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    with DAG("lineage_inference", schedule=None):
        op = BatchRecommendOperator(task_id="recommend", pipeline=str(world.pipeline), prediction_date=str(DAY))
    run(op)
    inputs, outputs = extract(op)
    assert inputs == [*duckdb(world, "features", "ml_models"), ("file", world.model_dir.as_posix())]
    assert outputs == duckdb(world, "recommendations", "recommendation_runs")


def test_the_provider_emits_the_datasets_in_its_complete_event(world, tmp_path):
    """The provider's adapter sends what the extractor found; its file transport keeps the JSON event."""
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    from airflow_ml_provider.operators.inference import BatchRecommendOperator

    with DAG("lineage_emit", schedule=None):
        op = BatchRecommendOperator(task_id="recommend", pipeline=str(world.pipeline), prediction_date=str(DAY))
    run(op)
    events = tmp_path / "events.jsonl"
    client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(events), append=True)))
    OpenLineageAdapter(client=client).complete_task(
        run_id="01890000-0000-7000-8000-000000000000",
        job_name="lineage_emit.recommend",
        end_time="2026-03-31T03:00:00+00:00",
        task=extracted(op),
        nominal_start_time=None,
        nominal_end_time=None,
        owners=None,
        tags=None,
        job_description=None,
    )
    (event,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert event["eventType"] == "COMPLETE"
    outputs = [(d["namespace"], d["name"]) for d in event["outputs"]]
    assert outputs == duckdb(world, "recommendations", "recommendation_runs")
    assert ("file", world.model_dir.as_posix()) in [(d["namespace"], d["name"]) for d in event["inputs"]]


def test_drift_reads_features_lists_and_profile_and_writes_drift_results(world):
    from airflow_ml_provider.operators.drift import DriftCheckOperator

    with DAG("lineage_drift", schedule=None):
        op = DriftCheckOperator(task_id="drift", pipeline=str(world.pipeline), partition_date=str(DAY), fail_on="never")
    run(op)
    inputs, outputs = extract(op)
    tables = duckdb(world, "features", "recommendations", "ml_models", "drift_profiles")
    assert inputs == [*tables, ("file", world.model_dir.as_posix())]
    assert outputs == duckdb(world, "drift_results")


def test_outcomes_read_the_served_lists_and_the_sources_and_write_outcomes(world):
    from airflow_ml_provider.operators.inference import BatchRecommendOperator
    from airflow_ml_provider.operators.outcomes import OutcomeEvaluationOperator

    served = (DAY - dt.timedelta(days=8)).isoformat()  # its 7-day horizon ends inside the world
    with DAG("lineage_outcomes", schedule=None, template_searchpath=[str(SQL_DIR)]):
        rec = BatchRecommendOperator(task_id="recommend", pipeline=str(world.pipeline), prediction_date=served)
        op = OutcomeEvaluationOperator(
            task_id="outcomes", pipeline=str(world.pipeline), prediction_date=served, run_date=str(DAY)
        )
    run(rec)
    run(op)
    inputs, outputs = extract(op)
    assert sorted(inputs) == sorted(duckdb(world, "recommendations", "events", "items"))
    assert outputs == duckdb(world, "recommendation_outcomes")


def test_a_task_that_wrote_nothing_reports_no_outputs_and_lineage_never_fails_it(world, monkeypatch):
    from airflow_ml_provider.operators.features import FeatureExtractOperator

    with DAG("lineage_kept", schedule=None, template_searchpath=[str(SQL_DIR)]):
        op = FeatureExtractOperator(
            task_id="kept",
            table="user_features",
            pipeline=str(world.pipeline),
            partition_date=str(DAY),
            steps="features",
        )
    run(op, render=True)
    assert extract(op)[1] == []
    # A broken connection at extraction time: a warning, no datasets, no exception.
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": {"x": 1}}))
    op.__dict__.pop("hook", None)
    assert op.get_openlineage_facets_on_complete(None) is None


def test_gcp_names_follow_the_openlineage_spec():
    config = PlatformConfig(backend="gcp", project="acme-ml", dataset="recsys", staging_bucket="gs://acme-staging")
    assert table_name(config, "recommendations") == ("bigquery", "acme-ml.recsys.recommendations")
    uri = f"{config.artifacts_uri}/{MODEL}/20260331/model"
    assert artifact_name(uri) == ("gs://acme-staging", f"airflow-ml/{MODEL}/20260331/model")
    assert artifact_name("file:///srv/ml/artifacts/m") == ("file", "/srv/ml/artifacts/m")
    assert artifact_name("artifacts/m", home=Path("/srv/ml")) == ("file", "/srv/ml/artifacts/m")


def test_a_dataset_schema_is_the_duckdb_schema(tmp_path):
    config = PlatformConfig(warehouse_path=str(tmp_path / "wh.duckdb"), dataset="recsys")
    assert table_name(config, "features") == (
        f"duckdb://{tmp_path.resolve().as_posix()}/wh.duckdb",
        "wh.recsys.features",
    )


def test_importing_the_operators_does_not_import_openlineage():
    """DAG files import the operators: the OpenLineage provider must load only when it asks for lineage."""
    code = (
        "import sys\n"
        "import airflow_ml_provider.operators.features, airflow_ml_provider.operators.training\n"
        "import airflow_ml_provider.operators.inference, airflow_ml_provider.operators.drift\n"
        "import airflow_ml_provider.operators.outcomes, airflow_ml_provider.operators.checks\n"
        "import airflow_ml_provider.operators.evaluation\n"
        # Airflow's ProvidersManager reads every installed provider's get_provider_info; nothing else may load.
        "print(sorted(m for m in sys.modules if 'openlineage' in m and not m.endswith('.get_provider_info')\n"
        "             and m != 'airflow.providers.openlineage'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
