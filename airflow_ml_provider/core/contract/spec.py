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
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_ml_provider.core.contract.config import format_validation_error
from airflow_ml_provider.core.contract.dates import EARLIEST_START_DATE
from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.contract.spec_checks import ChecksSpec
from airflow_ml_provider.core.contract.spec_drift import DRIFT_TYPES, PREDICTION_COLUMN, ColumnThresholds, DriftSpec
from airflow_ml_provider.core.contract.spec_evaluation import EvaluationGate
from airflow_ml_provider.exceptions import ContractError

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
    """

    feature_lookback_days: int = Field(default=28, ge=1, le=3650)
    label_horizon_days: int = Field(default=7, ge=1, le=365)
    validation_days: int = Field(default=7, ge=1, le=365, description="the held-out test window")
    training_days: int = Field(default=28, ge=1, le=3650)
    early_stopping_days: int = Field(default=7, ge=0, le=365)


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
    shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description="user shards scored by parallel mapped tasks (a stable FARM_FINGERPRINT hash of the "
        "user id), then published as one partition; 1 scores in a single task",
    )


#: What an event type from ``event_types`` may look like (it is rendered as a SQL string literal).
EVENT_TYPE_VALUE = re.compile(r"[A-Za-z0-9_.:/ -]{1,64}")
#: Query parameters the contract sets itself; ``sql_params`` may not redefine them.
RESERVED_SQL_PARAMS = frozenset({"as_of", "lookback_days", "label_horizon_days", "candidates_per_user"})
__all__ = ["DRIFT_TYPES", "PREDICTION_COLUMN", "ColumnThresholds", "DriftSpec"]  # re-exported, defined in spec_drift


class PipelineSpec(_Strict):
    """The whole contract."""

    name: str
    description: str = ""
    owners: Owners
    start_date: dt.date = Field(
        default=EARLIEST_START_DATE, ge=EARLIEST_START_DATE, description="the first logical date the DAGs run for"
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
        "types not listed become 'unknown' (relevance 0), never silently weighted",
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
        if self.evaluation.baseline == "candidate_order" and order is None:
            raise ValueError("evaluation.baseline is candidate_order but evaluation.candidate_order names no feature")
        return self

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
            **self.sql_params,
            "as_of": as_of,
            "lookback_days": self.windows.feature_lookback_days,
            "label_horizon_days": self.windows.label_horizon_days,
            "candidates_per_user": self.candidates_per_user,
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
