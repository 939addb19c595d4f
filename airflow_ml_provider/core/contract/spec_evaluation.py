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
    metric: Literal["ndcg", "ndcg_binary", "recall", "precision", "map"] = Field(
        default="ndcg",
        description="the gate's metric at k: ndcg (graded gain 2^relevance - 1: a purchase outweighs a view), "
        "ndcg_binary (every positive gains 1), recall, precision or map",
    )
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
    scope: Literal["all_active", "end_to_end", "candidates"] = Field(
        default="all_active",
        description="what the gate judges: all_active scores the lists as served (the model's top k, filled "
        "from the global popularity list) of every user active in the label horizon against everything "
        "they did, an unserved user counting as a miss; end_to_end only the users with candidates; "
        "candidates only against positives among the candidates",
    )
    baseline: Literal["strongest", "global_popularity", "candidate_popularity", "candidate_order"] = Field(
        default="strongest",
        description="the baseline the gate's lift is over: strongest (the best of the simple rankers below "
        "in the gate's scope, so a model a popularity list beats is never promoted), the global popularity "
        "list (docs/evaluation.md), the candidates re-ranked by popularity, or the candidate generator's "
        "own order",
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
        description="distinct users with a positive the test window needs before the gate may promote (a user "
        "active on several test dates counts once); fewer is 'no decision, too few users', never a pass",
    )
    bootstrap_samples: int = Field(default=1000, ge=0, le=100_000, description="resamples for the lift's CI")
    sample_users: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of users the held-out test window judges (the gate, its baselines, the lift's CI and "
        "every metric in the envelope), chosen by FARM_FINGERPRINT of the user id as model.sample_users is: the "
        "same users for the model and every baseline, on both backends; 1: every user. At 10^6 users a test "
        "window of 7 days is 210M candidate rows; 0.1 keeps 100k users, whose lift CI is about 0.5 points "
        "wide (docs/evaluation.md)",
    )
    currency: str | None = Field(
        default=None,
        description="the ISO 4217 code of the items' price (EUR, GBP, USD), so of the outcomes' revenue: the pages "
        "and airflow-ml outcomes show it beside revenue; unset, revenue is labelled in the items' price unit",
    )

    @field_validator("candidate_order")
    @classmethod
    def _order(cls, v: str | None) -> str | None:
        return None if v is None else validate_identifier(v, kind="candidate order feature")

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is not None and not (len(v) == 3 and v.isascii() and v.isalpha() and v.isupper()):
            raise ValueError(f"{v!r} is not an ISO 4217 currency code: three capital letters, e.g. EUR, GBP or USD")
        return v
