"""The reference DAGs and contract for test worlds of a few hundred users.

The gate counts distinct users (`evaluation.min_lists`, 200 in the reference contract) and
needs a +5% lift over the strongest simple ranker. A 150-300 user test world has fewer users
than that, and its model beats the generator's own order by a few percent with a wide
interval, so the honest gate says "no decision". Tests that exercise the plumbing after the
gate (serving, drift, outcomes, the e2e cluster) use this gate, stated here once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.paths import DAGS_DIR

#: The gate for small test worlds: some users, and no loss against the strongest simple ranker.
SMALL_WORLD_GATE: dict[str, Any] = {"min_lists": 50, "min_lift_over_baseline": 0.0}


def with_small_world_gate(raw: dict[str, Any]) -> dict[str, Any]:
    """A parsed contract with ``SMALL_WORLD_GATE`` (edited in place, and returned)."""
    raw["evaluation"].update(SMALL_WORLD_GATE)
    return raw


def small_world_dags(target: Path) -> Path:
    """A copy of dags/ at ``target`` whose recsys contract has ``SMALL_WORLD_GATE``.

    The DAG files find their SQL through ``AIRFLOW_ML_SQL_DIR`` (set it to the repo's sql/).
    """
    if not target.exists():
        shutil.copytree(DAGS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
        contract = target / "recsys" / "pipeline.yaml"
        contract.write_text(yaml.safe_dump(with_small_world_gate(yaml.safe_load(contract.read_text()))))
    return target
