"""The Models table at a glance: a gate reason of several sentences folds behind its first words."""

from __future__ import annotations

import datetime as dt
import re

from tests.unit.plugins.world import auth, make_client


def test_a_long_gate_reason_folds_and_a_short_one_shows_whole(tmp_path, tokens):
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.registry.models import ModelRegistry

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=10)
    registry = ModelRegistry(warehouse)
    registry.ensure()
    created = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    long = (
        "ndcg@10 (all-active) 0.3286 is +15.1% over the candidate order 0.2854 (needs +5.0%; the strongest of "
        "candidate order 0.2854, candidate popularity 0.2257, global popularity 0.2106). There is no champion yet."
    )
    for version in ("20260331-aaaa", "20260324-bbbb"):
        registry.register_candidate("recsys", version, f"file:///m/{version}", {"k": 10}, "abc", "h", created)
    registry.promote("recsys", "20260331-aaaa", blessed_by="gate", reason=long)
    registry.reject("recsys", "20260324-bbbb", reason="below the baseline")
    html = make_client(warehouse).get("/ml/models", headers=auth(tokens["viewer"])).text
    folded = re.search(r'<tr id="recsys-20260331-aaaa".*?<td class="reason">(.*?)</td>', html, re.S).group(1)
    assert folded.startswith("<details><summary>ndcg@10 (all-active)") and f"</summary>{long}</details>" in folded
    short = re.search(r'<tr id="recsys-20260324-bbbb".*?<td class="reason">(.*?)</td>', html, re.S).group(1)
    assert short == "below the baseline"
