"""Drift checks computed inside the warehouse: one SQL scan per table counts rows into the stored bins.

The reference profile (``core/profile.py``) fixes every column's bins once, at training.
A check generates one GoogleSQL aggregation per scanned table: a ``CASE`` per column maps
each row to a bin code and ``COUNTIF`` counts the codes, with ``segment_by`` as grouping sets
of the same scan. Python only ever sees those counts, and every metric comes from them.

Bin codes: ``0..m`` are the finite bins of a numeric column (``x <= e_0`` is 0, the open top
bin is ``m = len(edges)``) or the stored categories of a categorical one (``len(categories)``
is ``__OTHER__``); ``-1`` is null (and NaN), ``-2`` is +/-infinity. Count vectors are laid out
as ``[finite bins or categories..., other (categorical), null, inf (numeric)]``.

Numbers enter the SQL as ``repr`` of finite floats; category strings only as query parameters.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from airflow_ml_provider.core.identifiers import validate_identifier
from airflow_ml_provider.core.profile import NULL_LABEL, OTHER_LABEL
from airflow_ml_provider.exceptions import MLProviderError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_ml_provider.core.spec import DriftSpec, PipelineSpec
    from airflow_ml_provider.core.warehouse import Warehouse, WriteResult

NULL_CODE = -1
INF_CODE = -2
INF_LABEL = "__INF__"
#: The segment of every row: what the dataset verdict is computed on.
ALL_SEGMENTS = "__all__"
#: Metric names as stored in ``drift_results.metric``.
METRICS = ("psi", "js_distance", "l_inf", "null_rate_change", "new_category_share")
#: ``drift_results.feature`` of the dataset verdict row.
DATASET = "__dataset__"
RESULTS_TABLE = "drift_results"
PROFILES_TABLE = "drift_profiles"


class DriftProfileError(MLProviderError):
    """A stored reference profile cannot be used for a drift check (malformed, non-finite edges)."""


# --- bins ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnBins:
    """One column's bins and reference counts, from its reference profile."""

    name: str
    kind: str
    sql_type: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    reference: tuple[int, ...] = ()

    @classmethod
    def from_profile(cls, name: str, profile: Mapping[str, Any]) -> ColumnBins:
        """Validate one column's profile (as ``core.profile`` writes it) and lay out its bins."""
        validate_identifier(name, kind="drift column")
        kind = profile.get("kind", "numeric" if "edges" in profile else "categorical")
        try:
            if kind == "numeric":
                edges = tuple(_finite_float(e, name) for e in profile["edges"])
                if any(b <= a for a, b in itertools.pairwise(edges)):
                    raise ValueError("edges must be strictly increasing")
                counts = [*profile["counts"], profile["null"], profile.get("inf", 0)]
                bins = cls(
                    name, kind, str(profile.get("type", "FLOAT64")).upper(), edges=edges, reference=_ints(counts)
                )
            elif kind == "categorical":
                cats = tuple(profile["categories"])
                if not all(isinstance(c, str) for c in cats) or len(set(cats)) != len(cats):
                    raise ValueError("categories must be distinct strings")
                counts = [*profile["counts"], profile["other"], profile["null"]]
                bins = cls(
                    name, kind, str(profile.get("type", "STRING")).upper(), categories=cats, reference=_ints(counts)
                )
            else:
                raise ValueError(f"kind {kind!r} is neither numeric nor categorical")
        except (KeyError, TypeError, ValueError) as err:
            detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
            raise DriftProfileError(
                f"the reference profile of column {name!r} is malformed ({detail}). Retrain the model to rebuild it."
            ) from err
        if len(bins.reference) != len(bins.labels):
            raise DriftProfileError(
                f"the reference profile of column {name!r} has {len(bins.reference) - 2} bin counts for "
                f"{len(bins.labels) - 2} bins. Retrain the model to rebuild it."
            )
        return bins

    @property
    def labels(self) -> list[str]:
        """A readable label per bin, in count-vector order."""
        if self.kind == "categorical":
            return [*self.categories, OTHER_LABEL, NULL_LABEL]
        e = [repr(x) for x in self.edges]
        if not e:
            return ["(-inf, inf)", NULL_LABEL, INF_LABEL]
        inner = [f"({a}, {b}]" for a, b in itertools.pairwise(e)]
        return [f"(-inf, {e[0]}]", *inner, f"({e[-1]}, inf)", NULL_LABEL, INF_LABEL]

    @property
    def codes(self) -> list[int]:
        """The SQL bin code per bin, in count-vector order."""
        if self.kind == "categorical":
            return [*range(len(self.categories) + 1), NULL_CODE]
        return [*range(len(self.edges) + 1), NULL_CODE, INF_CODE]

    @property
    def null_index(self) -> int:
        """Position of the null bin in the count vector."""
        return self.codes.index(NULL_CODE)

    def with_reference(self, counts: Sequence[int]) -> ColumnBins:
        """The same bins with other reference counts (a segment's)."""
        return ColumnBins(self.name, self.kind, self.sql_type, self.edges, self.categories, _ints(counts))

    def to_profile(self, counts: Sequence[int] | None = None) -> dict[str, Any]:
        """The profile dict (``core.profile`` format) of these bins with ``counts`` (default: the reference)."""
        c = [int(x) for x in (self.reference if counts is None else counts)]
        n = sum(c)
        body: dict[str, Any] = {"kind": self.kind, "type": self.sql_type, "n": n}
        if self.kind == "categorical":
            body |= {"categories": list(self.categories), "counts": c[:-2], "other": c[-2], "null": c[-1]}
        else:
            body |= {"edges": list(self.edges), "counts": c[:-2], "null": c[-2], "inf": c[-1]}
        return body | {"null_share": body["null"] / n if n else 0.0}


def _finite_float(value: Any, column: str) -> float:
    """``value`` as a finite float, or an error: only finite numbers may become SQL literals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"edge {value!r} is not a finite number")
    return float(value) + 0.0  # -0.0 -> 0.0


def _ints(counts: Sequence[Any]) -> tuple[int, ...]:
    """Counts as non-negative Python ints."""
    out = tuple(int(c) for c in counts)
    if any(c < 0 or c != x for c, x in zip(out, counts, strict=True)):
        raise ValueError("counts must be non-negative integers")
    return out


def profile_bins(profile: Mapping[str, Any], columns: Sequence[str] | None = None) -> dict[str, ColumnBins]:
    """Bins of the ``columns`` (default: all) of a ``{"column": profile}`` mapping, in its order."""
    names = [c for c in profile if columns is None or c in columns]
    return {name: ColumnBins.from_profile(name, profile[name]) for name in names}


# --- SQL -----------------------------------------------------------------------------------


def sql_float(value: float) -> str:
    """A finite float as a GoogleSQL literal that parses back to the same double (``repr`` round-trips)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DriftProfileError(f"{value!r} cannot be a SQL number: only finite floats become literals.")
    return repr(float(value) + 0.0)


def bin_case(bins: ColumnBins, index: int) -> tuple[str, dict[str, str]]:
    """The ``CASE`` that maps column ``bins.name`` to its bin code, and the parameters it uses."""
    col = f"`{validate_identifier(bins.name, kind='drift column')}`"
    if bins.kind == "categorical":
        params = {f"c{index}_{j}": cat for j, cat in enumerate(bins.categories)}
        whens = [f"WHEN {col} = @{p} THEN {j}" for j, p in enumerate(params)]
        return f"CASE WHEN {col} IS NULL THEN {NULL_CODE} {' '.join(whens)} ELSE {len(params)} END", params
    x = f"CAST({col} AS INT64)" if bins.sql_type == "BOOL" else col
    whens = [f"WHEN {x} IS NULL THEN {NULL_CODE}"]
    if bins.sql_type not in ("INT64", "BOOL"):
        whens += [f"WHEN IS_NAN({x}) THEN {NULL_CODE}", f"WHEN IS_INF({x}) THEN {INF_CODE}"]
    whens += [f"WHEN {x} <= {sql_float(e)} THEN {i}" for i, e in enumerate(bins.edges)]
    return f"CASE {' '.join(whens)} ELSE {len(bins.edges)} END", {}


@dataclass(frozen=True)
class Scan:
    """One table scan of a check: which rows (partition range and equality filters) and which columns."""

    table: str
    partition_column: str
    columns: tuple[ColumnBins, ...]
    filters: Mapping[str, Any] = field(default_factory=dict)
    segment_by: tuple[str, ...] = ()


def scan_sql(scan: Scan, start: dt.date, end: dt.date, max_segments: int = 50) -> tuple[str, dict[str, Any]]:
    """One GoogleSQL aggregation counting every column of ``scan`` into its bins, per segment and in total."""
    table = validate_identifier(scan.table)
    part = validate_identifier(scan.partition_column, kind="partition column")
    params: dict[str, Any] = {"start": start, "end": end}
    where = [f"`{part}` BETWEEN @start AND @end"]
    for i, (column, value) in enumerate(scan.filters.items()):
        where.append(f"`{validate_identifier(column, kind='filter column')}` = @f{i}")
        params[f"f{i}"] = value
    segs = [f"s{i}" for i in range(len(scan.segment_by))]
    selects = [
        f"CAST(`{validate_identifier(c, kind='segment column')}` AS STRING) AS {s}"
        for c, s in zip(scan.segment_by, segs, strict=True)
    ]
    counts = ["COUNT(*) AS n"]
    for i, bins in enumerate(scan.columns):
        case, used = bin_case(bins, i)
        selects.append(f"{case} AS b{i}")
        params.update(used)
        counts += [f"COUNTIF(b{i} = {code}) AS {_count_alias(i, code)}" for code in bins.codes]
    body = ",\n    ".join(selects) or "1 AS one"
    sql = f"WITH binned AS (\n  SELECT\n    {body}\n  FROM `{table}`\n  WHERE {' AND '.join(where)}\n)\n"
    if not segs:
        return sql + f"SELECT {', '.join(counts)}\nFROM binned", params
    keys = ", ".join(segs)
    return (
        sql
        + f"SELECT {keys}, GROUPING({segs[0]}) AS is_total, {', '.join(counts)}\nFROM binned\n"
        + f"GROUP BY GROUPING SETS (({keys}), ())\nORDER BY is_total DESC, n DESC, {keys}\n"
        + f"LIMIT {int(max_segments) + 1}"
    ), params


def _count_alias(index: int, code: int) -> str:
    """Output column of one bin's count: ``b3_0``, ``b3_null``, ``b3_inf``."""
    return f"b{index}_" + {NULL_CODE: "null", INF_CODE: "inf"}.get(code, str(code))


def segment_key(segment_by: Sequence[str], values: Sequence[str | None]) -> str:
    """``col=value`` pairs joined by commas; a null value is ``__NULL__``."""
    return ",".join(f"{c}={NULL_LABEL if v is None else v}" for c, v in zip(segment_by, values, strict=True))


def parse_counts(rows: list[dict[str, Any]], scan: Scan) -> dict[str, dict[str, np.ndarray]]:
    """Scan output rows -> segment -> column -> count vector; the total is ``ALL_SEGMENTS``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for row in rows:
        is_total = not scan.segment_by or row["is_total"]
        key = (
            ALL_SEGMENTS
            if is_total
            else segment_key(scan.segment_by, [row[f"s{i}"] for i in range(len(scan.segment_by))])
        )
        out[key] = {
            bins.name: np.array([row[_count_alias(i, c)] or 0 for c in bins.codes], dtype=np.int64)
            for i, bins in enumerate(scan.columns)
        }
    # An empty partition: no grand-total row on some engines; every count is zero.
    out.setdefault(ALL_SEGMENTS, {b.name: np.zeros(len(b.codes), dtype=np.int64) for b in scan.columns})
    return out


def run_scan(
    warehouse: Warehouse, scan: Scan, start: dt.date, end: dt.date | None = None, max_segments: int = 50
) -> dict[str, dict[str, np.ndarray]]:
    """Run the scan's one query on the warehouse; return segment -> column -> bin counts."""
    sql, params = scan_sql(scan, start, end or start, max_segments)
    rows = warehouse.query(sql, params, source=f"drift scan of {scan.table}").to_pylist()
    return parse_counts(rows, scan)


# --- metrics (from bins only) -----------------------------------------------------------------


def _shares(counts: np.ndarray) -> np.ndarray:
    """Counts as proportions (all zero when there are no rows)."""
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index: sum of (q - p) ln(q / p), with ``epsilon`` for the share of an empty bin."""
    p, q = _shares(reference), _shares(current)
    p, q = np.where(p > 0, p, epsilon), np.where(q > 0, q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same distribution, 1 = disjoint)."""
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2
    divergence = 0.0
    for a in (p, q):
        used = a > 0
        divergence += 0.5 * float(np.sum(a[used] * np.log2(a[used] / m[used])))
    return math.sqrt(max(divergence, 0.0))


def l_inf(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest absolute difference between the bin shares."""
    return float(np.max(np.abs(_shares(reference) - _shares(current))))


def new_category_share(bins: ColumnBins, current: np.ndarray) -> float:
    """Share of current non-null values outside the reference's categories (categorical columns).

    When the reference kept every category it saw (its ``__OTHER__`` is empty), that is exactly
    the share of categories never seen in training. Otherwise the profile does not keep the long
    tail, so it is the growth of the ``__OTHER__`` share over the reference's, floored at 0.
    """
    ref = np.asarray(bins.reference)
    other = len(bins.categories)

    def other_share(c: np.ndarray) -> float:
        non_null = c[:-1].sum()
        return float(c[other] / non_null) if non_null else 0.0

    return other_share(current) if ref[other] == 0 else max(0.0, other_share(current) - other_share(ref))


def column_metrics(bins: ColumnBins, current: np.ndarray, epsilon: float) -> dict[str, float]:
    """Every metric of one column from its reference and current bin counts."""
    ref = np.asarray(bins.reference, dtype=np.int64)
    null = bins.null_index
    out = {
        "psi": psi(ref, current, epsilon),
        "js_distance": js_distance(ref, current),
        "l_inf": l_inf(ref, current),
        "null_rate_change": float(_shares(current)[null] - _shares(ref)[null]),
    }
    if bins.kind == "categorical":
        out["new_category_share"] = new_category_share(bins, current)
    return out


# --- results and verdict ------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnResult:
    """One column of one segment of one scanned table: its metrics and severity, or why it was skipped."""

    table: str
    segment: str
    column: str
    kind: str
    status: str  # evaluated | skipped
    severity: str | None  # ok | warn | drift; None when skipped
    metrics: dict[str, float]
    warn_threshold: float
    threshold: float
    n_ref: int
    n_cur: int
    null_rate_ref: float | None
    null_rate_cur: float | None
    skip_reason: str | None = None


def skip_reason(bins: ColumnBins, current: np.ndarray, min_rows: int) -> str | None:
    """Why a column cannot be judged (empty, too small, constant reference), or None."""
    n_ref, n_cur = sum(bins.reference), int(current.sum())
    if n_ref == 0:
        return "empty: the reference profile has no rows"
    if n_cur == 0:
        return "empty: no current rows"
    if n_cur < min_rows:
        return f"too_small: {n_cur} current rows, fewer than min_rows={min_rows}"
    if n_ref < min_rows:
        return f"too_small: {n_ref} reference rows, fewer than min_rows={min_rows}"
    populated = [label for label, c in zip(bins.labels, bins.reference, strict=True) if c]
    if len(populated) == 1:
        return f"constant: every reference row is in one bin ({populated[0]}), so PSI cannot tell drift from noise"
    return None


def evaluate_column(
    bins: ColumnBins,
    current: np.ndarray,
    *,
    table: str,
    segment: str,
    levels: tuple[float, float],
    epsilon: float,
    min_rows: int,
) -> ColumnResult:
    """Metrics and severity of one column (PSI >= drift level: drift; >= warn level: warn), or a skip."""
    ref = np.asarray(bins.reference, dtype=np.int64)
    n_ref, n_cur = int(ref.sum()), int(current.sum())
    null = bins.null_index
    rates = (ref[null] / n_ref if n_ref else None, current[null] / n_cur if n_cur else None)
    reason = skip_reason(bins, current, min_rows)
    metrics = {} if reason else column_metrics(bins, current, epsilon)
    severity = None
    if not reason:
        severity = "drift" if metrics["psi"] >= levels[1] else "warn" if metrics["psi"] >= levels[0] else "ok"
    return ColumnResult(
        table=table,
        segment=segment,
        column=bins.name,
        kind=bins.kind,
        status="skipped" if reason else "evaluated",
        severity=severity,
        metrics=metrics,
        warn_threshold=levels[0],
        threshold=levels[1],
        n_ref=n_ref,
        n_cur=n_cur,
        null_rate_ref=None if rates[0] is None else float(rates[0]),
        null_rate_cur=None if rates[1] is None else float(rates[1]),
        skip_reason=reason,
    )


def skipped_column(
    bins: ColumnBins, *, table: str, segment: str, levels: tuple[float, float], reason: str
) -> ColumnResult:
    """A column that could not be scanned at all (not in the table, wrong type, no reference)."""
    return ColumnResult(
        table=table,
        segment=segment,
        column=bins.name,
        kind=bins.kind,
        status="skipped",
        severity=None,
        metrics={},
        warn_threshold=levels[0],
        threshold=levels[1],
        n_ref=sum(bins.reference),
        n_cur=0,
        null_rate_ref=None,
        null_rate_cur=None,
        skip_reason=reason,
    )


@dataclass(frozen=True)
class Verdict:
    """The dataset's verdict from the whole-population columns."""

    verdict: str  # drift | warn | ok | skipped
    drifted: list[str]
    warned: list[str]
    evaluated: int
    drifted_share: float


def dataset_verdict(results: Sequence[ColumnResult], critical: Sequence[str], drifted_share: float = 0.5) -> Verdict:
    """Drift when a critical column drifts or the drifted share is >= ``drifted_share``; warn when any warns.

    Segments inform but do not vote: the thresholds are calibrated on the whole population,
    and a small segment's PSI is noisier.
    """
    judged = [r for r in results if r.segment == ALL_SEGMENTS and r.status == "evaluated"]
    drifted = [r.column for r in judged if r.severity == "drift"]
    warned = [r.column for r in judged if r.severity == "warn"]
    share = len(drifted) / len(judged) if judged else 0.0
    if not judged:
        verdict = "skipped"
    elif set(drifted) & set(critical) or share >= drifted_share:
        verdict = "drift"
    else:
        verdict = "warn" if drifted or warned else "ok"
    return Verdict(verdict, drifted, warned, len(judged), share)


def compare(
    bins: Mapping[str, ColumnBins],
    counts: Mapping[str, Mapping[str, np.ndarray]],
    config: DriftSpec,
    *,
    table: str,
    segment_refs: Mapping[str, Mapping[str, ColumnBins]] | None = None,
) -> list[ColumnResult]:
    """Evaluate every column of every segment of one scan (segments against their own reference)."""
    results = []
    for segment, columns in counts.items():
        is_total = segment == ALL_SEGMENTS
        refs = bins if is_total else (segment_refs or {}).get(segment, {})
        min_rows = config.min_rows if is_total else max(config.min_rows, config.min_segment_rows)
        for name, current in columns.items():
            levels = config.levels(name)
            if name not in refs:
                reason = "no_reference: the segment has no rows in the training window"
                results.append(skipped_column(bins[name], table=table, segment=segment, levels=levels, reason=reason))
                continue
            results.append(
                evaluate_column(
                    refs[name],
                    current,
                    table=table,
                    segment=segment,
                    levels=levels,
                    epsilon=config.epsilon,
                    min_rows=min_rows,
                )
            )
    return results


# --- one check: the scans of a date, against one model version ------------------------------------------

#: Partition columns of the tables a check scans (as the feature and inference operators write them).
FEATURES_PARTITION = "as_of_date"
PREDICTIONS_PARTITION = "prediction_date"


def _is_string_type(sql_type: str) -> bool:
    """Whether a warehouse column type (GoogleSQL or DuckDB) holds strings."""
    return sql_type.upper().startswith(("STRING", "VARCHAR", "TEXT"))


def scannable(
    bins: Mapping[str, ColumnBins], table_types: Mapping[str, str], table: str
) -> tuple[list[ColumnBins], dict[str, str]]:
    """Columns the table can be scanned for, and why the others cannot (missing, or a changed type)."""
    ok, why = [], {}
    for name, b in bins.items():
        if name not in table_types:
            why[name] = f"not_in_table: table {table} has no column {name}"
        elif _is_string_type(table_types[name]) != (b.kind == "categorical"):
            why[name] = f"type_mismatch: the reference is {b.kind} but {table}.{name} is {table_types[name]}"
        else:
            ok.append(b)
    return ok, why


def check_table(
    warehouse: Warehouse,
    scan: Scan,
    day: dt.date,
    config: DriftSpec,
    *,
    skipped: Mapping[str, str] | None = None,
    segment_refs: Mapping[str, Mapping[str, ColumnBins]] | None = None,
) -> list[ColumnResult]:
    """Scan one table for ``day`` (one query) and judge every column; ``skipped`` maps column -> reason."""
    results = [
        skipped_column(b, table=scan.table, segment=ALL_SEGMENTS, levels=config.levels(b.name), reason=reason)
        for b in scan.columns
        if (reason := (skipped or {}).get(b.name))
    ]
    live = Scan(
        scan.table,
        scan.partition_column,
        tuple(b for b in scan.columns if b.name not in (skipped or {})),
        scan.filters,
        scan.segment_by,
    )
    if live.columns:
        counts = run_scan(warehouse, live, day, max_segments=config.max_segments)
        bins = {b.name: b for b in live.columns}
        results += compare(bins, counts, config, table=scan.table, segment_refs=segment_refs)
    return results


def check_drift(
    warehouse: Warehouse,
    spec: PipelineSpec,
    profile: Mapping[str, Any],
    day: dt.date,
    *,
    model_name: str,
    model_version: str,
    run_id: str,
    train_window: tuple[dt.date, dt.date] | None = None,
    predictions_table: str | None = "recommendations",
) -> DriftReport:
    """Check ``day``'s features (one scan) and, when the contract asks, its recommendation scores (one scan)."""
    from airflow_ml_provider.core.spec import PREDICTION_COLUMN

    config = spec.drift
    features = profile.get("features") or {}
    bins = profile_bins(features, config.monitored([c for c in features if c != PREDICTION_COLUMN]))
    table = spec.feature_table
    types = warehouse.table_columns(table)
    live, skipped = scannable(bins, types, table)
    missing = [c for c in config.segment_by if c not in types]
    if missing:
        raise DriftProfileError(
            f"drift.segment_by names {missing}, which table {table} does not have. Segment by columns of {table}."
        )
    scan = Scan(table, FEATURES_PARTITION, tuple(bins.values()), segment_by=tuple(config.segment_by))
    refs = None
    if scan.segment_by and train_window:
        live_scan = Scan(table, FEATURES_PARTITION, tuple(live), segment_by=scan.segment_by)
        refs = segment_refs(warehouse, live_scan, model_name, model_version, train_window, config.max_segments)
    results = check_table(warehouse, scan, day, config, skipped=skipped, segment_refs=refs)
    if predictions_table and config.predictions and config.monitored([PREDICTION_COLUMN]):
        results += check_predictions(warehouse, profile, day, config, predictions_table, model_name, model_version)
    verdict = dataset_verdict(results, config.critical_features, config.drifted_share)
    return DriftReport(day, run_id, model_name, model_version, results, verdict)


def check_predictions(
    warehouse: Warehouse,
    profile: Mapping[str, Any],
    day: dt.date,
    config: DriftSpec,
    table: str,
    model_name: str,
    model_version: str,
) -> list[ColumnResult]:
    """Prediction drift: the day's recommendation scores of this model version against its top-k validation scores."""
    from airflow_ml_provider.core.spec import PREDICTION_COLUMN

    reference = profile.get("score_topk")
    if not reference:
        placeholder = ColumnBins(PREDICTION_COLUMN, "numeric", "FLOAT64", reference=(0, 0, 0))
        reason = "no_reference: the model envelope has no score_topk profile; retrain to build one"
        return [
            skipped_column(
                placeholder, table=table, segment=ALL_SEGMENTS, levels=config.levels(PREDICTION_COLUMN), reason=reason
            )
        ]
    bins = {
        PREDICTION_COLUMN: ColumnBins.from_profile(
            PREDICTION_COLUMN, {"kind": "numeric", "type": "FLOAT64", **reference}
        )
    }
    _, skipped = scannable(bins, warehouse.table_columns(table), table)
    scan = Scan(
        table,
        PREDICTIONS_PARTITION,
        tuple(bins.values()),
        filters={"model_name": model_name, "model_version": model_version},
    )
    return check_table(warehouse, scan, day, config, skipped=skipped)


# --- the report: drift_results rows and the task's summary ------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    """Everything one check found for one logical date."""

    logical_date: dt.date
    run_id: str
    model_name: str
    model_version: str
    columns: list[ColumnResult]
    verdict: Verdict

    def worst(self) -> ColumnResult | None:
        """The whole-population column with the highest PSI."""
        judged = [r for r in self.columns if r.segment == ALL_SEGMENTS and r.status == "evaluated"]
        return max(judged, key=lambda r: r.metrics["psi"], default=None)

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary for XCom and the asset event."""
        worst = self.worst()
        whole = [r for r in self.columns if r.segment == ALL_SEGMENTS]
        segments = sorted({r.segment for r in self.columns if r.segment != ALL_SEGMENTS and r.severity == "drift"})
        return {
            "verdict": self.verdict.verdict,
            "logical_date": self.logical_date.isoformat(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "drifted": self.verdict.drifted,
            "warned": self.verdict.warned,
            "drifted_share": round(self.verdict.drifted_share, 4),
            "worst_psi": {"column": worst.column, "psi": round(worst.metrics["psi"], 6)} if worst else None,
            "evaluated": self.verdict.evaluated,
            "skipped": {r.column: r.skip_reason for r in whole if r.status == "skipped"},
            "segments_drifted": segments[:20],
        }

    def table(self) -> list[str]:
        """The whole-population results as aligned text lines, worst PSI first (for logs and the CLI)."""
        whole = [r for r in self.columns if r.segment == ALL_SEGMENTS]
        whole.sort(key=lambda r: (r.status != "evaluated", -r.metrics.get("psi", 0.0), r.column))
        lines = [f"{'table':<16} {'column':<28} {'psi':>8} {'js':>7} {'l_inf':>7} {'nulls':>7}  severity"]
        for r in whole:
            if r.status == "skipped":
                lines.append(f"{r.table:<16} {r.column:<28} {'':>8} {'':>7} {'':>7} {'':>7}  skipped ({r.skip_reason})")
                continue
            m = r.metrics
            lines.append(
                f"{r.table:<16} {r.column:<28} {m['psi']:>8.4f} {m['js_distance']:>7.4f} {m['l_inf']:>7.4f} "
                f"{m['null_rate_change']:>+7.3f}  {r.severity}"
            )
        v = self.verdict
        lines.append(
            f"verdict {v.verdict}: {len(v.drifted)} of {v.evaluated} columns drifted ({v.drifted_share:.0%})"
            + (f": {', '.join(v.drifted)}" if v.drifted else "")
        )
        return lines

    def rows(self, checked_at: dt.datetime) -> list[dict[str, Any]]:
        """``drift_results`` rows: one per column and metric (one for a skipped column), plus the verdict row."""
        base = {
            "logical_date": self.logical_date,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "checked_at": checked_at,
        }
        out = []
        for r in self.columns:
            common = {
                **base,
                "table_name": r.table,
                "segment": r.segment,
                "feature": r.column,
                "kind": r.kind,
                "status": r.status,
                "skip_reason": r.skip_reason,
                "n_ref": r.n_ref,
                "n_cur": r.n_cur,
                "null_rate_ref": r.null_rate_ref,
                "null_rate_cur": r.null_rate_cur,
            }
            for metric in [m for m in METRICS if m in r.metrics] or ["psi"]:
                is_psi = metric == "psi"
                out.append(
                    {
                        **common,
                        "metric": metric,
                        "value": r.metrics.get(metric),
                        "warn_threshold": r.warn_threshold if is_psi else None,
                        "threshold": r.threshold if is_psi else None,
                        "severity": r.severity if is_psi else ("info" if r.severity else None),
                    }
                )
        v = self.verdict
        out.append(
            {
                **base,
                "table_name": None,
                "segment": ALL_SEGMENTS,
                "feature": DATASET,
                "kind": None,
                "metric": "drifted_share",
                "value": v.drifted_share,
                "warn_threshold": None,
                "threshold": None,
                "severity": v.verdict,
                "status": "skipped" if v.verdict == "skipped" else "evaluated",
                "skip_reason": "every column was skipped" if v.verdict == "skipped" else None,
                "n_ref": None,
                "n_cur": None,
                "null_rate_ref": None,
                "null_rate_cur": None,
            }
        )
        return out

    def to_arrow(self, checked_at: dt.datetime) -> pa.Table:
        """The ``drift_results`` rows as Arrow, typed as the table's DDL."""
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows(checked_at), schema=results_schema())


def results_schema() -> pa.Schema:
    """Arrow schema of ``drift_results`` (see sql/ddl/drift_results.sql), partition column first."""
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    return pa.schema(
        [
            ("logical_date", pa.date32()),
            ("run_id", s),
            ("model_name", s),
            ("model_version", s),
            ("table_name", s),
            ("segment", s),
            ("feature", s),
            ("kind", s),
            ("metric", s),
            ("value", f),
            ("warn_threshold", f),
            ("threshold", f),
            ("severity", s),
            ("status", s),
            ("skip_reason", s),
            ("n_ref", i),
            ("n_cur", i),
            ("null_rate_ref", f),
            ("null_rate_cur", f),
            ("checked_at", pa.timestamp("us", tz="UTC")),
        ]
    )


# --- stored profiles: the drift_profiles table -------------------------------------------------------


def ensure_tables(warehouse: Warehouse) -> None:
    """Create ``drift_results`` and ``drift_profiles`` from their DDL in sql/ddl/ unless they exist."""
    from airflow_ml_provider.core import ddl

    ddl.ensure_tables(warehouse, RESULTS_TABLE, PROFILES_TABLE)


def write_results(warehouse: Warehouse, report: DriftReport) -> WriteResult:
    """Replace the date's ``drift_results`` partition with the report, keeping other models' rows of that date."""
    import pyarrow as pa

    ensure_tables(warehouse)
    schema = results_schema()
    others = warehouse.query(
        f"SELECT * FROM {RESULTS_TABLE} WHERE logical_date = @day AND model_name != @model_name",
        {"day": report.logical_date, "model_name": report.model_name},
        source=f"{RESULTS_TABLE} (other models)",
    ).select(schema.names)
    rows = pa.concat_tables([others.cast(schema), report.to_arrow(dt.datetime.now(dt.UTC))])
    return warehouse.replace_partition(
        RESULTS_TABLE, "logical_date", report.logical_date, rows, cluster_by=("model_name", "feature")
    )


def profile_rows(profile: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(scope, column, column profile) of a model profile: features, and ``score`` from ``score_topk``."""
    rows = [("feature", name, dict(body)) for name, body in (profile.get("features") or {}).items()]
    if profile.get("score_topk"):
        rows.append(("prediction", "score", {"kind": "numeric", "type": "FLOAT64", **profile["score_topk"]}))
    return rows


def insert_profiles(
    warehouse: Warehouse,
    model_name: str,
    version: str,
    rows: Sequence[tuple[str, str, dict[str, Any]]],
    *,
    segment_by: Sequence[str] = (),
    segments: Sequence[str] = (),
) -> int:
    """Insert profile rows for one version and ``segment_by`` in ONE statement, unless already stored.

    ``rows`` are (scope, column, profile); ``segments`` gives each row's segment (default: all rows).
    The ``NOT EXISTS`` guard makes a rerun a no-op, and one statement is all or nothing.
    """
    if not rows:
        return 0
    params: dict[str, Any] = {"model_name": model_name, "version": version, "segment_by": ",".join(segment_by)}
    selects = []
    for i, (scope, column, body) in enumerate(rows):
        bins = ColumnBins.from_profile(column, body)  # validates before anything is stored
        params |= {
            f"scope{i}": scope,
            f"col{i}": column,
            f"seg{i}": segments[i] if segments else ALL_SEGMENTS,
            f"kind{i}": bins.kind,
            f"n{i}": int(sum(bins.reference)),
            f"null{i}": float(bins.to_profile()["null_share"]),
            f"prof{i}": json.dumps(body, sort_keys=True, allow_nan=False),
        }
        selects.append(
            f"SELECT @scope{i} AS scope, @col{i} AS column_name, @seg{i} AS segment, @kind{i} AS kind, "
            f"@n{i} AS n, @null{i} AS null_share, @prof{i} AS profile"
        )
    sql = f"""INSERT INTO {PROFILES_TABLE}
  (model_name, model_version, scope, column_name, segment_by, segment, kind, n, null_share, profile, created_at)
SELECT @model_name, @version, r.scope, r.column_name, @segment_by, r.segment, r.kind, r.n, r.null_share,
  PARSE_JSON(r.profile), CURRENT_TIMESTAMP()
FROM (
  {" UNION ALL ".join(selects)}
) AS r
WHERE NOT EXISTS (
  SELECT 1 FROM {PROFILES_TABLE} AS d
  WHERE d.model_name = @model_name AND d.model_version = @version AND d.segment_by = @segment_by
)"""
    warehouse.execute(sql, params, source=f"{PROFILES_TABLE} insert")
    return len(rows)


def store_profile(warehouse: Warehouse, model_name: str, version: str, profile: Mapping[str, Any]) -> int:
    """Store a model version's reference profile in ``drift_profiles`` (one row per column); idempotent.

    Call it when a model is registered: analysts query the stored baselines, and the
    table is where a check keeps segment references it builds for the same version.
    """
    ensure_tables(warehouse)
    return insert_profiles(warehouse, model_name, version, profile_rows(profile))


def load_segment_refs(
    warehouse: Warehouse, model_name: str, version: str, segment_by: Sequence[str], bins: Mapping[str, ColumnBins]
) -> dict[str, dict[str, ColumnBins]] | None:
    """Stored segment references (segment -> column -> bins) of a version, or None when none are stored."""
    sql = f"""SELECT segment, column_name, TO_JSON_STRING(profile) AS profile FROM {PROFILES_TABLE}
WHERE model_name = @model_name AND model_version = @version AND segment_by = @segment_by AND scope = 'feature'"""
    params = {"model_name": model_name, "version": version, "segment_by": ",".join(segment_by)}
    rows = warehouse.query(sql, params, source=f"{PROFILES_TABLE} segment references").to_pylist()
    if not rows:
        return None
    out: dict[str, dict[str, ColumnBins]] = {}
    for row in rows:
        if row["column_name"] in bins:
            out.setdefault(row["segment"], {})[row["column_name"]] = ColumnBins.from_profile(
                row["column_name"], json.loads(row["profile"])
            )
    return out


def segment_refs(
    warehouse: Warehouse,
    scan: Scan,
    model_name: str,
    version: str,
    window: tuple[dt.date, dt.date],
    max_segments: int,
) -> dict[str, dict[str, ColumnBins]]:
    """Per-segment reference counts in the stored bins, built once per version from its training window."""
    bins = {b.name: b for b in scan.columns}
    ensure_tables(warehouse)
    stored = load_segment_refs(warehouse, model_name, version, scan.segment_by, bins)
    if stored is not None:
        return stored
    counts = run_scan(warehouse, scan, window[0], window[1], max_segments)
    counts.pop(ALL_SEGMENTS, None)  # the whole population's reference is the envelope's profile
    refs = {seg: {n: bins[n].with_reference(c.tolist()) for n, c in cols.items()} for seg, cols in counts.items()}
    rows = [("feature", n, b.to_profile()) for cols in refs.values() for n, b in cols.items()]
    segments = [seg for seg, cols in refs.items() for _ in cols]
    insert_profiles(warehouse, model_name, version, rows, segment_by=scan.segment_by, segments=segments)
    return refs


# --- the numpy reference (tests and the benchmark only) -------------------------------------------------


def numpy_counts(bins: ColumnBins, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Bin counts of raw values, the straightforward way (no SQL): the reference the SQL path must match."""
    import pandas as pd

    s = pd.Series(values, dtype=object)
    out = np.zeros(len(bins.codes), dtype=np.int64)
    null = s.isna().to_numpy()
    if bins.kind == "categorical":
        idx = {c: j for j, c in enumerate(bins.categories)}
        for v in s[~null]:
            out[idx.get(str(v), len(bins.categories))] += 1
        out[-1] = null.sum()
        return out
    x = pd.to_numeric(s, errors="raise").astype(np.float64).to_numpy()
    nan = np.isnan(x)
    inf = np.isinf(x)
    finite = x[~nan & ~inf]
    for i in range(len(bins.edges) + 1):
        lo = -np.inf if i == 0 else bins.edges[i - 1]
        hi = np.inf if i == len(bins.edges) else bins.edges[i]
        out[i] = np.count_nonzero((finite > lo) & (finite <= hi))
    out[-2], out[-1] = nan.sum(), inf.sum()
    return out


def numpy_metrics(reference: np.ndarray, current: np.ndarray, epsilon: float = 1e-4) -> dict[str, float]:
    """PSI, JS distance (base 2) and L-infinity written out term by term, for cross-checking ``column_metrics``."""
    p = [r / sum(reference) for r in reference]
    q = [c / sum(current) for c in current]
    psi_value = sum(
        ((b or epsilon) - (a or epsilon)) * math.log((b or epsilon) / (a or epsilon)) for a, b in zip(p, q, strict=True)
    )
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log2(a / c) for a, c in zip(p, m, strict=True) if a > 0)
    kl_q = sum(b * math.log2(b / c) for b, c in zip(q, m, strict=True) if b > 0)
    return {
        "psi": psi_value,
        "js_distance": math.sqrt(max(0.0, (kl_p + kl_q) / 2)),
        "l_inf": max(abs(a - b) for a, b in zip(p, q, strict=True)),
    }
