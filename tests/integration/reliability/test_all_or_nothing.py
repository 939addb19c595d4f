"""A date's feature steps are all-or-nothing: a failing later step leaves the earlier steps' partitions as they were."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.features.checks import DataCheckError
from airflow_ml_provider.exceptions import SQLTemplateError
from tests.integration.reliability.conftest import DAY, World, table_checksums
from tests.paths import SQL_DIR


def _fresh_events(w: World) -> None:
    """More events on DAY, a second apart, so every step WOULD write a different partition if it ran.

    A second apart: copies at one instant would repeat (user, item, time), which the contract's
    duplicate_events check refuses before any step runs.
    """
    later = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
    with DuckDBWarehouse(w.warehouse).connect() as con:
        con.execute(
            "INSERT INTO events SELECT * EXCLUDE (rn) REPLACE ($ts + TO_SECONDS(rn) AS event_ts) FROM "
            "(SELECT *, ROW_NUMBER() OVER (ORDER BY event_ts) AS rn FROM events ORDER BY event_ts LIMIT 400)",
            {"ts": later},
        )


def _sql_copy(w: World, broken: str, text: str) -> Path:
    folder = w.root / "sql_copy"
    import shutil

    shutil.copytree(SQL_DIR, folder)
    (folder / "recsys" / broken).write_text(text)
    return folder


def _step_tables(w: World) -> dict[str, tuple[int, int]]:
    return {t: v for t, v in table_checksums(w.warehouse).items() if t != "main.events"}


def test_sql_error_in_the_last_step_writes_no_step(case: World):
    sql_dir = _sql_copy(case, "features.sql", "SELECT user_id, item_id FROM {{ ref('candidates') }} WHER 1 = 1\n")
    _fresh_events(case)
    before = _step_tables(case)
    with pytest.raises(SQLTemplateError, match=r"features\.sql"):
        build_features(DuckDBWarehouse(case.warehouse), load_spec(case.pipeline), sql_dir, [DAY], preflight=True)
    assert _step_tables(case) == before


def test_error_check_in_the_last_step_writes_no_step(case: World):
    raw = yaml.safe_load(case.pipeline.read_text())
    raw["checks"]["tables"]["features"].append({"check": "range", "column": "candidate_rank", "max": 1})
    case.pipeline.write_text(yaml.safe_dump(raw, sort_keys=False))
    _fresh_events(case)
    before = _step_tables(case)
    with pytest.raises(DataCheckError, match=r"feature steps of 2026-03-31: .*\[range\(candidate_rank\)\]"):
        build_features(DuckDBWarehouse(case.warehouse), load_spec(case.pipeline), SQL_DIR, [DAY], preflight=True)
    assert _step_tables(case) == before


def test_the_check_sees_what_the_steps_then_write(case: World):
    """Control: without the fault the same build rewrites the steps' partitions (the test above can fail)."""
    _fresh_events(case)
    before = _step_tables(case)
    build_features(DuckDBWarehouse(case.warehouse), load_spec(case.pipeline), SQL_DIR, [DAY], preflight=True)
    after = _step_tables(case)
    changed = {t for t in before if before[t] != after[t]}
    assert {"main.user_features", "main.features"} <= changed
