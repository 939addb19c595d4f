"""The ``checks:`` section of the contract: data checks run in the warehouse, dbt-style names.

Built-in checks, each with a severity (``error`` stops the task and writes nothing; ``warn``
writes and records):

- on the step tables (before their partition is published): ``not_null``, ``unique``,
  ``accepted_values`` and ``range``; ``not_null`` for every ``nullable: false`` feature
  and ``unique`` (user, item) on the feature table are automatic;
- on the events source: ``freshness``, ``future_events``, ``duplicate_events``,
  ``row_count`` (the day against the trailing median), ``unknown_event_types`` (event
  types the contract's ``event_types`` does not map, which the SQL weighs nothing),
  ``event_type_variants`` (known types in another case or with spaces), ``timestamp_type``,
  ``null_ids``, ``completeness`` and ``history`` (``core.features.source_checks``);
- on the label step: ``label_completeness`` (the horizon has ended and has interactions).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_ml_provider.core.contract.identifiers import validate_identifier

Severity = Literal["error", "warn"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableCheck(_Strict):
    """One dbt-style test on a step table's new partition: ``{check: not_null, column: x}``."""

    check: Literal["not_null", "unique", "accepted_values", "range"]
    column: str | None = Field(default=None, description="the column tested (not_null, accepted_values, range)")
    columns: list[str] = Field(default_factory=list, description="the key that must be unique per partition")
    values: list[str | int | bool] = Field(default_factory=list, description="accepted_values: the allowed values")
    min: float | None = Field(default=None, description="range: smallest allowed value")
    max: float | None = Field(default=None, description="range: largest allowed value")
    severity: Severity = "error"

    @field_validator("column")
    @classmethod
    def _column(cls, v: str | None) -> str | None:
        return None if v is None else validate_identifier(v, kind="checked column")

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: list[str]) -> list[str]:
        return [validate_identifier(c, kind="key column") for c in v]

    @model_validator(mode="after")
    def _complete(self) -> TableCheck:
        if self.check == "unique":
            if not self.columns:
                raise ValueError("unique needs `columns`, the key that must be unique, e.g. [user_id, item_id]")
            return self
        if self.column is None:
            raise ValueError(f"{self.check} needs `column`, the column it tests")
        if self.check == "accepted_values" and not self.values:
            raise ValueError("accepted_values needs `values`, the list of allowed values")
        if self.check == "range":
            if self.min is None and self.max is None:
                raise ValueError("range needs `min`, `max` or both")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"range: min ({self.min:g}) must not exceed max ({self.max:g})")
        return self

    @property
    def name(self) -> str:
        """The check's name in results and logs, e.g. ``not_null(item_category)``."""
        target = ", ".join(self.columns) if self.check == "unique" else self.column
        return f"{self.check}({target})"


class Freshness(_Strict):
    """The newest event reaches the as-of date, ``max_lag_days`` at most before it (dbt: source freshness)."""

    max_lag_days: int = Field(default=0, ge=0, le=365)
    severity: Severity = "error"


class FutureEvents(_Strict):
    """No event later than the check time plus ``tolerance_hours`` (clock skew)."""

    tolerance_hours: int = Field(default=1, ge=0, le=24 * 365)
    severity: Severity = "error"


class DuplicateEvents(_Strict):
    """Identical events (same ``key``) are at most ``max_share`` of the lookback window's events."""

    max_share: float = Field(default=0.01, ge=0, le=1)
    key: list[str] = Field(default_factory=list, description="event identity; empty: user, item and timestamp")
    severity: Severity = "error"

    @field_validator("key")
    @classmethod
    def _key(cls, v: list[str]) -> list[str]:
        return [validate_identifier(c, kind="event key column") for c in v]


class RowCount(_Strict):
    """The as-of day's event count is within ``max_change`` of the median of the ``trailing_days`` before."""

    trailing_days: int = Field(default=7, ge=1, le=60)
    max_change: float = Field(default=0.5, gt=0, le=100, description="relative, 0.5 = half or one and a half")
    severity: Severity = "warn"


class UnknownEventTypes(_Strict):
    """Events of a type ``event_types`` does not map are at most ``max_share`` of the lookback window's events."""

    max_share: float = Field(default=0.0, ge=0, le=1)
    severity: Severity = "warn"


class TimestampType(_Strict):
    """The timestamp column is a TIMESTAMP, DATETIME or DATE, never text or a number."""

    severity: Severity = "error"


class NullIds(_Strict):
    """Events with a NULL user or item id are at most ``max_share`` of the lookback window's events."""

    max_share: float = Field(default=0.0, ge=0, le=1)
    severity: Severity = "error"


class Completeness(_Strict):
    """Every day the history covers in the lookback has at least ``min_share`` of the median day's events."""

    min_share: float = Field(default=0.1, ge=0, le=1, description="a day below this share of the median is missing")
    max_missing_days: int = Field(default=0, ge=0, description="missing days allowed (a shop closed on Sundays: 4)")
    severity: Severity = "error"


class History(_Strict):
    """The events reach back over the whole lookback; a rebuild over an existing partition needs it."""

    severity: Severity = "error"


class EventTypeVariants(_Strict):
    """No event type that differs from a known one only by case or spaces (``'Purchase'``, ``' purchase'``)."""

    severity: Severity = "error"


class EventChecks(_Strict):
    """Checks on the events source, as of the run's date: one aggregation over the lookback window."""

    source: str = Field(default="events", description="the role in `sources` that holds the events")
    timestamp_column: str = "event_ts"
    freshness: Freshness | None = Freshness()
    future_events: FutureEvents | None = FutureEvents()
    duplicate_events: DuplicateEvents | None = DuplicateEvents()
    row_count: RowCount | None = RowCount()
    unknown_event_types: UnknownEventTypes | None = UnknownEventTypes()
    event_type_variants: EventTypeVariants | None = EventTypeVariants()
    timestamp_type: TimestampType | None = TimestampType()
    null_ids: NullIds | None = NullIds()
    completeness: Completeness | None = Completeness()
    history: History | None = History()

    @field_validator("timestamp_column")
    @classmethod
    def _ts(cls, v: str) -> str:
        return validate_identifier(v, kind="timestamp column")


class LabelCompleteness(_Strict):
    """The label horizon has ended (events reach its end) and has at least ``min_positives`` positive labels."""

    min_positives: int = Field(default=1, ge=0)
    severity: Severity = "error"


class PartitionShrink(_Strict):
    """A rebuild keeps at least ``min_share`` of the distinct users of the partition it replaces."""

    min_share: float = Field(default=0.5, ge=0, le=1)
    severity: Severity = "error"


class ChecksSpec(_Strict):
    """The ``checks:`` section: what to check on which table, and how severely."""

    automatic: bool = Field(
        default=True,
        description="not_null for nullable: false features and unique (user, item) on the feature table",
    )
    events: EventChecks | None = EventChecks()
    label_completeness: LabelCompleteness | None = LabelCompleteness()
    partition_shrink: PartitionShrink | None = PartitionShrink()
    tables: dict[str, list[TableCheck]] = Field(default_factory=dict, description="step table -> its checks")

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: dict[str, list[TableCheck]]) -> dict[str, list[TableCheck]]:
        for table in v:
            validate_identifier(table, kind="checked table")
        return v

    def check_names(self, step_tables: list[str], sources: dict[str, str]) -> None:
        """Every table the section names is written by a step, and the events role exists; else a ValueError."""
        for table in self.tables:
            if table not in step_tables:
                raise ValueError(
                    f"checks.tables: {table!r} is not written by a step; check one of {', '.join(step_tables)}"
                )
        if self.events is not None and "events" in self.model_fields_set and self.events.source not in sources:
            raise ValueError(
                f"checks.events.source: {self.events.source!r} is not a role in `sources` "
                f"({', '.join(sources)}); name the events role, or set `events: null`"
            )
