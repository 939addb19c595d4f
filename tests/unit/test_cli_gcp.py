"""``airflow-ml train`` and ``models promote`` with a gcp ``--conn-id``: the DAG's training and promotion path.

The real Vertex AI hooks and clients talk to the local Vertex AI endpoint, artifacts go to the
local GCS; the warehouse is the one stand-in of tests/unit/operators/test_training_gcp.py (a
DuckDB whose EXPORT DATA writes Parquet shards to the local GCS). The CustomJob's process is
the real trainer entrypoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_ml_provider.cli import main
from airflow_ml_provider.core.registry.models import ModelRegistry
from tests.unit.operators import test_training_gcp
from tests.unit.operators.test_training_gcp import DS, Edge

edge = test_training_gcp.edge  # the fixture: the local Vertex AI and GCS, the warehouse stand-in

ROOT = "gs://my-bucket/airflow-ml/recsys"  # the connection's staging_bucket + the model name


def _train(edge: Edge, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict, str]:
    """Exit code, the JSON summary (on success) and stderr of ``airflow-ml train`` on the gcp connection."""
    code = main(
        [
            *("train", "--conn-id", "ml_platform_default", "--pipeline", str(edge.pipeline), "--date", DS),
            *("--poll-interval", "0.2", "--json", *extra),
        ]
    )
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def test_train_on_gcp_exports_to_the_connections_gcs_root_and_trains_on_vertex(edge, capsys):
    edge.vertex.run_jobs = True  # the endpoint runs the job's container command: the trainer
    code, summary, _ = _train(edge, capsys, "--no-promote", "--git-sha", "abc123")

    assert code == 0
    version = summary["version"]
    run_dir = f"{ROOT}/{version}"
    assert [uri for _, _, uri in edge.warehouse.exports] == [f"{run_dir}/data", f"{run_dir}/truth"]
    (job,) = edge.created()
    args = list(job.custom_job.job_spec.worker_pool_specs[0].container_spec.args)
    assert args[args.index("--pipeline") + 1] == f"{run_dir}/inputs/pipeline.yaml"  # staged beside the run
    assert args[args.index("--hooks") + 1] == f"{run_dir}/inputs/model.py"
    assert edge.gcs.read_text(f"{run_dir}/model/model.txt").startswith("tree\n")
    record = ModelRegistry(edge.warehouse).get("recsys", version)
    assert (record.status, record.uri, record.git_sha) == ("candidate", f"{run_dir}/model", "abc123")
    assert summary["vertex_model"].endswith("/models/recsys@1") and len(edge.uploads()) == 1
    assert summary["promoted"] is False and edge.vertex.aliases("recsys") == {"1": ["default", f"v-{version}"]}

    # By hand, as an engineer would after looking at it: the Vertex AI alias follows ml_models.
    assert (
        main(["models", "promote", version, "--conn-id", "ml_platform_default", "--pipeline", str(edge.pipeline)]) == 0
    )
    assert "Vertex AI alias champion" in capsys.readouterr().out
    assert edge.vertex.aliases("recsys") == {"1": ["champion", "default", f"v-{version}"]}
    champion = ModelRegistry(edge.warehouse).champion("recsys")
    assert (champion.version, champion.blessed_by) == (version, "airflow-ml models promote")


def test_train_on_gcp_checks_model_py_before_any_export_or_job(edge, capsys, tmp_path: Path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "pipeline.yaml").write_text(edge.pipeline.read_text())
    (folder / "model.py").write_text("def transform(frame):\n    return frame\n\ndef fit(x):\n    import os\n")
    edge.pipeline = folder / "pipeline.yaml"

    code, _, err = _train(edge, capsys)

    assert code == 1
    assert "model.py" in err
    assert edge.warehouse.exports == [] and edge.created() == []


def test_backend_flag_is_checked_against_the_connection(edge, capsys):
    code, _, err = _train(edge, capsys, "--backend", "local")
    assert code == 1
    assert "--backend local trains on the local backend, but connection 'ml_platform_default' is gcp" in err
    assert edge.warehouse.exports == []
