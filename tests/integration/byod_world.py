"""Bring-your-own-data worlds for the tests: a small demo world, moved in time or renamed, and its contract.

``small_contract`` is the reference contract with short windows (five as-of dates per training
run), a permissive gate and few boosting rounds, so a whole pipeline runs in seconds on a small
world. ``rename_sources`` turns the demo's ``events``/``items``/``users`` into tables and columns
of other names and writes the matching ``sources:``/``source_columns:``/``event_types:``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.paths import PIPELINE

#: The demo's tables -> the names they take in a renamed world.
TABLES = {"events": "shop_events", "items": "catalogue", "users": "customers"}
#: Per role: the SQL's column -> the renamed world's column.
COLUMNS = {
    "events": {"user_id": "customer_ref", "item_id": "sku", "event_ts": "happened_at", "event_type": "action"},
    "items": {"item_id": "sku", "category": "dept", "price": "unit_price", "launch_date": "released_on"},
    "users": {"user_id": "customer_ref", "signup_date": "joined_on"},
}
#: The SQL's event types -> the renamed world's.
EVENT_TYPES = {"view": "look", "add_to_cart": "basket", "purchase": "buy"}


def small_contract(folder: Path, **overrides: Any) -> Path:
    """The reference contract (and model.py) with short windows and a gate that always passes, in ``folder``."""
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["windows"].update(training_days=2, early_stopping_days=0, validation_days=2)
    raw["model"].update(num_boost_round=15, early_stopping_rounds=0, params={"learning_rate": 0.2})
    raw["evaluation"].update(min_lists=0, min_lift_over_baseline=-1.0)
    raw.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copy(PIPELINE.parent / "model.py", folder / "model.py")
    return folder / "pipeline.yaml"


def rename_sources(con: Any) -> dict[str, Any]:
    """Rename the demo's tables, columns and event types (DuckDB connection ``con``); return the keys mapping them."""
    for role, table in TABLES.items():
        for ours, theirs in COLUMNS[role].items():
            con.execute(f"ALTER TABLE {role} RENAME COLUMN {ours} TO {theirs}")
        con.execute(f"ALTER TABLE {role} RENAME TO {table}")
    cases = " ".join(f"WHEN '{ours}' THEN '{theirs}'" for ours, theirs in EVENT_TYPES.items())
    con.execute(f"UPDATE shop_events SET action = CASE action {cases} ELSE action END")
    return {
        "sources": dict(TABLES),
        "source_columns": {role: dict(columns) for role, columns in COLUMNS.items()},
        "event_types": {ours: [theirs] for ours, theirs in EVENT_TYPES.items()},
    }
