"""The contract's `drift:` section: defaults, the reference contract, and errors that name the key and the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from airflow_ml_provider.core.contract.spec import DriftSpec, load_spec, parse_spec
from airflow_ml_provider.exceptions import ContractError
from tests.paths import PIPELINE


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))


def with_drift(raw: dict[str, Any], **drift: Any) -> str:
    edited = copy.deepcopy(raw)
    edited["drift"] = {**edited.get("drift", {}), **drift}
    return yaml.safe_dump(edited)


def test_defaults_are_the_documented_levels():
    d = DriftSpec()
    assert (d.psi_warn, d.psi_drift, d.epsilon, d.drifted_share, d.fail_on) == (0.10, 0.25, 1e-4, 0.5, "never")
    assert d.levels("anything") == (0.10, 0.25)


def test_reference_contract_section():
    spec = load_spec(PIPELINE)
    d = spec.drift
    assert d.critical_features == ["item_category"]
    assert d.levels("item_category") == (0.05, 0.10) and d.levels("item_price") == (0.10, 0.25)
    names = [f.name for f in spec.features]
    assert "candidate_rank" not in d.monitored(names) and "item_category" in d.monitored(names)


def test_per_item_columns_need_min_items_and_rows_need_min_rows():
    d = DriftSpec(min_rows=1000, min_segment_rows=2000, min_items=50)
    assert (d.min_count(None, segment=False), d.min_count(None, segment=True)) == (1000, 2000)
    assert d.min_count("item_id", segment=False) == d.min_count("item_id", segment=True) == 50


def test_include_and_ignore_pick_columns_in_profile_order():
    d = DriftSpec(include=["b", "a", "score"], ignore=["b"])
    assert d.monitored(["a", "b", "c"]) == ["a"]
    assert DriftSpec(ignore=["c"]).monitored(["a", "b", "c"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"psi_warn": 12}, "drift.psi_warn: psi_warn must be a number between 0 and 10 (greater than 0)"),
        ({"psi_drift": "high"}, "drift.psi_drift: psi_drift must be a number between 0 and 10"),
        ({"psi_warn": 0}, "psi_warn must be a number between 0 and 10"),
        ({"psi_warn": True}, "psi_warn must be a number between 0 and 10"),
        ({"psi_warn": 0.3}, "drift: psi_warn (0.3) must not exceed psi_drift (0.25)"),
        ({"thresholds": {"item_price": {"psi_drift": 11}}}, "drift.thresholds.item_price.psi_drift: psi_drift must be"),
        ({"thresholds": {"item_price": {"psi_warn": 0.5}}}, "thresholds.item_price: psi_warn (0.5) must not exceed"),
        ({"thresholds": {"nope": {"psi_warn": 0.05}}}, "drift.thresholds: 'nope' is not a declared feature"),
        ({"epsilon": 0.5}, "drift.epsilon: epsilon must be a number between 0 and 0.01"),
        ({"include": ["user_lifetime_value"]}, "drift.include: 'user_lifetime_value' is not a declared feature"),
        ({"critical_features": ["nope"]}, "drift.critical_features: 'nope' is not a declared feature"),
        ({"include": ["item_price"], "ignore": ["item_price"]}, "in both include and ignore"),
        ({"segment_by": ["item_price"]}, "drift.segment_by: 'item_price' is FLOAT64; segment by a STRING"),
        ({"segment_by": ["country"]}, "drift.segment_by: 'country' is not a declared feature"),
        ({"fail_on": "sometimes"}, "drift.fail_on: Input should be 'drift', 'warn' or 'never'"),
        ({"min_rows": 0}, "drift.min_rows"),
        ({"per_item": ["nope"]}, "drift.per_item: 'nope' is not a declared feature"),
        ({"per_item": ["score"]}, "drift.per_item: 'score' is a score per row; list item-level features only"),
        ({"min_items": 0}, "drift.min_items"),
        ({"colour": "red"}, "drift.colour: unknown key"),
    ],
)
def test_bad_drift_sections_name_the_key_and_the_fix(raw, drift, message):
    with pytest.raises(ContractError) as info:
        parse_spec(with_drift(raw, **drift), "dags/recsys/pipeline.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("dags/recsys/pipeline.yaml: ")


def test_date_features_cannot_be_monitored(raw):
    edited = copy.deepcopy(raw)
    edited["features"].append({"name": "first_seen", "type": "DATE"})
    edited["drift"] = {"include": ["first_seen"]}
    with pytest.raises(ContractError, match="'first_seen' has type DATE, which is not profiled"):
        parse_spec(yaml.safe_dump(edited), "pipeline.yaml")


def test_score_can_be_critical_and_have_its_own_thresholds(raw):
    spec = parse_spec(
        with_drift(raw, critical_features=["score"], thresholds={"score": {"psi_drift": 0.5}}), "pipeline.yaml"
    )
    assert spec.drift.levels("score") == (0.10, 0.5)


def test_contract_without_a_drift_section_gets_the_defaults(raw):
    edited = copy.deepcopy(raw)
    edited.pop("drift", None)
    assert parse_spec(yaml.safe_dump(edited), "pipeline.yaml").drift == DriftSpec()
