"""The contract's ``evaluation:`` section: how models are judged on the held-out test window.

Re-exported by ``core.contract.spec``; it lives here to keep the contract module readable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airflow_ml_provider.core.contract.identifiers import validate_identifier


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluationGate(_Strict):
    """When a candidate model may become champion."""

    k: int = Field(default=10, ge=1, le=1000)
    metric: Literal["ndcg", "recall", "precision", "map"] = "ndcg"
    min_lift_over_baseline: float = Field(
        default=0.05, ge=-1, le=100, description="relative lift over the popularity baseline, 0.05 = +5%"
    )
    max_regression_vs_champion: float = Field(
        default=0.02, ge=0, le=1, description="largest relative drop vs the current champion that still passes"
    )
    lists: Literal["user", "as_of_date"] = Field(
        default="user",
        description="the ranking lists metrics@k are computed on: one per user and as-of date (recommendations), "
        "or one per as-of date ranking every row (a per-user score such as churn: of the k highest-scored "
        "users, how many turned out positive)",
    )
    scope: Literal["end_to_end", "candidates"] = Field(
        default="end_to_end",
        description="what the gate judges: end_to_end scores the top k against every interaction in the label "
        "horizon (missed candidates count); candidates only against positives among the candidates",
    )
    baseline: Literal["global_popularity", "candidate_popularity", "candidate_order"] = Field(
        default="global_popularity",
        description="the baseline the gate's lift is over: the k most popular items of the training window for "
        "everyone, the candidates re-ranked by popularity, or the candidate generator's own order",
    )
    candidate_order: str | None = Field(
        default=None,
        description="a feature holding the candidate generator's rank (1 = best), e.g. candidate_rank; "
        "reported as a baseline when set",
    )
    min_lists: int = Field(
        default=200,
        ge=0,
        le=10_000_000,
        description="lists with a positive the test window needs before the gate may promote; fewer is "
        "'no decision, too few lists', never a pass",
    )
    bootstrap_samples: int = Field(default=1000, ge=0, le=100_000, description="resamples for the lift's CI")

    @field_validator("candidate_order")
    @classmethod
    def _order(cls, v: str | None) -> str | None:
        return None if v is None else validate_identifier(v, kind="candidate order feature")
