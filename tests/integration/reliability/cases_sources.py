"""Bad-input cases: wrong-but-valid source data, and results that would replace good partitions with worse.

Each kind of bad data runs through the CLI (``airflow-ml features`` / ``check`` / ``outcomes``)
and, where the DAG has a task for the same stage, through that operator: the DAG's
``source_checks`` gate (``DataCheckOperator(scope="preflight")``), a feature step
(``FeatureExtractOperator``) or ``OutcomeEvaluationOperator``. Merged into the table of
``test_bad_input.py``, which asserts the error, its wording and that no table changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG

from airflow_ml_provider.core.features.checks import DataCheckError
from airflow_ml_provider.exceptions import DegenerateResultError
from tests.integration.reliability.bad_input import Case, checks, cli_case, features, op_case, recommend, sql
from tests.integration.reliability.conftest import DAY, World, context
from tests.paths import SQL_DIR

LOOKBACK_START = DAY - dt.timedelta(days=27)  # the first day of DAY's 28-day lookback


def _features_argv(w: World) -> list[str]:
    return ["features", "--pipeline", str(w.pipeline), "--date", str(DAY), "--sql-dir", str(SQL_DIR)]


def _gate(w: World) -> Any:
    """recsys_features' source_checks task: the events and every step's would-be rows, before any write."""
    return checks(w, scope="preflight", record=False)


def source_case(name: str, setup: Callable[[World], None], names: str, fix: str, *, operator: bool = True) -> dict:
    """The same broken source through ``airflow-ml features`` and (``operator``) the DAG's gate task."""
    cases = {f"{name}-cli": cli_case("sources", setup, _features_argv, names, fix)}
    if operator:
        cases[f"{name}-operator"] = op_case("sources", setup, _gate, DataCheckError, names, fix)
    return cases


# --- a served date whose horizon has passed, judged once (the partition a bad rerun must keep) ------------


def _served_date(w: World) -> dt.date:
    from airflow_ml_provider.core.contract.spec import load_spec

    _, valid = load_spec(w.pipeline).training_dates(DAY)
    return valid[-1]


def _outcomes_op(w: World, *, run_id: str = "bad-input") -> Any:
    from airflow_ml_provider.operators.outcomes import OutcomeEvaluationOperator

    with DAG("reliability_outcomes", schedule=None, template_searchpath=[str(SQL_DIR)]):
        op = OutcomeEvaluationOperator(
            task_id="outcomes", pipeline=str(w.pipeline), prediction_date=str(_served_date(w))
        )
    ctx = context("outcomes", run_id=run_id)
    op.render_template_fields(ctx)
    return op.execute(ctx)


def judged(*statements: str) -> Callable[[World], None]:
    """Serve and judge an earlier date (the good partition), then break the sources with ``statements``."""

    def apply(w: World) -> None:
        recommend(w, run_id="served", prediction_date=str(_served_date(w)))
        _outcomes_op(w, run_id="judged")
        sql(*(s.replace("@served", f"DATE '{_served_date(w)}'") for s in statements))(w)

    return apply


def _outcomes_argv(w: World) -> list[str]:
    day = str(_served_date(w))
    return ["outcomes", "--pipeline", str(w.pipeline), "--date", day, "--sql-dir", str(SQL_DIR)]


def outcome_case(name: str, setup: Callable[[World], None], names: str, fix: str) -> dict:
    return {
        f"{name}-cli": cli_case("replace", setup, _outcomes_argv, names, fix),
        f"{name}-operator": op_case("replace", setup, _outcomes_op, DegenerateResultError, names, fix),
    }


_TEXT_TS = (
    "CREATE TABLE events_text AS SELECT * REPLACE (strftime(event_ts - INTERVAL 5 HOUR, '%Y-%m-%d %H:%M:%S') "
    "|| '-05:00' AS event_ts) FROM events",
    "DROP TABLE events",
    "ALTER TABLE events_text RENAME TO events",
)
_EPOCH_TS = (
    "CREATE TABLE events_epoch AS SELECT * REPLACE (epoch(event_ts)::BIGINT AS event_ts) FROM events",
    "DROP TABLE events",
    "ALTER TABLE events_epoch RENAME TO events",
)
_FIX_TYPES = r"Normalise them in the loader or a view \(LOWER\(TRIM\(event_type\)\)\), or list them under event_types"

CASES: dict[str, Case] = {
    **source_case(
        "src-null-user-ids",
        sql("UPDATE events SET user_id = NULL WHERE hash(event_ts) % 20 = 0"),
        r"\[null_ids\] events: \d+ of \d+ events in \(2026-03-03, 2026-03-31\] \(\d+\.\d%\) have a NULL user_id",
        r"ghost user .* Drop or fix them in the loader, or raise checks\.events\.null_ids\.max_share",
    ),
    **source_case(
        "src-null-item-ids",
        sql("UPDATE events SET item_id = NULL WHERE hash(event_ts) % 50 = 0"),
        r"\[null_ids\] events: \d+ of \d+ events .* NULL user_id or item_id",
        r"raise checks\.events\.null_ids\.max_share",
        operator=False,
    ),
    **source_case(
        "src-event-ts-as-text-with-offsets",
        sql(*_TEXT_TS),
        r"\[timestamp_type\] events\.event_ts is VARCHAR, not a TIMESTAMP",
        r"Convert it to a UTC TIMESTAMP in the loader or a view \(PARSE_TIMESTAMP",
    ),
    **source_case(
        "src-event-ts-as-epoch-seconds",
        sql(*_EPOCH_TS),
        r"\[timestamp_type\] events\.event_ts is BIGINT, not a TIMESTAMP",
        r"Convert it to a UTC TIMESTAMP",
        operator=False,
    ),
    **source_case(
        "src-event-type-capitalised",
        sql("UPDATE events SET event_type = 'Purchase' WHERE event_type = 'purchase' AND hash(event_ts) % 3 = 0"),
        r"\[event_type_variants\] events: \d+ events in \(2026-03-03, 2026-03-31\] have a event_type that differs "
        r"from a known type only by case or spaces \('Purchase' \(\d+\)\)",
        _FIX_TYPES,
    ),
    **source_case(
        "src-event-type-padded",
        sql("UPDATE events SET event_type = ' view ' WHERE event_type = 'view' AND hash(event_ts) % 4 = 0"),
        r"\[event_type_variants\] .*\(' view ' \(\d+\)\)",
        _FIX_TYPES,
        operator=False,
    ),
    **source_case(
        "src-event-type-upper-case",
        sql("UPDATE events SET event_type = 'ADD_TO_CART' WHERE event_type = 'add_to_cart'"),
        r"\[event_type_variants\] .*'ADD_TO_CART' \(\d+\)",
        _FIX_TYPES,
        operator=False,
    ),
    **source_case(
        "src-day-missing-inside-the-lookback",
        sql("DELETE FROM events WHERE CAST(event_ts AS DATE) = DATE '2026-03-20'"),
        r"\[completeness\] events: 1 day\(s\) of the lookback \(2026-03-03, 2026-03-31\] have fewer than 10% of "
        r"the median day's [\d.]+ events: 2026-03-20 \(0\)",
        r"Load the missing days, or raise checks\.events\.completeness\.max_missing_days",
    ),
    **source_case(
        "src-two-partial-days-inside-the-lookback",
        sql(
            "DELETE FROM events WHERE CAST(event_ts AS DATE) IN (DATE '2026-03-10', DATE '2026-03-25') "
            "AND hash(event_ts) % 50 <> 0"
        ),
        r"\[completeness\] events: 2 day\(s\) of the lookback .*: 2026-03-10 \(\d+\), 2026-03-25 \(\d+\)",
        r"Load the missing days",
        operator=False,
    ),
    **source_case(
        "src-history-pruned-before-a-rebuild",
        sql("DELETE FROM events WHERE event_ts < TIMESTAMP '2026-03-20 00:00:00+00'"),
        r"\[history\] events: events start on 2026-03-20, so 2026-03-31's 28-day lookback holds 12 day\(s\) of "
        r"history; .* user_features already holds \d+ row\(s\) for 2026-03-31",
        r"Load the events back to 2026-03-03, or rebuild anyway with --force-replace",
    ),
    "src-history-pruned-check-events-cli": cli_case(
        "sources",
        sql("DELETE FROM events WHERE event_ts < TIMESTAMP '2026-03-25 00:00:00+00'"),
        lambda w: ["check", "--pipeline", str(w.pipeline), "--date", str(DAY), "--scope", "events"],
        r"\[history\] events: events start on 2026-03-25, so .* holds 7 day\(s\)",
        r"--force-replace",
    ),
    # --- a rebuild that would replace a partition's users with far fewer -----------------------------
    "replace-user-features-with-a-third-of-the-users-cli": cli_case(
        "replace",
        sql("DELETE FROM events WHERE hash(user_id) % 10 < 7"),
        _features_argv,
        r"\[partition_shrink\] user_features partition as_of_date=2026-03-31: the new rows have \d+ distinct "
        r"user_id, the partition they would replace has \d+ \(\d+%; at least 50% expected\)",
        r"replace it anyway with --force-replace",
    ),
    "replace-user-features-with-a-third-of-the-users-operator": op_case(
        "replace",
        sql("DELETE FROM events WHERE hash(user_id) % 10 < 7"),
        lambda w: features(w, table="user_features"),
        DataCheckError,
        r"\[partition_shrink\] user_features partition as_of_date=2026-03-31: the new rows have \d+ distinct user_id",
        r"force_replace=True in the DAG's params",
    ),
    "replace-candidates-for-a-tenth-of-the-users-operator": op_case(
        "replace",
        sql("DELETE FROM events WHERE hash(user_id) % 10 <> 0"),
        lambda w: features(w, table="candidates"),
        DataCheckError,
        r"\[partition_shrink\] candidates partition as_of_date=2026-03-31",
        r"--force-replace",
    ),
    # --- outcomes that would replace a judged date with a degenerate one ---------------------------------
    **outcome_case(
        "replace-outcomes-with-an-empty-catalogue",
        judged("DELETE FROM items"),
        r"outcome evaluation for 2026-03-\d\d: the items source \(items\) has no items, .*; the date's judgement "
        r"of \d+ served lists from an earlier run is kept as it is",
        r"Load the items table, or judge anyway with --force-replace",
    ),
    **outcome_case(
        "replace-outcomes-without-a-popularity-list",
        judged("DELETE FROM events WHERE CAST(event_ts AS DATE) <= @served"),
        r"outcome evaluation for 2026-03-\d\d: global_popularity \(\w+\) judged 0 lists, while the served lists "
        r"were \d+",
        r"Check the events of the lookback .* or judge anyway with --force-replace",
    ),
}
