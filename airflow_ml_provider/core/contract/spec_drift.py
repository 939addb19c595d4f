"""The ``drift:`` section of the contract: monitored columns, PSI levels, segments and policy.

Each column is profiled at one level, fixed at training and stored in its reference profile:
per candidate row (the default), or, for the features listed in ``per_item``, once per item
and as-of date, so a popular item proposed to many users weighs no more than any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from airflow_ml_provider.core.contract.identifiers import validate_identifier


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The column name prediction drift reports for ``recommendations.score``; the contract may name it too.
PREDICTION_COLUMN = "score"
#: Feature types a drift check can bin (dates and timestamps are not profiled at training).
DRIFT_TYPES = ("STRING", "INT64", "FLOAT64", "BOOL")


def _psi_level(value: Any, key: str) -> float:
    """A PSI threshold: a number in (0, 10]; anything else is an error naming the key."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 10
    if not ok:
        raise ValueError(
            f"{key} must be a number between 0 and 10 (greater than 0), e.g. 0.10 to warn and 0.25 for drift"
        )
    return float(value)


class ColumnThresholds(_Strict):
    """PSI levels for one column, over the contract-wide ``drift.psi_warn`` / ``drift.psi_drift``."""

    psi_warn: float | None = None
    psi_drift: float | None = None

    @field_validator("psi_warn", "psi_drift", mode="before")
    @classmethod
    def _level(cls, v: Any, info: ValidationInfo) -> float | None:
        return None if v is None else _psi_level(v, str(info.field_name))


class DriftSpec(_Strict):
    """Drift checks: which columns, which thresholds, how to segment, and when to fail the task."""

    include: list[str] = Field(default_factory=list, description="columns to check; empty means every feature")
    ignore: list[str] = Field(default_factory=list, description="columns never checked")
    predictions: bool = Field(default=True, description="also compare recommendations.score with the model's scores")
    psi_warn: float = 0.10
    psi_drift: float = 0.25
    epsilon: float = Field(default=1e-4, description="proportion used for an empty bin in PSI")
    min_rows: int = Field(default=100, ge=1, description="fewer current rows than this: the column is skipped")
    per_item: list[str] = Field(
        default_factory=list, description="item-level features profiled once per item and day, not per candidate row"
    )
    min_items: int = Field(default=100, ge=1, description="fewer current items than this: a per_item column is skipped")
    drifted_share: float = Field(default=0.5, gt=0, le=1, description="share of drifted columns that is drift")
    critical_features: list[str] = Field(default_factory=list, description="any of these drifting is drift")
    segment_by: list[str] = Field(default_factory=list, max_length=4)
    min_segment_rows: int = Field(default=1000, ge=1)
    max_segments: int = Field(default=50, ge=1, le=1000, description="largest segments kept; all count in the total")
    thresholds: dict[str, ColumnThresholds] = Field(default_factory=dict, description="column -> PSI levels")
    fail_on: Literal["drift", "warn", "never"] = "never"

    @field_validator("psi_warn", "psi_drift", mode="before")
    @classmethod
    def _level(cls, v: Any, info: ValidationInfo) -> float:
        return _psi_level(v, str(info.field_name))

    @field_validator("epsilon", mode="before")
    @classmethod
    def _epsilon(cls, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 0.01:
            raise ValueError("epsilon must be a number between 0 and 0.01 (greater than 0), e.g. 0.0001")
        return float(v)

    @field_validator("segment_by")
    @classmethod
    def _segments(cls, v: list[str]) -> list[str]:
        return [validate_identifier(c, kind="segment column") for c in v]

    @model_validator(mode="after")
    def _levels_ordered(self) -> DriftSpec:
        for column in ["", *self.thresholds]:
            warn, drift = self.levels(column)
            if warn > drift:
                where = f"thresholds.{column}: " if column else ""
                raise ValueError(f"{where}psi_warn ({warn:g}) must not exceed psi_drift ({drift:g})")
        return self

    def min_count(self, per: str | None, segment: bool) -> int:
        """Fewest current rows (or items, for a ``per`` column) a column needs to be judged."""
        if per is not None:
            return self.min_items
        return max(self.min_rows, self.min_segment_rows) if segment else self.min_rows

    def levels(self, column: str) -> tuple[float, float]:
        """(warn, drift) PSI levels of ``column``: its own thresholds over the contract-wide ones."""
        own = self.thresholds.get(column, ColumnThresholds())
        warn = own.psi_warn if own.psi_warn is not None else self.psi_warn
        drift = own.psi_drift if own.psi_drift is not None else self.psi_drift
        return warn, drift

    def monitored(self, profiled: list[str]) -> list[str]:
        """The ``profiled`` columns to check, in their order: ``include`` (or all) minus ``ignore``."""
        wanted = set(self.include) if self.include else set(profiled)
        return [c for c in profiled if c in wanted and c not in self.ignore]

    def check_names(self, types: Mapping[str, str]) -> None:
        """Every column the section names is a checkable feature (or ``score``); else a ValueError.

        ``types``: each declared feature's name and type.
        """
        checkable = sorted(n for n, t in types.items() if t in DRIFT_TYPES)
        named = {
            "include": self.include,
            "ignore": self.ignore,
            "critical_features": self.critical_features,
            "thresholds": list(self.thresholds),
            "per_item": self.per_item,
        }
        for key, names in named.items():
            for name in names:
                if name == PREDICTION_COLUMN or types.get(name) in DRIFT_TYPES:
                    continue
                why = f"has type {types[name]}, which is not profiled" if name in types else "is not a declared feature"
                raise ValueError(
                    f"drift.{key}: {name!r} {why}; use one of {', '.join(checkable)} or {PREDICTION_COLUMN!r}"
                )
        if PREDICTION_COLUMN in self.per_item:
            raise ValueError(f"drift.per_item: {PREDICTION_COLUMN!r} is a score per row; list item-level features only")
        both = sorted(set(self.include) & set(self.ignore))
        if both:
            raise ValueError(f"drift: {both} are in both include and ignore; keep each column in one list")
        for name in self.segment_by:
            if name not in types:
                raise ValueError(f"drift.segment_by: {name!r} is not a declared feature; segment by a feature")
            if types[name] == "FLOAT64":
                raise ValueError(f"drift.segment_by: {name!r} is FLOAT64; segment by a STRING, INT64 or BOOL feature")
