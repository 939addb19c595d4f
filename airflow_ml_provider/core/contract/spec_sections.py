"""The contract's sections below the top level: entities, windows, SQL steps, features, label, model, inference.

Re-exported by ``core.contract.spec`` (import them from there); they live here to keep the spec
module to the contract as a whole: its top-level keys, cross-section rules and loading.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_ml_provider.core.contract.identifiers import validate_identifier

#: Source columns a contract may declare absent (``null`` in source_columns), with their type:
#: the SQL reads them as typed NULLs and the features that ``requires`` them are skipped.
OPTIONAL_COLUMNS: dict[str, str] = {"items.category": "STRING", "items.price": "FLOAT64"}

#: GoogleSQL types a declared feature may have, and the DuckDB types that match them.
FEATURE_TYPES: dict[str, tuple[str, ...]] = {
    "STRING": ("VARCHAR",),
    "INT64": ("BIGINT", "INTEGER"),
    "FLOAT64": ("DOUBLE", "FLOAT"),
    "BOOL": ("BOOLEAN",),
    "DATE": ("DATE",),
    "TIMESTAMP": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owners(_Strict):
    """Who reviews what: code owners of each side."""

    data_science: list[str] = Field(min_length=1)
    engineering: list[str] = Field(min_length=1)


class Entities(_Strict):
    """Key columns of the two entities a recommendation links."""

    user: str = "user_id"
    item: str = "item_id"

    @field_validator("user", "item")
    @classmethod
    def _ident(cls, v: str) -> str:
        return validate_identifier(v, kind="entity column")


class Windows(_Strict):
    """Time windows. Features look back; labels look forward.

    Three as-of windows in time order, each purged from the next by ``label_horizon_days`` so
    no label of one sees the next: training (``training_days``), early stopping
    (``early_stopping_days``, the end of training; 0 trains all rounds with no early stopping)
    and the held-out test window (``validation_days``, the newest dates with complete labels),
    which nothing has seen and which metrics, the gate and the envelope read.
    ``training_days >= validation_days``: a model fitted on fewer as-of dates than it is judged on
    is not worth judging.
    """

    feature_lookback_days: int = Field(default=28, ge=1, le=3650)
    label_horizon_days: int = Field(default=7, ge=1, le=365)
    validation_days: int = Field(default=7, ge=1, le=365, description="the held-out test window")
    training_days: int = Field(default=28, ge=1, le=3650, description="at least validation_days")
    early_stopping_days: int = Field(default=7, ge=0, le=365)

    @model_validator(mode="after")
    def _train_at_least_what_you_validate(self) -> Windows:
        if self.training_days < self.validation_days:
            raise ValueError(
                f"windows.training_days ({self.training_days}) is shorter than windows.validation_days "
                f"({self.validation_days}): train on at least as many as-of dates as you validate on; "
                "raise training_days or lower validation_days"
            )
        return self


class EvaluationWindows(NamedTuple):
    """The as-of dates of the three time-ordered windows of one training run."""

    fit: list[dt.date]
    early_stopping: list[dt.date]
    test: list[dt.date]


class SqlStep(_Strict):
    """One SQL file that fills one date-partitioned table."""

    table: str
    sql: str
    cluster_by: list[str] = Field(default_factory=list)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        return validate_identifier(v)

    @field_validator("cluster_by")
    @classmethod
    def _cluster(cls, v: list[str]) -> list[str]:
        if len(v) > 4:
            raise ValueError("BigQuery clusters by at most 4 columns")
        return [validate_identifier(c, kind="cluster column") for c in v]

    @field_validator("sql")
    @classmethod
    def _sql(cls, v: str) -> str:
        if not v.endswith(".sql") or v.startswith("/") or ".." in Path(v).parts:
            raise ValueError("expected a .sql path relative to the sql/ folder, e.g. recsys/user_features.sql")
        return v


class FeatureColumn(_Strict):
    """One declared column of the model's feature table."""

    name: str
    type: Literal["STRING", "INT64", "FLOAT64", "BOOL", "DATE", "TIMESTAMP"]
    nullable: bool = True
    description: str = ""
    requires: list[str] = Field(
        default_factory=list,
        description="source columns it is built from, e.g. [items.category]: skipped when the contract "
        "declares one absent (source_columns: {items: {category: null}})",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_identifier(v, kind="feature")

    @field_validator("requires")
    @classmethod
    def _requires(cls, v: list[str]) -> list[str]:
        for ref in v:
            role, _, column = ref.partition(".")
            if not column:
                raise ValueError(f"requires: {ref!r} must be role.column, e.g. items.category")
            validate_identifier(role, kind="requires role")
            validate_identifier(column, kind="requires column")
        return v


class Label(_Strict):
    """Where the label comes from and which column the model learns."""

    step: SqlStep
    column: str = "relevance"

    @field_validator("column")
    @classmethod
    def _col(cls, v: str) -> str:
        return validate_identifier(v, kind="label column")


class ModelSpec(_Strict):
    """The LightGBM model: objective, parameters and optional DS-owned hooks."""

    objective: Literal["lambdarank", "rank_xendcg", "binary", "regression"] = "lambdarank"
    params: dict[str, Any] = Field(default_factory=dict, description="LightGBM parameters over the defaults")
    num_boost_round: int = Field(default=300, ge=1, le=100_000)
    early_stopping_rounds: int | None = Field(
        default=30,
        ge=0,
        description="stop when NDCG@k on the early-stopping window has not improved for this many rounds; "
        "0 or null: no early stopping, all num_boost_round rounds are grown and that window is never read",
    )
    hooks: str | None = Field(default=None, description="model.py path relative to the contract's folder")
    sample_users: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="share of users whose fit and early-stopping lists are trained on, chosen by "
        "FARM_FINGERPRINT of the user id (the shards' hash, the same users on BigQuery and DuckDB, every "
        "date); whole lists are kept; the held-out test window has its own share, evaluation.sample_users; "
        "1: every user",
    )

    @property
    def ranking(self) -> bool:
        """True for the ranking objectives: lists (query groups) and graded relevance labels."""
        return self.objective in ("lambdarank", "rank_xendcg")

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        reserved = {"objective", "metric", "eval_at"} & set(v)
        if reserved:
            raise ValueError(f"set {sorted(reserved)} through model.objective / evaluation.k, not model.params")
        for key, value in v.items():
            if not isinstance(value, (int, float, str, bool)):
                raise ValueError(f"params.{key}: expected a number, string or bool, got {type(value).__name__}")
        return v

    @field_validator("hooks")
    @classmethod
    def _hooks(cls, v: str | None) -> str | None:
        if v is not None and (not v.endswith(".py") or v.startswith("/") or ".." in Path(v).parts):
            raise ValueError("expected a .py path relative to the folder of pipeline.yaml, e.g. model.py")
        return v


class InferenceSpec(_Strict):
    """Batch inference: how many items per user, which to leave out, and candidate rows per streamed batch."""

    top_k: int = Field(default=10, ge=1, le=1000)
    batch_rows: int = Field(default=500_000, ge=1_000, le=50_000_000)
    exclude_seen: Literal["purchased", "interacted", "none"] = Field(
        default="none",
        description="drop candidates the user already purchased (or interacted with at all) up to the "
        "prediction date, in SQL before scoring; none keeps them (repeat purchases are the point for a shop)",
    )
    serve: Literal["active", "all_users"] = Field(
        default="active",
        description="who gets a list: active, every user with an event in the feature lookback (the users the "
        "features describe); all_users, every row of the users source. Each gets top_k items: the model's "
        "ranking of their candidates, filled from the global popularity list when they have fewer than top_k",
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description="user shards scored by parallel mapped tasks (a stable FARM_FINGERPRINT hash of the "
        "user id), then published as one partition; 1 scores in a single task",
    )
