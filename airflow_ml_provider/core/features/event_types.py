"""The ``unknown_event_types`` data check: events the contract's ``event_types`` does not map.

``{{ source('events') }}`` renders every raw type that ``event_types`` does not list as
``'unknown'``, and the reference SQL weighs those nothing; only the SQL's own types that the
mapping does not mention keep their meaning (``PipelineSpec.event_type_mapping``). That is
safe, but silent: this check counts the unknown ones (and names the types) in the source table
itself, over the feature lookback window. Without an ``event_types`` mapping the known types
are the ones the reference SQL reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.contract.spec import SQL_EVENT_TYPES
from airflow_ml_provider.core.features.checks import CheckQuery, CheckResult, _result

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec

#: How many unknown types the message names (the most frequent first).
NAMED_TYPES = 5


def known_event_types(spec: PipelineSpec) -> list[str]:
    """The raw event types the SQL will weigh: the mapped ones and the SQL's own that keep their meaning."""
    if spec.event_types:
        return sorted({raw for raws in spec.event_type_mapping.values() for raw in raws})
    return list(SQL_EVENT_TYPES)


def _known_text(spec: PipelineSpec) -> str:
    """The known types for a message: the mapped ones, then the SQL's own that keep their meaning."""
    if not spec.event_types:
        return ", ".join(SQL_EVENT_TYPES)
    mapped = sorted({raw for raws in spec.event_types.values() for raw in raws})
    kept = [t for t in SQL_EVENT_TYPES if t in spec.event_type_mapping and t not in spec.event_types]
    return ", ".join(mapped) + (f"; {', '.join(kept)} as themselves" if kept else "")


def unknown_event_types_query(spec: PipelineSpec, as_of: dt.date) -> CheckQuery | None:
    """One aggregation over the raw events table: events in the lookback whose type is not known."""
    ev = spec.checks.events
    if ev is None or ev.source not in spec.sources:
        return None
    if ev.unknown_event_types is None and ev.event_type_variants is None:
        return None
    check = ev.unknown_event_types
    table = validate_identifier(spec.sources[ev.source])
    columns = spec.source_columns.get(ev.source, {})
    type_col = validate_identifier(columns.get("event_type") or "event_type", kind="event type column")
    ts = validate_identifier(columns.get("event_ts") or ev.timestamp_column, kind="timestamp column")
    known = known_event_types(spec)
    params: dict[str, Any] = {"chk_as_of": as_of, "chk_lookback": spec.windows.feature_lookback_days}
    params.update({f"chk_known_{i}": t for i, t in enumerate(known)})
    names = ", ".join(f"@chk_known_{i}" for i in range(len(known)))
    params.update({f"chk_lower_{i}": t.strip().lower() for i, t in enumerate(known)})
    lowered = ", ".join(f"@chk_lower_{i}" for i in range(len(known)))
    is_unknown = f"({type_col} IS NULL OR {type_col} NOT IN ({names}))"
    # A known type in another case or with spaces: the SQL weighs it nothing, like any unknown one.
    is_variant = f"({is_unknown} AND LOWER(TRIM({type_col})) IN ({lowered}))"
    # One row per type first (few), so the outer aggregation names the unknown ones and their counts.
    sql = (
        "SELECT\n  SUM(n) AS chk_total,\n  SUM(IF(chk_is_unknown, n, 0)) AS chk_unknown,\n"
        "  STRING_AGG(IF(chk_is_unknown, CONCAT(IFNULL(chk_type, 'NULL'), '=', CAST(n AS STRING)), NULL), ',')"
        " AS chk_types,\n  SUM(IF(chk_is_variant, n, 0)) AS chk_variants,\n"
        "  STRING_AGG(IF(chk_is_variant, CONCAT('\\'', chk_type, '\\'=', CAST(n AS STRING)), NULL), ',')"
        " AS chk_variant_types\n"
        f"FROM (\n  SELECT {type_col} AS chk_type, {is_unknown} AS chk_is_unknown, {is_variant} AS chk_is_variant,\n"
        f"    COUNT(*) AS n\n  FROM {table}\n"
        f"  WHERE DATE({ts}) > DATE_SUB(@chk_as_of, INTERVAL @chk_lookback DAY) AND DATE({ts}) <= @chk_as_of\n"
        "  GROUP BY 1, 2, 3\n) AS chk_by_type"
    )

    def judge(row: Mapping[str, Any]) -> list[CheckResult]:
        total, unknown = int(row.get("chk_total") or 0), int(row.get("chk_unknown") or 0)
        share = unknown / total if total else 0.0
        start = as_of - dt.timedelta(days=spec.windows.feature_lookback_days)
        out = []
        variants = int(row.get("chk_variants") or 0)
        if ev.event_type_variants is not None:
            out.append(
                _result(
                    "event_type_variants",
                    table,
                    variants,
                    0,
                    ev.event_type_variants.severity,
                    variants == 0,
                    f"{table}: {variants} events in ({start}, {as_of}] have a {type_col} that differs from a known "
                    f"type only by case or spaces ({_named(row.get('chk_variant_types'))}); the SQL would weigh them "
                    f"nothing. Normalise them in the loader or a view (LOWER(TRIM({type_col}))), or list them under "
                    "event_types in pipeline.yaml.",
                )
            )
        if check is None:
            return out
        return [
            *out,
            _result(
                "unknown_event_types",
                table,
                round(share, 6),
                check.max_share,
                check.severity,
                share <= check.max_share,
                f"{table}: {unknown} of {total} events in ({start}, {as_of}] ({share:.1%}) have a {type_col} "
                f"the contract does not map ({_named(row.get('chk_types'))}); "
                f"the SQL weighs them nothing. Map them in event_types of pipeline.yaml (known: {_known_text(spec)}), "
                "or raise checks.events.unknown_event_types.max_share if ignoring them is right.",
            ),
        ]

    return CheckQuery(table, sql, params, judge)


def _named(types: str | None) -> str:
    """The most frequent unknown types as ``type (count)``, at most NAMED_TYPES of them."""
    pairs = [p.rsplit("=", 1) for p in (types or "").split(",") if "=" in p]
    ranked = sorted(((name, int(n)) for name, n in pairs), key=lambda p: (-p[1], p[0]))
    named = ", ".join(f"{name} ({n})" for name, n in ranked[:NAMED_TYPES])
    return named + (f" and {len(ranked) - NAMED_TYPES} more" if len(ranked) > NAMED_TYPES else "")
