"""Operator extra links: the BigQuery table (gcp only), the model page (both backends), registration."""

from __future__ import annotations

import importlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.sdk import DAG, BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

from airflow_ml_provider.get_provider_info import get_provider_info
from airflow_ml_provider.links.bigquery import BigQueryTableLink, bigquery_table_url
from airflow_ml_provider.links.ml_platform import ModelPageLink, model_of, model_page_url
from airflow_ml_provider.links.vertex_ai import VertexTrainingJobLink
from airflow_ml_provider.operators.drift import DriftCheckOperator
from airflow_ml_provider.operators.evaluation import EvaluateAndPromoteOperator
from airflow_ml_provider.operators.features import FeatureExtractOperator
from airflow_ml_provider.operators.inference import BatchRecommendOperator
from airflow_ml_provider.operators.training import TrainModelOperator

GCP = {"conn_type": "ml_platform", "extra": {"backend": "gcp", "project": "my-proj", "dataset": "recsys"}}
TI_KEY = object()  # the links under test never look inside it; XCom.get_value is patched where read


def operators() -> dict[str, object]:
    with DAG("links_test", schedule=None):
        return {
            "features": FeatureExtractOperator(task_id="features", table="user_features", sql="SELECT 1"),
            "train": TrainModelOperator(task_id="train"),
            "evaluate": EvaluateAndPromoteOperator(task_id="evaluate", version="v7", model_name="recsys"),
            "recommend": BatchRecommendOperator(task_id="recommend"),
            "drift": DriftCheckOperator(task_id="drift"),
        }


@pytest.fixture
def gcp_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps(GCP))


@pytest.fixture
def returned(monkeypatch):
    """Set what the task 'returned' (its return_value XCom) for ModelPageLink to read."""
    values: dict[str, object] = {}

    def get_value(*, key, ti_key, **_):
        assert key == "return_value"
        return values.get("value")

    monkeypatch.setattr(XCom, "get_value", staticmethod(get_value))
    return values


# --- BigQuery table ----------------------------------------------------------------------


def test_bigquery_url_names_project_dataset_and_table():
    url = bigquery_table_url("my-proj", "recsys", "recommendations")
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "console.cloud.google.com" and parts.path == "/bigquery"
    query = parse_qs(parts.query)
    assert query["project"] == ["my-proj"] and query["d"] == ["recsys"] and query["t"] == ["recommendations"]


@pytest.mark.parametrize(
    ("task", "table"), [("features", "user_features"), ("recommend", "recommendations"), ("drift", "drift_results")]
)
def test_bigquery_link_points_at_the_table_the_task_writes(gcp_connection, task, table):
    op = operators()[task]
    (link,) = [lk for lk in op.operator_extra_links if isinstance(lk, BigQueryTableLink)]
    assert link.get_link(op, ti_key=TI_KEY) == bigquery_table_url("my-proj", "recsys", table)


@pytest.mark.parametrize("task", ["features", "recommend", "drift"])
def test_bigquery_link_is_empty_on_the_embedded_default(monkeypatch, task):
    monkeypatch.delenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", raising=False)
    op = operators()[task]
    (link,) = [lk for lk in op.operator_extra_links if isinstance(lk, BigQueryTableLink)]
    assert link.get_link(op, ti_key=TI_KEY) == ""


def test_a_broken_connection_gives_no_link_and_no_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": "{"}))
    op = operators()["recommend"]
    assert BigQueryTableLink("recommendations").get_link(op, ti_key=TI_KEY) == ""


# --- model page --------------------------------------------------------------------------


def test_model_page_url_is_relative_without_a_base_url_and_anchored_to_the_version():
    assert model_page_url("recsys", "20260331-ab12") == "/ml/models#recsys-20260331-ab12"
    assert (
        model_page_url("recsys", "v1", "https://airflow.example.com/")
        == "https://airflow.example.com/ml/models#recsys-v1"
    )
    assert model_page_url("a b", "v/1") == "/ml/models#a%20b-v%2F1"


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"model_name": "recsys", "version": "v2", "uri": "file:///x"}, ("recsys", "v2")),  # train / evaluate
        ({"prediction_date": "2026-03-31", "model_name": "recsys", "model_version": "v3"}, ("recsys", "v3")),  # infer
        ({"verdict": "ok", "model_name": "recsys", "model_version": "v4"}, ("recsys", "v4")),  # drift
        (None, None),
        ({"model_name": "recsys"}, None),
        ("v2", None),
    ],
)
def test_model_of_reads_every_operators_return_value(result, expected):
    assert model_of(result) == expected


def test_model_of_falls_back_to_a_pinned_version_but_not_to_the_champion_alias():
    ops = operators()
    assert model_of(None, ops["evaluate"]) == ("recsys", "v7")  # a rejected candidate returns nothing
    assert model_of(None, ops["recommend"]) is None  # model_version="champion": unknown until it ran


@pytest.mark.parametrize("task", ["train", "evaluate", "recommend", "drift"])
def test_model_page_link_on_every_model_operator(returned, monkeypatch, task):
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    op = operators()[task]
    (link,) = [lk for lk in op.operator_extra_links if isinstance(lk, ModelPageLink)]
    returned["value"] = {"model_name": "recsys", "version": "v9", "model_version": "v9"}
    assert link.get_link(op, ti_key=TI_KEY) == "/ml/models#recsys-v9"


def test_model_page_link_uses_the_api_base_url(returned, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    returned["value"] = {"model_name": "recsys", "model_version": "v9"}
    op = operators()["recommend"]
    assert ModelPageLink().get_link(op, ti_key=TI_KEY) == "https://airflow.example.com/ml/models#recsys-v9"


def test_model_page_link_never_raises(monkeypatch):
    def boom(**_):
        raise RuntimeError("no supervisor")

    monkeypatch.setattr(XCom, "get_value", staticmethod(boom))
    assert ModelPageLink().get_link(operators()["train"], ti_key=TI_KEY) == ""


# --- registration ------------------------------------------------------------------------


def test_operators_offer_the_links_the_issue_asks_for():
    names = {task: sorted(lk.name for lk in op.operator_extra_links) for task, op in operators().items()}
    assert names == {
        "features": ["BigQuery table"],
        "train": ["Model page", "Vertex AI Training Job"],
        "evaluate": ["Model page"],
        "recommend": ["BigQuery table", "Model page"],
        "drift": ["BigQuery table", "Model page"],
    }
    assert any(isinstance(lk, VertexTrainingJobLink) for lk in operators()["train"].operator_extra_links)


def test_every_link_class_used_by_an_operator_is_declared_in_provider_info():
    declared = set(get_provider_info()["extra-links"])
    for path in declared:
        module, _, cls = path.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), BaseOperatorLink)
    used = {
        f"{type(lk).__module__}.{type(lk).__name__}" for op in operators().values() for lk in op.operator_extra_links
    }
    assert used <= declared


def test_links_survive_dag_serialization_with_distinct_xcom_keys():
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("links_serialized", schedule=None) as dag:
        BatchRecommendOperator(task_id="recommend")
        TrainModelOperator(task_id="train")
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    recommend = restored.get_task("recommend")
    assert set(recommend.extra_links) == {"BigQuery table", "Model page"}
    keys = {lk.xcom_key for lk in restored.get_task("train").operator_extra_links}
    assert keys == {"ml_model_page", "vertex_training_job"}
