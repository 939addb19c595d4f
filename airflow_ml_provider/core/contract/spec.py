"""The pipeline contract (``pipeline.yaml``) parsed into one spec object.

Data scientists and engineers review this file together: it names the entities, the
source tables, the SQL steps that build features, the declared feature schema, the
label and the time windows. Every operator reads the same spec. Errors name the file,
the key path and the fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from airflow_ml_provider.core.contract.config import format_validation_error
from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.contract.spec_checks import ChecksSpec
from airflow_ml_provider.core.contract.spec_drift import DRIFT_TYPES, PREDICTION_COLUMN, ColumnThresholds, DriftSpec
from airflow_ml_provider.core.contract.spec_evaluation import EvaluationGate
from airflow_ml_provider.core.contract.spec_sections import (
    FEATURE_TYPES,
    OPTIONAL_COLUMNS,
    Entities,
    EvaluationWindows,
    FeatureColumn,
    InferenceSpec,
    Label,
    ModelSpec,
    Owners,
    SqlStep,
    Windows,
    _Strict,
)
from airflow_ml_provider.exceptions import ContractError

#: What an event type from ``event_types`` may look like (it is rendered as a SQL string literal).
EVENT_TYPE_VALUE = re.compile(r"[A-Za-z0-9_.:/ -]{1,64}")
#: The event types the reference SQL weighs (purchase 3, add_to_cart 2, view 1). With an
#: ``event_types`` mapping, each one the mapping does not mention still means itself.
SQL_EVENT_TYPES = ("view", "add_to_cart", "purchase")
#: Query parameters the contract sets itself; ``sql_params`` may not redefine them.
RESERVED_SQL_PARAMS = frozenset({"as_of", "lookback_days", "label_horizon_days", "candidates_per_user"})
#: ``sql_params`` the reference SQL reads that a contract may leave out (its own value wins):
#: ``covisit_neighbours`` is how many most co-visited items each item keeps before users are joined
#: (candidates.sql), added after contracts existed, so older contracts keep working unchanged.
SQL_PARAM_DEFAULTS: dict[str, int | float | str | bool] = {"covisit_neighbours": 50}
# Re-exported: the sections are defined in spec_drift and spec_sections; callers import them from here.
__all__ = [
    "DRIFT_TYPES",
    "FEATURE_TYPES",
    "OPTIONAL_COLUMNS",
    "PREDICTION_COLUMN",
    "SQL_EVENT_TYPES",
    "ColumnThresholds",
    "DriftSpec",
    "Entities",
    "EvaluationWindows",
    "FeatureColumn",
    "InferenceSpec",
    "Label",
    "ModelSpec",
    "Owners",
    "PipelineSpec",
    "SqlStep",
    "Windows",
    "load_spec",
    "parse_spec",
]


class PipelineSpec(_Strict):
    """The whole contract."""

    name: str
    description: str = ""
    owners: Owners
    start_date: dt.date | None = Field(
        default=None,
        description="the first logical date the DAGs and commands run for: any date your history starts on; "
        "none: every date",
    )
    entities: Entities = Entities()
    sources: dict[str, str] = Field(description="role -> source table, e.g. events: events")
    source_columns: dict[str, dict[str, str | None]] = Field(
        default_factory=dict,
        description="role -> {column the SQL uses: column of your table}, e.g. events: {user_id: CustomerID}; "
        "null: your table has no such column (optional attributes only, e.g. items: {category: null})",
    )
    event_types: dict[str, list[str]] = Field(
        default_factory=dict,
        description="event type the SQL knows -> your event types, e.g. purchase: [transaction, order]; "
        "view, add_to_cart and purchase keep their own meaning unless named here (as a key or a listed type); "
        "other types become 'unknown' (relevance 0), never silently weighted",
    )
    windows: Windows = Windows()
    candidates_per_user: int = Field(default=50, ge=1, le=10000)
    sql_params: dict[str, int | float | str | bool] = Field(
        default_factory=dict,
        description="extra @name query parameters every SQL file may use, e.g. candidate generator knobs",
    )
    steps: list[SqlStep] = Field(min_length=1, description="feature SQL steps in run order")
    feature_table: str
    features: list[FeatureColumn] = Field(min_length=1)
    label: Label
    model: ModelSpec = ModelSpec()
    evaluation: EvaluationGate = EvaluationGate()
    drift: DriftSpec = DriftSpec()
    inference: InferenceSpec = InferenceSpec()
    checks: ChecksSpec = ChecksSpec()

    @field_validator("name", "feature_table")
    @classmethod
    def _ident(cls, v: str) -> str:
        return validate_identifier(v, kind="name")

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: dict[str, str]) -> dict[str, str]:
        for table in v.values():
            validate_identifier(table, kind="source table")
        return v

    @field_validator("source_columns")
    @classmethod
    def _source_columns(cls, v: dict[str, dict[str, str | None]]) -> dict[str, dict[str, str | None]]:
        for role, columns in v.items():
            for ours, theirs in columns.items():
                validate_identifier(ours, kind=f"source_columns.{role} column")
                if theirs is not None:
                    validate_identifier(theirs, kind=f"source_columns.{role}.{ours} source column")
                elif f"{role}.{ours}" not in OPTIONAL_COLUMNS:
                    raise ValueError(
                        f"source_columns.{role}.{ours}: null (absent) is allowed for the optional attributes "
                        f"{', '.join(OPTIONAL_COLUMNS)} only; the SQL needs {role}.{ours}: name your column"
                    )
        return v

    @field_validator("event_types")
    @classmethod
    def _event_types(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for ours, theirs in v.items():
            validate_identifier(ours, kind="event_types name")
            if not theirs:
                raise ValueError(f"event_types.{ours}: list at least one of your event types")
            for raw in theirs:
                # Rendered into SQL as a string literal: a strict alphabet keeps quotes out.
                if not EVENT_TYPE_VALUE.fullmatch(raw):
                    raise ValueError(
                        f"event_types.{ours}: {raw!r} is not a plain event type (letters, digits, space, _ . : / -)"
                    )
                if raw in seen and seen[raw] != ours:
                    raise ValueError(f"event_types: {raw!r} is listed under both {seen[raw]} and {ours}")
                seen[raw] = ours
        return v

    @field_validator("sql_params")
    @classmethod
    def _sql_params(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            validate_identifier(name, kind="sql_params name")
            if name in RESERVED_SQL_PARAMS:
                raise ValueError(f"{name!r} is set from the contract's windows; pick another name")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> PipelineSpec:
        tables = [s.table for s in self.steps]
        written = [*tables, self.label.step.table]
        if len(set(written)) != len(written):
            raise ValueError(f"steps and label.step: each step must write its own table, got {written}")
        if self.feature_table not in tables:
            raise ValueError(f"feature_table {self.feature_table!r} must be written by one of the steps {tables}")
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features: duplicate names {dupes}")
        keys = {self.entities.user, self.entities.item}
        if keys & set(names):
            raise ValueError(f"features: entity keys {sorted(keys & set(names))} are keys, not features; remove them")
        self.drift.check_names({f.name: f.type for f in self.features})
        self.checks.check_names(written, self.sources)
        bad_roles = sorted({r.partition(".")[0] for f in self.features for r in f.requires} - set(self.sources))
        if bad_roles:
            raise ValueError(f"features requires: {bad_roles} are not roles in sources ({sorted(self.sources)})")
        if not self.model_features:
            raise ValueError(f"every feature is skipped ({self.skipped_features}); the model needs at least one")
        unknown_roles = sorted(set(self.source_columns) - set(self.sources))
        if unknown_roles:
            raise ValueError(f"source_columns: {unknown_roles} are not roles in sources ({sorted(self.sources)})")
        if self.event_types and "events" not in self.sources:
            raise ValueError("event_types maps the `events` source, but sources has no events role")
        order = self.evaluation.candidate_order
        if order is not None and order not in names:
            raise ValueError(f"evaluation.candidate_order: {order!r} is not a declared feature; name the rank feature")
        if self.inference.serve == "all_users" and "users" not in self.sources:
            raise ValueError("inference.serve is all_users, but sources has no users role; add it or serve: active")
        if self.evaluation.baseline == "candidate_order" and order is None:
            raise ValueError("evaluation.baseline is candidate_order but evaluation.candidate_order names no feature")
        return self

    @property
    def event_type_mapping(self) -> dict[str, list[str]]:
        """What ``{{ source('events') }}`` maps: ``event_types`` plus each SQL type it does not mention, as itself.

        Empty without ``event_types`` (the raw types pass through unchanged). Mapping one type
        leaves the others their default meaning: ``purchase: [order]`` keeps raw ``view`` and
        ``add_to_cart`` events as they are. A SQL type named as a key takes exactly the types
        listed under it (``view: [pageview]`` makes a raw ``view`` unknown; list both to keep
        it), and one listed under another key means that key (``purchase: [view]``).
        """
        if not self.event_types:
            return {}
        mentioned = {*self.event_types, *(raw for raws in self.event_types.values() for raw in raws)}
        return {**self.event_types, **{t: [t] for t in SQL_EVENT_TYPES if t not in mentioned}}

    @property
    def absent_columns(self) -> list[str]:
        """The optional source columns the contract declares absent, as ``role.column``."""
        return [f"{r}.{c}" for r, cols in self.source_columns.items() for c, theirs in cols.items() if theirs is None]

    @property
    def skipped_features(self) -> dict[str, str]:
        """Features built from an absent column (name -> why): in the table, never in the model."""
        absent = set(self.absent_columns)
        return {
            f.name: f"{', '.join(r for r in f.requires if r in absent)} declared absent in source_columns"
            for f in self.features
            if absent & set(f.requires)
        }

    @property
    def model_features(self) -> list[FeatureColumn]:
        """The declared features the model trains on: all but the skipped ones."""
        skipped = self.skipped_features
        return [f for f in self.features if f.name not in skipped]

    def find_step(self, table: str) -> SqlStep | None:
        """The feature or label step that writes ``table``, if any."""
        return next((s for s in [*self.steps, self.label.step] if s.table == table), None)

    def step(self, table: str) -> SqlStep:
        """The step that writes ``table``; an error lists the known ones."""
        found = self.find_step(table)
        if found:
            return found
        raise ContractError(
            f"pipeline {self.name!r} has no step writing table {table!r}; known: "
            f"{', '.join(s.table for s in self.steps)}, {self.label.step.table}"
        )

    def query_params(self, as_of: dt.date) -> dict[str, Any]:
        """The query parameters every SQL file of this pipeline may use."""
        return {
            **SQL_PARAM_DEFAULTS,
            **self.sql_params,
            "as_of": as_of,
            "lookback_days": self.windows.feature_lookback_days,
            "label_horizon_days": self.windows.label_horizon_days,
            "candidates_per_user": self.candidates_per_user,
            "exclude_seen": self.inference.exclude_seen,
        }

    def evaluation_windows(self, end: dt.date) -> EvaluationWindows:
        """The fit, early-stopping and test as-of dates for a run on ``end`` (time split, never random).

        Labels need ``label_horizon_days`` after an as-of date, so the newest usable date is
        ``end - horizon``. The test window takes the newest ``validation_days``; before it, a gap
        of ``label_horizon_days``, then the early-stopping slice, another gap, then the fit window.
        """
        return self.windows_before(end - dt.timedelta(days=self.windows.label_horizon_days))

    def windows_before(self, test_end: dt.date) -> EvaluationWindows:
        """The three windows whose test window ends on ``test_end``."""
        w = self.windows
        horizon = dt.timedelta(days=w.label_horizon_days)
        test = _days_ending(test_end, w.validation_days)
        early = _days_ending(test[0] - horizon, w.early_stopping_days)
        fit_end = (early[0] if early else test[0]) - horizon
        return EvaluationWindows(_days_ending(fit_end, w.training_days), early, test)

    def training_dates(self, end: dt.date) -> tuple[list[dt.date], list[dt.date]]:
        """As-of dates the training export reads (fit through early stopping) and the test dates.

        The first list runs from the first fit date to the last early-stopping date, purge gap
        included (every feature and label partition the run reads); the trainer drops the gap.
        """
        fit, early, test = self.evaluation_windows(end)
        last = early[-1] if early else fit[-1]
        return _days_ending(last, (last - fit[0]).days + 1), test

    @property
    def spec_hash(self) -> str:
        """A stable hash of the contract's content, recorded with every model."""
        # Sorted keys: mappings such as sql_params mean the same in any order.
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _days_ending(last: dt.date, n: int) -> list[dt.date]:
    """The ``n`` consecutive dates ending on ``last``."""
    return [last - dt.timedelta(days=n - 1 - i) for i in range(n)]


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a ``pipeline.yaml``; errors name the file, the key and the fix."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ContractError(f"{p}: contract file not found. Pass the path of your pipeline.yaml (--pipeline).") from err
    return parse_spec(text, str(p))


def parse_spec(text: str, source: str) -> PipelineSpec:
    """Validate contract YAML text; ``source`` (a path or URI) names it in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ContractError(
            f"{source}: not valid YAML{where}: {getattr(err, 'problem', err)}. Fix the YAML there "
            "(indentation, a missing closing bracket or quote, a second ':' in a value)."
        ) from err
    if not isinstance(raw, dict):
        raise ContractError(
            f"{source}: expected a mapping of keys (name, owners, steps, ...), got {type(raw).__name__}."
        )
    try:
        return PipelineSpec.model_validate(raw)
    except ValidationError as err:
        raise ContractError(f"{source}: {format_validation_error(err)}") from err
