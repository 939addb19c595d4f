"""A retried training TASK on the gcp runner reattaches to the Vertex AI job it submitted, through to registration.

tests/unit/operators/test_training_gcp.py checks that a second ``execute`` of the same run
reattaches. Here the whole life of a retried task is followed, as Airflow would run it: try 1
submits and dies (the worker is lost while deferred, or polling fails), try 2 (``try_number=2``,
a new operator instance) finds the job through the ``task_state_store`` or, when that is empty,
through the job's deterministic display name and version label, waits for it and registers the
model. The real provider hooks talk to the local Vertex AI and GCS endpoints (tests/fakes/);
``CreateCustomJob`` is received exactly once. Only the warehouse is stood in for (see the unit test).
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from airflow.sdk.exceptions import TaskDeferred
from google.api_core.exceptions import ServiceUnavailable

from airflow_ml_provider.backends import vertex
from airflow_ml_provider.backends.vertex import STATE_STORE_KEY
from airflow_ml_provider.core.registry.models import ModelRegistry
from tests.unit.backends.test_vertex import DictStore
from tests.unit.operators.test_training_gcp import (  # noqa: F401 (fixtures)
    RUN_DIR,
    RUN_ID,
    VERSION,
    Edge,
    FakeTI,
    context,
    edge,
    operator,
    trigger_events,
)


def _ti(try_number: int) -> FakeTI:
    ti = FakeTI(RUN_ID)
    ti.try_number = try_number  # type: ignore[attr-defined]
    return ti


def _try(cloud: Edge, try_number: int, store: DictStore | None, **kwargs: Any):
    """One try of the task: a new operator instance, rendered and executed as the task runner would."""
    op = operator(cloud, **kwargs)
    ctx = context(_ti(try_number), store)
    op.render_template_fields(ctx)
    return op, ctx


def _one_model(cloud: Edge) -> None:
    assert len(cloud.created()) == 1
    # The data the job reads (and the evaluation truth beside it) was exported once, never over it.
    assert sorted(uri.rsplit("/", 1)[-1] for _, _, uri in cloud.warehouse.exports) == ["data", "truth"]
    assert len(cloud.uploads()) == 1
    rows = cloud.warehouse.query("SELECT version, status FROM ml_models").to_pylist()
    assert rows == [{"version": VERSION, "status": "candidate"}]


@pytest.mark.parametrize("with_store", [True, False], ids=["task_state_store", "display-name-and-label"])
def test_deferred_task_lost_and_retried_reattaches_and_registers_once(edge, with_store):  # noqa: F811 (the fixture)
    store = DictStore() if with_store else None
    op1, ctx1 = _try(edge, 1, store, poll_interval=0.2)
    with pytest.raises(TaskDeferred) as first:
        op1.execute(ctx1)
    job_name = first.value.trigger.job_name
    assert edge.vertex.job(job_name).state == "JOB_STATE_PENDING"  # Vertex AI is still provisioning
    # The triggerer or worker is lost; Airflow runs try 2 of the same run.
    op2, ctx2 = _try(edge, 2, store, poll_interval=0.2)
    with pytest.raises(TaskDeferred) as second:
        op2.execute(ctx2)
    assert second.value.trigger.job_name == job_name
    assert second.value.kwargs == first.value.kwargs
    if store is not None:
        assert store == {STATE_STORE_KEY: job_name}

    if with_store:  # the job runs the real trainer, watched by try 2's trigger
        edge.vertex.release(job_name)
    else:  # the same, minus the trainer's seconds (it runs in the case above)
        edge.write_envelope()
        edge.vertex.set_state(job_name, "JOB_STATE_SUCCEEDED")
    (event,) = trigger_events(second.value.trigger)
    assert event["status"] == "success", edge.vertex.job(job_name).stderr()[-3000:]
    result = op2.execute_complete(ctx2, event, **second.value.kwargs)

    assert result["version"] == VERSION and json.dumps(result)
    _one_model(edge)
    assert ModelRegistry(edge.warehouse).get("recsys", VERSION).uri == f"{RUN_DIR}/model"


def test_polling_failure_then_retry_finds_the_finished_job_without_a_state_store(edge, monkeypatch):  # noqa: F811
    """Try 1 polls (not deferrable) and dies on a lasting API outage; the job finishes; try 2 registers it.

    One blip is retried within the try (tests/unit/backends/test_vertex.py); an outage longer than
    ``MAX_POLL_FAILURES`` polls ends the try, and Airflow's retry reattaches.
    """
    monkeypatch.setattr(vertex, "retry_delay", lambda failures, *a, **k: 0.0)
    edge.vertex.fail_next(
        "GetCustomJob", grpc.StatusCode.UNAVAILABLE, "the Vertex AI API is unavailable", times=vertex.MAX_POLL_FAILURES
    )
    op1, ctx1 = _try(edge, 1, None, deferrable=False, poll_interval=0)
    with pytest.raises(ServiceUnavailable):  # not an AirflowFailException: Airflow retries it
        op1.execute(ctx1)
    (job,) = edge.vertex.jobs.values()
    job_name = job.job.name
    edge.write_envelope()
    edge.vertex.set_state(job_name, "JOB_STATE_SUCCEEDED")

    op2, ctx2 = _try(edge, 2, None, deferrable=False, poll_interval=0)
    result = op2.execute(ctx2)

    assert result["version"] == VERSION
    assert result["vertex_model"].endswith("models/recsys@1")
    _one_model(edge)
    # Try 2 found the job by its display name and version label, as the request a real API would get.
    assert edge.vertex.calls("ListCustomJobs")[-1].filter == f'display_name="recsys-{VERSION}"'
    assert vertex.VERSION_LABEL in edge.vertex.job(job_name).job.labels
