"""The evaluation gate as a value: lift over the popularity baseline, regression vs the champion."""

from __future__ import annotations

import json

import pytest

from airflow_ml_provider.core.contract.spec import EvaluationGate
from airflow_ml_provider.core.evaluation.gate import GateError, GateResult, evaluate_gate

GATE = EvaluationGate(k=10, metric="ndcg", min_lift_over_baseline=0.05, max_regression_vs_champion=0.02)


def m(ndcg: float, lists: int = 1000) -> dict[str, float]:
    """A full metrics dict where only ndcg (and, for min_lists, lists) matters to the gate."""
    return {"ndcg": ndcg, "recall": 0.5, "precision": 0.1, "map": 0.2, "lists": lists}


@pytest.mark.parametrize(
    ("case", "candidate", "baseline", "champion", "passes", "checks"),
    [
        ("passes", 0.412, 0.335, 0.400, True, (True, True)),
        ("fails on lift", 0.340, 0.335, None, False, (False, None)),
        ("fails on regression", 0.380, 0.300, 0.400, False, (True, False)),
        ("fails on both", 0.300, 0.300, 0.400, False, (False, False)),
        ("no champion", 0.412, 0.335, None, True, (True, None)),
        ("beats champion by far", 0.500, 0.335, 0.400, True, (True, True)),
        ("baseline zero, positive score", 0.120, 0.0, None, True, (True, None)),
        ("baseline zero, zero score", 0.0, 0.0, None, False, (False, None)),
        ("exact lift threshold", 0.105, 0.100, None, True, (True, None)),
        ("just under lift threshold", 0.10499, 0.100, None, False, (False, None)),
        ("exact regression threshold", 0.392, 0.300, 0.400, True, (True, True)),
        ("just under regression threshold", 0.39199, 0.300, 0.400, False, (True, False)),
        ("champion zero", 0.2, 0.1, 0.0, True, (True, True)),
        ("candidate nan", float("nan"), 0.3, None, False, (False, None)),
    ],
)
def test_gate_decisions(case, candidate, baseline, champion, passes, checks):
    result = evaluate_gate(m(candidate), m(baseline), None if champion is None else m(champion), GATE)
    assert isinstance(result, GateResult)
    assert result.passes is passes, (case, result.reasons)
    assert tuple(result.diagnostics["checks"].values()) == checks, case
    assert len(result.reasons) == 2
    assert all(r.endswith(".") for r in result.reasons)


def test_reason_sentences_carry_the_numbers():
    result = evaluate_gate(m(0.412), m(0.335), m(0.400), GATE)
    assert result.reasons[0] == "ndcg@10 0.4120 is +23.0% over the popularity baseline 0.3350 (needs +5.0%)."
    assert (
        result.reasons[1] == "ndcg@10 0.4120 is +3.00% (+0.0120) vs the champion's 0.4000 "
        "(allows at most -2.0%, i.e. 0.3920 or more)."
    )


def test_a_small_change_vs_the_champion_reads_as_one():
    """It read "0.114 is +0.0% vs the champion's 0.113": rounding hid the difference it described."""
    result = evaluate_gate(m(0.11407), m(0.05), m(0.11349), GATE)
    assert "0.1141 is +0.51% (+0.0006) vs the champion's 0.1135" in result.reasons[1]


def test_the_strongest_baseline_is_named_beside_the_others():
    baselines = {"global_popularity": 0.0695, "candidate_order": 0.0394, "candidate_popularity": 0.0548}
    result = evaluate_gate(m(0.0507), m(0.0695), None, GATE, baseline_name="global_popularity", baselines=baselines)
    assert result.outcome == "reject"
    assert "over the global popularity 0.0695" in result.reasons[0]
    assert (
        "the strongest of global popularity 0.0695, candidate order 0.0394, candidate popularity 0.0548"
        in (result.reasons[0])
    )


def test_no_champion_says_so():
    result = evaluate_gate(m(0.412), m(0.335), None, GATE)
    assert "no champion yet" in result.reasons[1]
    assert result.diagnostics["champion"] is None
    assert result.diagnostics["change_vs_champion"] is None


def test_baseline_zero_has_no_lift_number_and_diagnostics_stay_json():
    result = evaluate_gate(m(0.12), m(0.0), m(0.1), GATE)
    assert result.passes
    assert result.diagnostics["lift_over_baseline"] is None
    assert "lift is undefined" in result.reasons[0]
    json.dumps(result.diagnostics, allow_nan=False)


def test_zero_required_lift_lets_equal_scores_pass():
    gate = GATE.model_copy(update={"min_lift_over_baseline": 0.0})
    assert evaluate_gate(m(0.0), m(0.0), None, gate).passes
    assert evaluate_gate(m(0.3), m(0.3), None, gate).passes


def test_gate_uses_its_metric_and_k():
    gate = EvaluationGate(k=20, metric="recall", min_lift_over_baseline=0.1, max_regression_vs_champion=0.0)
    cand = {"ndcg": 0.0, "recall": 0.60, "lists": 500}
    result = evaluate_gate(cand, {"recall": 0.50}, {"recall": 0.61}, gate)
    assert result.diagnostics["metric"] == "recall@20"
    assert result.diagnostics["checks"] == {"lift_over_baseline": True, "no_regression_vs_champion": False}
    assert not result.passes


@pytest.mark.parametrize(
    ("candidate", "baseline", "champion", "whose"),
    [
        ({"recall": 0.5}, m(0.3), None, "candidate"),
        (m(0.4), {}, None, "popularity baseline"),
        (m(0.4), m(0.3), {"map": 0.2}, "champion"),
    ],
)
def test_missing_metric_is_a_clear_error(candidate, baseline, champion, whose):
    with pytest.raises(GateError, match=rf"the {whose} metrics have no 'ndcg' \(the gate's metric at k=10\)"):
        evaluate_gate(candidate, baseline, champion, GATE)


def test_non_numeric_metric_is_a_clear_error():
    with pytest.raises(GateError, match="expected a number"):
        evaluate_gate({"ndcg": "0.4"}, m(0.3), None, GATE)  # type: ignore[dict-item]


@pytest.mark.parametrize(("lists", "outcome"), [(199, "no_decision"), (200, "promote"), (0, "no_decision")])
def test_too_few_lists_is_no_decision_not_a_pass(lists, outcome):
    """A model far above its baseline is still not promoted on too few lists (it once was, on 3)."""
    result = evaluate_gate(m(0.9, lists=lists), m(0.1), None, GATE)
    assert result.outcome == outcome
    assert result.passes is (outcome == "promote")
    if outcome == "no_decision":
        assert result.reasons[0].startswith(
            f"No decision, too few users: the test window has {lists} distinct users with a positive"
        )
        assert "evaluation.min_lists is 200" in result.reasons[0]


def test_too_few_lists_and_a_bad_model_is_still_no_decision():
    result = evaluate_gate(m(0.1, lists=3), m(0.5), None, GATE)
    assert (result.outcome, result.passes) == ("no_decision", False)


def test_unknown_list_count_is_no_decision():
    """Metrics without a list count (an envelope from before min_lists) are never a pass."""
    result = evaluate_gate({"ndcg": 0.9}, m(0.1), None, GATE)
    assert result.outcome == "no_decision"
    assert "an unknown number of distinct users" in result.reasons[0]


def test_min_lists_counts_users_not_lists():
    """234 lists of 15 users are 15 users: no decision (the ratings data was once promoted on them)."""
    result = evaluate_gate({**m(0.9, lists=234), "users": 15}, m(0.1), None, GATE)
    assert result.outcome == "no_decision"
    assert "15 distinct users with a positive (234 lists)" in result.reasons[0]


def test_rejection_is_an_outcome_too():
    assert evaluate_gate(m(0.1), m(0.5), None, GATE).outcome == "reject"


def test_scope_baseline_and_interval_are_labelled():
    ci = {"metric": "ndcg", "low": 0.12, "high": 0.31, "confidence": 0.95, "samples": 1000}
    result = evaluate_gate(
        m(0.412), m(0.335), None, GATE, lift_ci=ci, scope="end_to_end", baseline_name="global_popularity"
    )
    assert result.reasons[0] == (
        "ndcg@10 (end-to-end) 0.4120 is +23.0% over the global popularity 0.3350 (needs +5.0%)."
    )
    assert "95% bootstrap interval, resampling lists, is +12.0% to +31.0% (1000 resamples)" in result.reasons[-1]
    assert result.diagnostics["lift_ci"] == ci
    json.dumps(result.diagnostics, allow_nan=False)
