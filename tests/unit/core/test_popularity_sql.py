"""The one popularity list's SQL: GoogleSQL that BigQuery accepts, on every path that builds it."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.evaluation.popularity import ONE_DATE, popularity_lists_sql, served_users_sql
from airflow_ml_provider.core.features.render import render_sql_file
from airflow_ml_provider.core.inference.fallback import fallback_sql
from airflow_ml_provider.core.inference.scoring import candidate_features_sql
from airflow_ml_provider.core.training.job import truth_data_sql
from tests.paths import PIPELINE, SQL_DIR

SPEC = load_spec(PIPELINE)


def _with(exclude_seen: str = "none", serve: str = "active"):
    return SPEC.model_copy(
        update={"inference": SPEC.inference.model_copy(update={"exclude_seen": exclude_seen, "serve": serve})}
    )


def _queries(spec) -> dict[str, str]:
    users = f"SELECT s.as_of_date, s.user_id FROM ({served_users_sql(spec)}) AS s"
    return {
        "lists": popularity_lists_sql(spec, users),
        "fallback": fallback_sql(spec, candidate_features_sql(spec, [])),
        "truth": truth_data_sql(spec) or "",
        "candidates": render_sql_file(SQL_DIR / "recsys" / "candidates.sql", dt.date(2026, 3, 31), spec),
    }


@pytest.mark.parametrize("exclude_seen", ["none", "purchased", "interacted"])
@pytest.mark.parametrize("serve", ["active", "all_users"])
def test_qualify_always_sits_beside_where_group_by_or_having(exclude_seen, serve):
    """BigQuery refuses a QUALIFY without a WHERE, GROUP BY or HAVING in the same SELECT
    (https://cloud.google.com/bigquery/docs/reference/standard-sql/query-syntax#qualify_clause)."""
    for name, sql in _queries(_with(exclude_seen, serve)).items():
        tree = sqlglot.parse_one(sql, read="bigquery")
        for select in tree.find_all(exp.Select):
            if select.args.get("qualify") is not None:
                assert any(select.args.get(k) is not None for k in ("where", "group", "having")), (name, select.sql())


def test_served_users_and_popularity_read_only_the_lookback_up_to_the_date():
    sql = popularity_lists_sql(SPEC, f"SELECT s.as_of_date, s.user_id FROM ({served_users_sql(SPEC)}) AS s")
    assert sql.count("<= d.as_of_date") == 2 and "INTERVAL @lookback_days DAY" in sql
    assert "@as_of" in ONE_DATE and "event_type IN ('view', 'add_to_cart', 'purchase')" in sql


def test_seen_items_are_skipped_per_user_only_when_the_contract_says_so():
    users = "SELECT CAST(@as_of AS DATE) AS as_of_date, 'u1' AS user_id"
    unfiltered = popularity_lists_sql(_with("none"), users)
    # Nothing skipped: each list is the date's list, read by its rank without numbering each user's rows.
    assert "NOT EXISTS" not in unfiltered and "ROW_NUMBER() OVER (PARTITION BY u." not in unfiltered
    assert "WHERE p.popularity_rank <= @top_k" in unfiltered
    purchased = popularity_lists_sql(_with("purchased"), users)
    assert "NOT EXISTS" in purchased and "s.event_type = 'purchase'" in purchased
    assert "s.event_type = 'purchase'" not in popularity_lists_sql(_with("interacted"), users)
