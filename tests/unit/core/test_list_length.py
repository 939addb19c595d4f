"""core/inference/batch.py ``list_length``: a run enforces the bounds ``validate`` checks on top_k."""

from __future__ import annotations

import pytest

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.inference.batch import list_length
from airflow_ml_provider.exceptions import ContractError
from tests.paths import PIPELINE

SPEC = load_spec(PIPELINE)  # candidates_per_user 30, inference.top_k 10, per-user lists


def _with(spec=SPEC, *, top_k=None, candidates=None, lists=None):
    update = {}
    if top_k is not None:
        update["inference"] = spec.inference.model_copy(update={"top_k": top_k})
    if candidates is not None:
        update["candidates_per_user"] = candidates
    if lists is not None:
        update["evaluation"] = spec.evaluation.model_copy(update={"lists": lists})
    return spec.model_copy(update=update)


def test_no_top_k_is_the_contracts_and_a_given_one_is_kept():
    assert list_length(SPEC, None) == 10
    assert list_length(SPEC, 1) == 1
    assert list_length(SPEC, 30) == 30


@pytest.mark.parametrize("top_k", [0, -3, 31, 10**6])
def test_a_top_k_outside_one_to_candidates_per_user_is_refused_naming_both(top_k):
    with pytest.raises(ContractError, match=rf"--top-k={top_k}: a list holds 1 to 30 items.*Pass a --top-k in 1\.\.30"):
        list_length(SPEC, top_k, "--top-k")


@pytest.mark.parametrize("top_k", [2.5, "10", True])
def test_a_top_k_that_is_no_whole_number_is_refused(top_k):
    with pytest.raises(ContractError, match=r"top_k=.* is not a whole number of items per list"):
        list_length(SPEC, top_k)


def test_a_contract_top_k_above_its_candidates_is_refused_at_run_time_as_validate_does():
    with pytest.raises(ContractError, match=r"inference\.top_k \(40\) exceeds candidates_per_user \(30\): at least 10"):
        list_length(_with(top_k=40), None)
    with pytest.raises(ContractError, match=r"inference\.top_k \(10\) exceeds candidates_per_user \(5\)"):
        list_length(_with(candidates=5), None)


def test_lists_per_date_are_bounded_by_the_contracts_own_limit_only():
    per_date = _with(top_k=40, lists="as_of_date")
    assert list_length(per_date, None) == 40
    assert list_length(per_date, 1000) == 1000
    with pytest.raises(ContractError, match=r"top_k=1001: a list holds 1 to 1000 items"):
        list_length(per_date, 1001)
