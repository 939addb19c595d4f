"""The seeded warehouse and client of the ML page tests: real DuckDB, filled through the provider's writers.

``seed`` writes what the overview pages read (three model versions, three days of drift
results, runs and recommendations); ``seed_pages`` adds what the per-version, outcome, drift
detail and data pages read: an envelope on disk, stored drift profiles, a features
partition, ``recommendation_outcomes`` (with a missing date), items, events and data checks.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.drift import report as drift_report
from airflow_ml_provider.core.drift import store as drift_store
from airflow_ml_provider.core.inference.runs import record_run
from airflow_ml_provider.core.registry.models import ModelRegistry
from airflow_ml_provider.core.warehouse import ddl
from airflow_ml_provider.plugins import app as ml_app

DAYS = [dt.date(2026, 3, 29), dt.date(2026, 3, 30), dt.date(2026, 3, 31)]
T0 = dt.datetime(2026, 4, 1, 6, 0, tzinfo=dt.UTC)
SVG = "{http://www.w3.org/2000/svg}"


def make_client(warehouse) -> TestClient:
    """The plugin's app (with a fixed warehouse) mounted under /ml, as the API server mounts it."""
    app = ml_app.create_app()
    app.dependency_overrides[ml_app.get_warehouse] = lambda: warehouse
    outer = FastAPI()
    outer.mount("/ml", app)
    return TestClient(outer)


def seed(warehouse: DuckDBWarehouse) -> None:
    """Three model versions, three days of drift results, runs and recommendations."""
    registry = ModelRegistry(warehouse)
    registry.ensure()
    for i, (version, ndcg, base) in enumerate([("v1", 0.41, 0.40), ("v2", 0.47, 0.42), ("v3", 0.39, 0.43)]):
        metrics = {
            "k": 10,
            "model": {"ndcg": ndcg, "recall": 0.7},
            "baseline": {"ndcg": base, "recall": 0.6},
            "lift": {"ndcg": ndcg / base - 1},
            "champion": None,
        }
        created = T0 + dt.timedelta(days=i)
        registry.register_candidate("recsys", version, f"file:///m/{version}", metrics, "abc", "h", created)
    registry.promote("recsys", "v1", blessed_by="gate", reason="first")
    registry.promote("recsys", "v2", blessed_by="gate", reason="lift +11.9%")
    registry.reject("recsys", "v3", reason="below the baseline")

    drift_store.ensure_tables(warehouse)
    schema = drift_report.results_schema()
    psi_by_day = {
        "item_price": [0.02, 0.12, 0.31],
        "user_events": [0.01, 0.02, 0.03],
    }
    for d, day in enumerate(DAYS):
        rows = []
        for feature, values in psi_by_day.items():
            value = values[d]
            severity = "drift" if value >= 0.25 else "warn" if value >= 0.1 else "ok"
            rows.append(
                {"feature": feature, "metric": "psi", "value": value, "severity": severity, "status": "evaluated"}
            )
        rows.append({"feature": "item_category", "metric": "psi", "status": "skipped", "skip_reason": "empty: 0"})
        verdict = "drift" if d == 2 else "warn" if d == 1 else "ok"
        rows.append({"feature": "__dataset__", "metric": "drifted_share", "value": d / 4, "severity": verdict})
        if d == 2:  # one segment of one column warns: flagged, but not in the all-rows verdict
            rows.append(
                {"feature": "user_events", "metric": "psi", "value": 0.15, "severity": "warn", "segment": "country=DE"}
            )
        full = [
            {
                "logical_date": day,
                "run_id": f"drift-{day}",
                "model_name": "recsys",
                "model_version": "v2",
                "table_name": None if r["feature"] == "__dataset__" else "features",
                "kind": "numeric",
                "warn_threshold": 0.1,
                "threshold": 0.25,
                "status": "evaluated",
                "n_cur": 1000,
                "checked_at": T0,
                "segment": r.pop("segment", "__all__"),
                **r,
            }
            for r in rows
        ]
        table = pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in full], schema=schema)
        warehouse.replace_partition("drift_results", "logical_date", day, table)

    ddl.ensure_tables(warehouse, "recommendations", "recommendations_latest", "recommendation_runs")
    for d, day in enumerate(DAYS):
        users, items = [f"u{u}" for u in range(4)], [f"i{i}" for i in range(5)]
        rows = [(u, items[(r + d) % 5], r + 1, 1.0 - r / 10) for u in users for r in range(3)]
        table = pa.table(
            {
                "user_id": pa.array([r[0] for r in rows]),
                "item_id": pa.array([r[1] for r in rows]),
                "rank": pa.array([r[2] for r in rows], pa.int64()),
                "score": pa.array([r[3] for r in rows], pa.float64()),
                "model_name": pa.array(["recsys"] * len(rows)),
                "model_version": pa.array(["v2"] * len(rows)),
                "run_id": pa.array([f"run-{day}"] * len(rows)),
                "generated_at": pa.array([T0] * len(rows), pa.timestamp("us", tz="UTC")),
                "source": pa.array(["model"] * len(rows)),
            }
        )
        warehouse.replace_partition("recommendations", "prediction_date", day, table)
        started = T0 + dt.timedelta(days=d)
        record_run(
            warehouse,
            {
                "run_id": f"run-{day}",
                "try_number": 1,
                "prediction_date": day,
                "model_name": "recsys",
                "model_version": "v2",
                "status": "success",
                "users": 4,
                "rows_written": 12,
                "candidates": 40,
                "catalog_items": 5,
                "coverage": [0.6, 0.8, 0.4][d],
                "seconds_total": 1.5,
                "started_at": started,
                "finished_at": started + dt.timedelta(seconds=2),
            },
        )
    record_run(
        warehouse,
        {
            "run_id": "run-failed",
            "try_number": 2,
            "prediction_date": DAYS[-1],
            "status": "failed",
            "error": "SchemaMismatchError: boom",
            "started_at": T0 - dt.timedelta(hours=1),
            "finished_at": T0 - dt.timedelta(hours=1),
        },
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def svgs(html: str) -> list[ET.Element]:
    """Every <svg> of a page, parsed as XML (so a malformed chart fails the test)."""
    out = []
    rest = html
    while "<svg" in rest:
        start = rest.index("<svg")
        end = rest.index("</svg>", start) + len("</svg>")
        out.append(ET.fromstring(rest[start:end]))
        rest = rest[end:]
    return out


# --- what the detail pages read ------------------------------------------------------------

#: Reference bins of item_price (v2's profile): edges 10, 20, 30 -> bins (-inf,10], (10,20], (20,30], (30,inf).
PRICE_PROFILE = {
    "kind": "numeric",
    "type": "FLOAT64",
    "edges": [10.0, 20.0, 30.0],
    "counts": [25, 25, 25, 25],
    "null": 0,
    "inf": 0,
}
#: item_price on 2026-03-31: 1 row in the first bin, 1 in the second, 6 in the last, 2 null.
PRICES_0331 = [5.0, 15.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, None, None]
V3_METRICS = {
    "k": 10,
    "window": "test",
    "test_dates": ["2026-03-11", "2026-03-17"],
    "scope": "end_to_end",
    "baseline_name": "global_popularity",
    "candidate_recall": 0.62,
    "model": {"ndcg": 0.39, "map": 0.3, "recall": 0.5, "precision": 0.1, "coverage": 0.4, "lists": 250},
    "baseline": {"ndcg": 0.43, "map": 0.33, "recall": 0.55, "precision": 0.11, "coverage": 0.1, "lists": 250},
    "lift": {"ndcg": 0.39 / 0.43 - 1},
    "lift_ci": {"metric": "ndcg", "low": -0.2, "high": 0.01, "confidence": 0.95, "samples": 200},
    "champion": {"version": "v2", "comparable": True, "ndcg": 0.47},
    "scopes": {
        "end_to_end": {
            "model": {"ndcg": 0.39, "map": 0.3, "recall": 0.5, "precision": 0.1, "coverage": 0.4, "lists": 250},
            "global_popularity": {
                "ndcg": 0.43,
                "map": 0.33,
                "recall": 0.55,
                "precision": 0.11,
                "coverage": 0.1,
                "lists": 250,
            },
        },
        "candidates": {
            "model": {"ndcg": 0.61, "map": 0.5, "recall": 0.8, "precision": 0.2, "coverage": 0.4, "lists": 240},
            "candidate_popularity": {
                "ndcg": 0.52,
                "map": 0.41,
                "recall": 0.7,
                "precision": 0.18,
                "coverage": 0.2,
                "lists": 240,
            },
        },
    },
}
V3_IMPORTANCE = {"item_price": 120.5, "user_events": 300.25, "item_category": 0.0}


def write_v3_envelope(model_dir: Path) -> str:
    """A real envelope.json (and a stub model.txt) for v3 under ``model_dir``; returns its URI."""
    from airflow_ml_provider.core.contract.spec import FeatureColumn
    from airflow_ml_provider.core.training.envelope import DataSummary, Envelope, write_envelope

    envelope = Envelope(
        name="recsys",
        version="v3",
        created_at=T0 + dt.timedelta(days=2),
        git_sha="abc",
        spec_hash="h",
        packages={"lightgbm": "4.6.0"},
        features=[
            FeatureColumn(name="item_price", type="FLOAT64", nullable=False),
            FeatureColumn(name="user_events", type="INT64", nullable=False),
            FeatureColumn(name="item_category", type="STRING", nullable=False),
        ],
        categories={"item_category": ["a", "b"]},
        objective="lambdarank",
        params={"learning_rate": 0.05, "num_leaves": 31, "eval_at": [10]},
        best_iteration=42,
        data=DataSummary(
            uri="file:///exports/v3",
            train_rows=12000,
            validation_rows=3000,
            train_lists=800,
            validation_lists=250,
            train_dates=(dt.date(2026, 2, 13), dt.date(2026, 2, 26)),
            validation_dates=(dt.date(2026, 3, 11), dt.date(2026, 3, 17)),
            early_stopping_rows=1500,
            early_stopping_dates=(dt.date(2026, 3, 4), dt.date(2026, 3, 10)),
        ),
        metrics=V3_METRICS,
        profile={},
        sample={},
        feature_importance=V3_IMPORTANCE,
    )
    uri = model_dir.as_uri()
    write_envelope(uri, "tree\n", envelope)
    return uri


def _outcome(day: dt.date, source: str, version: str, **values) -> dict:
    return {
        "prediction_date": day,
        "horizon_start": day + dt.timedelta(days=1),
        "horizon_end": day + dt.timedelta(days=7),
        "list_source": source,
        "model_name": "recsys",
        "model_version": version,
        "segment": "all",
        "k": 10,
        "lists": 4,
        "active_users": 4,
        "purchases": 1,
        "revenue": 19.5,
        "coverage": 0.6,
        "run_id": f"outcomes-{day}",
        "evaluated_at": T0 + dt.timedelta(days=10),
        **values,
    }


#: Outcomes of 03-29 and 03-31 (03-30 is not evaluated: a gap), the served lists and the popularity list.
OUTCOMES = [
    _outcome(DAYS[0], "model", "v2", hits=2, hit_rate=0.5, precision_at_k=0.05, recall_at_k=0.4, ndcg_at_k=0.31),
    _outcome(
        DAYS[0], "global_popularity", "v2", hits=1, hit_rate=0.25, precision_at_k=0.03, recall_at_k=0.2, ndcg_at_k=0.12
    ),
    _outcome(DAYS[2], "model", "v2", hits=3, hit_rate=0.75, precision_at_k=0.08, recall_at_k=0.5, ndcg_at_k=0.42),
    _outcome(
        DAYS[2], "global_popularity", "v2", hits=1, hit_rate=0.25, precision_at_k=0.02, recall_at_k=0.1, ndcg_at_k=0.1
    ),
    _outcome(
        DAYS[2],
        "model",
        "v2",
        segment="country=DE",
        hits=1,
        hit_rate=1.0,
        precision_at_k=0.1,
        recall_at_k=0.5,
        ndcg_at_k=0.5,
    ),
]


def seed_outcomes(warehouse: DuckDBWarehouse, rows: list[dict]) -> None:
    """Create ``recommendation_outcomes`` from its committed DDL and write one partition per date.

    Rows take the table's own column types; a column a row leaves out is NULL.
    """
    ddl.ensure_tables(warehouse, "recommendation_outcomes")
    table_schema = warehouse.query("SELECT * FROM recommendation_outcomes LIMIT 0").schema
    schema = pa.schema([f for f in table_schema if f.name != "prediction_date"])
    for day in sorted({r["prediction_date"] for r in rows}):
        part = [r for r in rows if r["prediction_date"] == day]
        data = pa.Table.from_pylist(part, schema=schema)
        warehouse.replace_partition("recommendation_outcomes", "prediction_date", day, data)


def seed_pages(warehouse: DuckDBWarehouse, artifacts: Path) -> None:
    """v3's envelope and metrics, v2's drift profile, a features partition, outcomes, items, events, data checks."""
    uri = write_v3_envelope(artifacts / "recsys" / "v3")
    import json

    warehouse.execute(
        "UPDATE ml_models SET uri = @uri, metrics = PARSE_JSON(@m) WHERE model_name = 'recsys' AND version = 'v3'",
        {"uri": uri, "m": json.dumps(V3_METRICS)},
    )
    drift_store.store_profile(warehouse, "recsys", "v2", {"features": {"item_price": PRICE_PROFILE}})
    features = pa.table({"user_id": [f"u{i}" for i in range(len(PRICES_0331))], "item_price": PRICES_0331})
    warehouse.replace_partition("features", "as_of_date", DAYS[2], features)
    seed_outcomes(warehouse, OUTCOMES)
    warehouse.replace_table(
        "items",
        pa.table(
            {
                "item_id": [f"i{i}" for i in range(5)],
                "category": ["shoes", "shoes", "bags", "hats", None],
                "price": [10.0, 19.5, 30.0, 5.25, None],
            }
        ),
    )

    def ts(day: int, hour: int = 12) -> dt.datetime:
        return dt.datetime(2026, 4, day, hour, tzinfo=dt.UTC) if day else dt.datetime(2026, 3, 31, 9, tzinfo=dt.UTC)

    warehouse.replace_table(
        "events",
        pa.table(
            {
                "event_ts": pa.array([ts(0), ts(1), ts(1, 13), ts(2), ts(20)], pa.timestamp("us", tz="UTC")),
                "user_id": ["u0", "u0", "u0", "u0", "u0"],
                # 03-31 (the served day: not in the horizon), i2 viewed twice and i0 bought in the
                # horizon (i0 was never on the list), i3 viewed after the horizon.
                "item_id": ["i2", "i2", "i2", "i0", "i3"],
                "event_type": ["view", "view", "view", "purchase", "view"],
            }
        ),
    )
    ddl.ensure_tables(warehouse, "data_checks")
    for day, rows in {
        DAYS[1]: [("features", "not_null(item_price)", 0.0, 0.0, "error", "pass", "")],
        DAYS[2]: [
            (
                "features",
                "not_null(item_price)",
                2.0,
                0.0,
                "warn",
                "warn",
                "2 rows of features have a NULL item_price.",
            ),
            ("events", "freshness", 0.0, 1.0, "error", "pass", ""),
            ("events", "duplicate_events", 0.0, 0.01, "warn", "pass", ""),
            ("labels", "label_completeness(relevance)", None, None, "warn", "skipped", "the horizon has not ended"),
        ],
    }.items():
        names = ("table_name", "check_name", "observed", "threshold", "severity", "status", "message")
        part = [dict(zip(names, r, strict=True)) | {"run_id": f"checks-{day}", "checked_at": T0} for r in rows]
        schema = pa.schema(
            [
                ("table_name", pa.string()),
                ("check_name", pa.string()),
                ("observed", pa.float64()),
                ("threshold", pa.float64()),
                ("severity", pa.string()),
                ("status", pa.string()),
                ("message", pa.string()),
                ("run_id", pa.string()),
                ("checked_at", pa.timestamp("us", tz="UTC")),
            ]
        )
        warehouse.replace_partition("data_checks", "check_date", day, pa.Table.from_pylist(part, schema=schema))
