"""What a model version's page shows: the registry row, its envelope, its drift profile and its outcomes.

The registry (``ml_models``) holds the metrics the gate read and the gate's decision; the
envelope (``envelope.json`` next to ``model.txt``) holds the params, data windows, row counts
and feature importance; ``drift_profiles`` the columns drift checks compare; and
``recommendation_outcomes`` what the version's served lists did. An envelope that cannot be
read (moved, no permission) leaves those parts out with the reason; the rest still shows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE, parse_envelope
from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.plugins.data import _clean, _jsonable, _rows, data_date
from airflow_ml_provider.plugins.data_outcomes import outcomes

#: Reads an artifact URI's text (the plugin passes the connection's ObjectStoragePath reader).
TextReader = Callable[[str], str]
#: Ranker names as the envelope stores them -> what the page calls them.
RANKERS = {
    "model": "model",
    "global_popularity": "global popularity",
    "candidate_popularity": "candidate popularity",
    "candidate_order": "candidate order",
}
SCOPES = {"all_active": "all active users", "end_to_end": "end-to-end", "candidates": "candidate-restricted"}
METRIC_NAMES = ("ndcg", "ndcg_binary", "map", "recall", "precision", "coverage", "lists", "users")

_PROFILE = """
SELECT scope, column_name, kind, n, null_share
FROM drift_profiles
WHERE model_name = @model AND model_version = @version AND segment = '__all__'
ORDER BY CASE scope WHEN 'feature' THEN 0 ELSE 1 END, column_name
"""


class ModelNotFound(LookupError):
    """The registry has no such model version."""


def read_text_default(uri: str) -> str:
    """An artifact's text through pyarrow.fs (file:// and gs:// with application credentials)."""
    return storage.read_text(uri)


def envelope_summary(uri: str, read_text: TextReader) -> tuple[dict[str, Any] | None, str | None]:
    """(what the page shows of the envelope, None) or (None, why it could not be read)."""
    location = storage.join(uri, ENVELOPE_FILE)
    try:
        env = parse_envelope(read_text(location), location)
    except Exception as err:  # a page shows the rest of the version; the reason names the file
        return None, f"{location} could not be read: {type(err).__name__}: {err}"
    data = json.loads(env.data.model_dump_json())
    importance = sorted(env.feature_importance.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "objective": env.objective,
        "params": env.params,
        "best_iteration": env.best_iteration,
        "data": data,
        "features": [{"name": f.name, "type": f.type, "nullable": f.nullable} for f in env.features],
        "feature_importance": [{"feature": name, "gain": gain} for name, gain in importance],
        "packages": env.packages,
        "git_sha": env.git_sha,
        "spec_hash": env.spec_hash,
    }, None


def metric_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (scope, ranker) with its metrics at k: the model and every baseline, in both scopes."""
    rows = []
    for scope, rankers in (metrics.get("scopes") or {}).items():
        for ranker, values in rankers.items():
            rows.append(
                {
                    "scope": scope,
                    "scope_label": SCOPES.get(scope, scope),
                    "ranker": ranker,
                    "ranker_label": RANKERS.get(ranker, ranker.replace("_", " ")),
                    **{m: values.get(m) for m in METRIC_NAMES},
                }
            )
    if not rows and metrics.get("model"):  # envelopes from before scopes: candidates only
        for ranker, key in (("model", "model"), ("candidate_popularity", "baseline")):
            values = metrics.get(key) or {}
            rows.append(
                {
                    "scope": "candidates",
                    "scope_label": SCOPES["candidates"],
                    "ranker": ranker,
                    "ranker_label": RANKERS[ranker],
                    **{m: values.get(m) for m in METRIC_NAMES},
                }
            )
    return rows


def model_version(
    warehouse: Warehouse,
    model_name: str,
    version: str,
    read_text: TextReader = read_text_default,
    *,
    outcomes_end: dt.date | None = None,
    artifact_root: str | None = None,
) -> dict[str, Any]:
    """Everything the version's page shows (outcomes served on or before ``outcomes_end``).

    ``ModelNotFound`` when the registry has no such version. ``artifact_root`` is the
    connection's, which a relative ``uri`` is under (ADR 10).
    """
    record = ModelRegistry(warehouse, artifact_root=artifact_root).find(model_name, version)
    if record is None:
        raise ModelNotFound(f"model {model_name!r} has no version {version!r} in ml_models")
    metrics = record.metrics or {}
    envelope, envelope_error = envelope_summary(record.uri, read_text)
    profile = _clean(_rows(warehouse, _PROFILE, {"model": model_name, "version": version}, "ml pages: profile"))
    realized = outcomes(warehouse, model=model_name, version=version, end=outcomes_end)
    return {
        "record": record.as_dict(),
        "k": metrics.get("k"),
        "scope": metrics.get("scope", "candidates"),
        "baseline_name": metrics.get("baseline_name") or "candidate_popularity",
        "test_dates": metrics.get("test_dates"),
        "data_date": _jsonable(data_date(version, metrics)),
        "candidate_recall": metrics.get("candidate_recall"),
        "lift": metrics.get("lift") or {},
        "lift_ci": metrics.get("lift_ci"),
        "champion": metrics.get("champion"),
        "metrics": metric_table(metrics),
        "gate": {
            "status": record.status,
            "reason": record.status_reason,
            "blessed_by": record.blessed_by,
            "promoted_at": record.as_dict()["promoted_at"],
        },
        "envelope": envelope,
        "envelope_error": envelope_error,
        "profile": profile,
        "outcomes": realized,
    }
