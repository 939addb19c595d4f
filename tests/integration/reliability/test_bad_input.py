"""Bad input, one table: each case breaks one thing in a copy of a full world and runs a real entry point.

Every case asserts three things:

- the error type: the provider's exception (as the ``__cause__`` of Airflow's
  ``AirflowFailException`` where the operator converts it), or exit code 1 from the CLI;
- the message names the thing (file, key, column, table, version) AND the fix;
- no table changed: every table of the warehouse (row count and an order-independent hash
  of all rows) is identical before and after. Batch inference logs every attempt, failed
  ones included, in ``recommendation_runs``: there exactly one ``failed`` row carrying the
  error may appear, and nothing else.

The world (features, labels, a trained champion, recommendations and drift results) is
built once per session; each case works on its own copy of the DuckDB file and artifacts.
The entry points and the ways to break a world are in ``bad_input.py``; further case tables
live in the ``cases_*.py`` modules beside this one and are merged below.
The module prints ``bad input: tried N, passed M, rows lost 0`` for the closing note.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.drift.bins import DriftProfileError
from airflow_ml_provider.core.features.checks import DataCheckError
from airflow_ml_provider.core.registry.models import RegistryError
from airflow_ml_provider.core.training.encoding import FeatureDataError
from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE, MODEL_FILE, ModelLoadError
from airflow_ml_provider.exceptions import (
    ContractError,
    EmptyResultError,
    HorizonNotPassedError,
    IdentifierError,
    SchemaMismatchError,
    SQLTemplateError,
    TableNotFoundError,
    TrainingJobError,
)
from tests.integration.reliability.bad_input import (
    _BROKEN_YAML,
    _INJECTION,
    _RANK_MAX_1,
    _TYPO,
    RUNS,
    Case,
    CLIFailed,
    both,
    broken_sql_copy,
    checks,
    cli_case,
    connection,
    contract,
    contract_text,
    delete,
    drift,
    features,
    fresh_events,
    hooks_file,
    missing_warehouse,
    model_file,
    nothing,
    op_case,
    project_with_two_contracts,
    project_without_contract,
    promote,
    recommend,
    sensor,
    setdeep,
    sql,
    sql_file,
    train,
)
from tests.integration.reliability.conftest import DAY, MODEL, World, context, table_checksums

CASES: dict[str, Case] = {
    # --- the contract ----------------------------------------------------------------------
    "contract-malformed-yaml": op_case(
        "contract",
        contract_text(lambda _: _BROKEN_YAML),
        features,
        ContractError,
        r"pipeline\.yaml: not valid YAML at line \d+, column \d+",
        r"[Ff]ix the YAML",
    ),
    "contract-not-a-mapping": op_case(
        "contract",
        contract_text(lambda _: "- just\n- a list\n"),
        features,
        ContractError,
        r"pipeline\.yaml: expected a mapping",
        r"name, owners, steps",
    ),
    "contract-unknown-top-level-key": op_case(
        "contract",
        contract(setdeep("owner", "me")),
        features,
        ContractError,
        r"pipeline\.yaml: .*\bowner\b",
        r"unknown key; remove it or check its spelling",
    ),
    "contract-unknown-nested-key": op_case(
        "contract",
        contract(setdeep("windows.lookback_days", 28)),
        features,
        ContractError,
        r"pipeline\.yaml: .*windows\.lookback_days",
        r"unknown key; remove it or check its spelling",
    ),
    "contract-missing-required-key": op_case(
        "contract",
        contract(delete("owners")),
        features,
        ContractError,
        r"pipeline\.yaml: .*owners",
        r"add it",
    ),
    "contract-wrong-type-int": op_case(
        "contract",
        contract(setdeep("inference.top_k", "ten")),
        recommend,
        ContractError,
        r"pipeline\.yaml: .*inference\.top_k.*'ten'",
        r"valid integer",
        logs_failed_run=True,
    ),
    "contract-wrong-type-list": op_case(
        "contract",
        contract(setdeep("features", "all of them")),
        features,
        ContractError,
        r"pipeline\.yaml: .*\bfeatures\b",
        r"valid list",
    ),
    "contract-impossible-window-zero-horizon": op_case(
        "contract",
        contract(setdeep("windows.label_horizon_days", 0)),
        features,
        ContractError,
        r"pipeline\.yaml: .*windows\.label_horizon_days.*got 0",
        r"greater than or equal to 1",
    ),
    "contract-impossible-window-validation": op_case(
        "contract",
        contract(setdeep("windows.validation_days", 9999)),
        train,
        ContractError,
        r"pipeline\.yaml: .*windows\.validation_days.*got 9999",
        r"less than or equal to 365",
    ),
    "contract-sql-path-escapes": op_case(
        "contract",
        contract(lambda raw: raw["steps"][0].update(sql="../../etc/passwd.sql")),
        features,
        ContractError,
        r"pipeline\.yaml: .*steps\.0\.sql",
        r"relative to the sql/ folder",
    ),
    "contract-feature-table-not-written": op_case(
        "contract",
        contract(setdeep("feature_table", "feature_tabel")),
        features,
        ContractError,
        r"pipeline\.yaml: .*'feature_tabel'",
        r"must be written by one of the steps",
    ),
    "contract-file-missing": op_case(
        "contract",
        lambda w: w.pipeline.unlink(),
        features,
        ContractError,
        r"pipeline\.yaml: contract file not found",
        r"Pass the path of your pipeline\.yaml",
    ),
    # --- SQL -------------------------------------------------------------------------------
    "sql-syntax-error": op_case(
        "sql",
        sql_file("broken.sql", "SELECT user_id, FROM events WHERE"),
        lambda w: features(w, table="broken", sql="broken.sql", searchpath=w.root / "sql"),
        SQLTemplateError,
        r"broken\.sql: does not parse as GoogleSQL",
        r"Fix the SQL and rerun",
    ),
    "sql-two-statements": op_case(
        "sql",
        sql_file("two.sql", "SELECT user_id FROM users; DROP TABLE events"),
        lambda w: features(w, table="two", sql="two.sql", searchpath=w.root / "sql"),
        SQLTemplateError,
        r"two\.sql: expected exactly one SQL statement, found 2",
        r"Keep one query per file",
    ),
    "sql-unknown-column": op_case(
        "sql",
        sql_file("nocol.sql", "SELECT user_id, no_such_col FROM users WHERE signup_date <= @as_of"),
        lambda w: features(w, table="nocol", sql="nocol.sql", searchpath=w.root / "sql"),
        SQLTemplateError,
        r"nocol\.sql: DuckDB rejected the query: .*no_such_col",
        r"Fix the SQL",
    ),
    "sql-missing-output-column": op_case(
        "sql",
        sql_file("narrow.sql", "SELECT user_id FROM events WHERE DATE(event_ts) <= @as_of GROUP BY user_id"),
        lambda w: features(w, table="user_features", sql="narrow.sql", searchpath=w.root / "sql"),
        SchemaMismatchError,
        r"narrow\.sql: rows do not match the schema of table main\.user_features: .*user_events: table has "
        r"BIGINT, rows have no such column",
        r"Fix the query to produce the table's columns",
    ),
    "sql-output-type-mismatch": op_case(
        "sql",
        sql_file(
            "typed.sql",
            "SELECT * EXCEPT (as_of_date) REPLACE (CAST(user_events AS STRING) AS user_events) "
            "FROM user_features WHERE as_of_date = @as_of",
        ),
        lambda w: features(w, table="user_features", sql="typed.sql", searchpath=w.root / "sql"),
        SchemaMismatchError,
        r"typed\.sql: .*user_events: table has BIGINT, rows have VARCHAR",
        r"Fix the query",
    ),
    "sql-expression-type-mismatch": op_case(
        "sql",
        sql_file("mix.sql", "SELECT user_id, DATE_DIFF(@as_of, country, DAY) AS d FROM users"),
        lambda w: features(w, table="mix", sql="mix.sql", searchpath=w.root / "sql"),
        SQLTemplateError,
        r"mix\.sql: DuckDB rejected the query",
        r"Fix the SQL",
    ),
    "sql-unknown-table": op_case(
        "sql",
        sql_file("unknown.sql", "SELECT user_id FROM no_such_table WHERE DATE(ts) <= @as_of"),
        lambda w: features(w, table="unknown_out", sql="unknown.sql", searchpath=w.root / "sql"),
        TableNotFoundError,
        r"unknown\.sql: .*no_such_table",
        r"Create the table first",
    ),
    "sql-missing-parameter": op_case(
        "sql",
        sql_file("param.sql", "SELECT user_id FROM users WHERE country = @country"),
        lambda w: features(w, table="param_out", sql="param.sql", searchpath=w.root / "sql"),
        SQLTemplateError,
        r"param\.sql: uses query parameter\(s\) @country but no value was given",
        r"Pass them in `query_params`",
    ),
    "sql-parameter-of-unsupported-type": op_case(
        "sql",
        sql_file("list.sql", "SELECT user_id FROM users WHERE country IN UNNEST(@countries)"),
        lambda w: features(
            w, table="list_out", sql="list.sql", searchpath=w.root / "sql", query_params={"countries": ["DE"]}
        ),
        SQLTemplateError,
        r"query parameter value \['DE'\] has unsupported type list",
        r"pass a bool, int, float, str, date or datetime",
    ),
    # --- identifiers -----------------------------------------------------------------------
    "identifier-injection-in-table": op_case(
        "identifiers",
        nothing,
        lambda w: features(w, table=_INJECTION, sql="recsys/user_features.sql"),
        IdentifierError,
        r"table name 'features; DROP TABLE events; --' is not a valid identifier",
        r"use letters, digits and underscores",
    ),
    "identifier-injection-in-dataset": op_case(
        "identifiers",
        connection(dataset="recsys; DROP SCHEMA main CASCADE; --"),
        features,
        ContractError,
        r"connection 'ml_platform_default': dataset: dataset name 'recsys; DROP SCHEMA main CASCADE; --' is not valid",
        r"use letters, digits and underscores only",
    ),
    "identifier-injection-in-contract-source": op_case(
        "identifiers",
        contract(setdeep("sources.events", "events; DELETE FROM users")),
        features,
        ContractError,
        r"pipeline\.yaml: sources: source table name 'events; DELETE FROM users' is not a valid identifier",
        r"use letters, digits and underscores",
    ),
    "identifier-injection-in-partition-column": op_case(
        "identifiers",
        nothing,
        lambda w: features(w, partition_column="as_of_date = as_of_date; DROP TABLE users; --"),
        IdentifierError,
        r"partition column name .*DROP TABLE users.* is not a valid identifier",
        r"use letters, digits and underscores",
    ),
    # --- data ------------------------------------------------------------------------------
    "data-nan-feature": op_case(
        "data",
        sql(f"UPDATE features SET item_price = 'NaN'::DOUBLE WHERE as_of_date = '{DAY}' AND item_id = 'i00003'"),
        recommend,
        FeatureDataError,
        r"feature item_price is declared nullable: false but has \d+ null value\(s\)",
        r"Fix the SQL \(e\.g\. IFNULL\) or declare it nullable in pipeline\.yaml",
        logs_failed_run=True,
    ),
    "data-null-label": op_case(
        "data",
        sql("UPDATE labels SET relevance = NULL WHERE user_id = (SELECT min(user_id) FROM labels)"),
        train,
        TrainingJobError,
        r"training row\(s\) have no label",
        r"Fix labels\.sql",
    ),
    "data-empty-feature-partition": op_case(
        "data",
        nothing,
        lambda w: features(w, partition_date="2025-01-01"),
        EmptyResultError,
        r"produced no rows for user_features partition as_of_date=2025-01-01",
        r"Check that the source tables have data up to that date",
    ),
    "data-empty-candidate-set": op_case(
        "data",
        sql(f"DELETE FROM features WHERE as_of_date = '{DAY}'"),
        recommend,
        EmptyResultError,
        rf"features partition {DAY}: no candidate rows to score",
        r"Run the features DAG for this date first",
        logs_failed_run=True,
    ),
    "data-label-with-one-class": op_case(
        "data",
        sql("UPDATE labels SET relevance = 0, label = 0"),
        train,
        TrainingJobError,
        r"the label `relevance` has one class only",
        r"Check labels\.sql and the label horizon",
    ),
    "data-duplicate-candidates": op_case(
        "data",
        sql(
            f"INSERT INTO features SELECT * FROM features WHERE as_of_date = '{DAY}' AND user_id IN "
            f"(SELECT user_id FROM features WHERE as_of_date = '{DAY}' ORDER BY user_id LIMIT 3)"
        ),
        recommend,
        FeatureDataError,
        rf"features partition {DAY}: \d+ duplicate \(user_id, item_id\) candidate",
        r"one row per \(user_id, item_id\)",
        logs_failed_run=True,
    ),
    "data-as-of-date-after-the-newest-event": op_case(
        "data",
        nothing,
        lambda w: features(w, partition_date="2099-01-01"),
        EmptyResultError,
        r"user_features\.sql: produced no rows for user_features partition as_of_date=2099-01-01",
        r"Check that the source tables have data up to that date",
    ),
    # --- models ----------------------------------------------------------------------------
    "model-unknown-version": op_case(
        "models",
        nothing,
        lambda w: recommend(w, model_version="v-missing"),
        RegistryError,
        r"model 'recsys' has no version 'v-missing' in table ml_models",
        r"airflow-ml models list",
        logs_failed_run=True,
    ),
    "model-unknown-version-in-drift": op_case(
        "models",
        nothing,
        lambda w: drift(w, model_version="v-missing"),
        RegistryError,
        r"model 'recsys' has no version 'v-missing'",
        r"airflow-ml models list",
    ),
    "model-unknown-candidate-to-promote": op_case(
        "models",
        nothing,
        lambda w: promote(w, version="v-missing"),
        RegistryError,
        r"model 'recsys' has no version 'v-missing'",
        r"airflow-ml models list",
    ),
    "model-no-champion": op_case(
        "models",
        sql("UPDATE ml_models SET status = 'candidate'"),
        recommend,
        RegistryError,
        rf"no champion for model {MODEL}",
        r"train and promote one first",
        logs_failed_run=True,
    ),
    "model-corrupt-model-txt": op_case(
        "models",
        model_file(MODEL_FILE, lambda t: "not a model\n" + t[100:]),
        recommend,
        ModelLoadError,
        r"v1/model/model\.txt does not match the checksum in its envelope",
        r"Retrain the model, or roll back to the previous champion",
        logs_failed_run=True,
    ),
    "model-truncated-model-txt": op_case(
        "models",
        model_file(MODEL_FILE, lambda t: t[: len(t) // 3]),
        recommend,
        ModelLoadError,
        r"v1/model/model\.txt does not match the checksum",
        r"Retrain the model",
        logs_failed_run=True,
    ),
    "model-corrupt-envelope": op_case(
        "models",
        model_file(ENVELOPE_FILE, lambda t: t[: len(t) // 2]),
        recommend,
        ModelLoadError,
        r"v1/model/envelope\.json is not valid JSON",
        r"Retrain the model",
        logs_failed_run=True,
    ),
    "model-files-missing": op_case(
        "models",
        lambda w: (w.model_dir / MODEL_FILE).unlink(),
        recommend,
        ModelLoadError,
        r"v1/model/model\.txt does not exist",
        r"Check the model's uri in ml_models",
        logs_failed_run=True,
    ),
    "model-serving-column-renamed": op_case(
        "models",
        sql("ALTER TABLE features RENAME COLUMN item_trend TO item_trend_v2"),
        recommend,
        SchemaMismatchError,
        r"serving columns do not match model recsys v1: table features has no item_trend\.",
        r"Retrain the model on the current features, or restore the feature SQL",
        logs_failed_run=True,
    ),
    "model-serving-type-changed": op_case(
        "models",
        sql("ALTER TABLE features ALTER item_price SET DATA TYPE VARCHAR"),
        recommend,
        SchemaMismatchError,
        r"serving column types do not match model recsys v1: item_price is string, model expects FLOAT64",
        r"Fix the feature SQL or retrain",
        logs_failed_run=True,
    ),
    "model-drift-segment-column-gone": op_case(
        "models",
        sql("ALTER TABLE features RENAME COLUMN candidate_source TO candidate_origin"),
        drift,
        DriftProfileError,
        r"drift\.segment_by names \['candidate_source'\], which table features does not have",
        r"Segment by columns of features",
    ),
    # --- configuration ---------------------------------------------------------------------
    "config-missing-gcp-connection": op_case(
        "configuration",
        nothing,
        lambda w: features(w, ml_conn_id="ml_gcp"),
        ContractError,
        r"connection 'ml_gcp' does not exist",
        r"Create it with conn type 'ml_platform'",
    ),
    "config-gcp-without-project": op_case(
        "configuration",
        connection(backend="gcp"),
        features,
        ContractError,
        r"backend 'gcp' needs project and dataset in the connection extras",
        r'e\.g\. \{"backend": "gcp", "project": "my-project"',
    ),
    "config-negative-maximum-bytes-billed": op_case(
        "configuration",
        connection(maximum_bytes_billed=-1),
        features,
        ContractError,
        r"connection 'ml_platform_default': maximum_bytes_billed: .*\(got -1\)",
        r"greater than 0",
    ),
    "config-maximum-bytes-billed-not-a-number": op_case(
        "configuration",
        connection(maximum_bytes_billed="10GB"),
        recommend,
        ContractError,
        r"maximum_bytes_billed: .*\(got '10GB'\)",
        r"valid integer",
    ),
    "config-unknown-connection-extra": op_case(
        "configuration",
        connection(warehouse="/tmp/elsewhere.duckdb"),
        drift,
        ContractError,
        r"connection 'ml_platform_default': warehouse:",
        r"unknown key; remove it or check its spelling",
    ),
    "config-drift-threshold-out-of-range": op_case(
        "configuration",
        contract(setdeep("drift.psi_drift", 50)),
        drift,
        ContractError,
        r"pipeline\.yaml: drift\.psi_drift: psi_drift must be a number between 0 and 10",
        r"e\.g\. 0\.10 to warn and 0\.25 for drift",
    ),
    "config-drift-warn-above-drift": op_case(
        "configuration",
        contract(lambda raw: raw["drift"]["thresholds"]["item_category"].update(psi_warn=0.5)),
        drift,
        ContractError,
        r"pipeline\.yaml: drift: thresholds\.item_category: psi_warn \(0\.5\) must not exceed psi_drift \(0\.1\)",
        r"must not exceed",
    ),
    "config-drift-fail-on-unknown": op_case(
        "configuration",
        nothing,
        lambda w: drift(w, fail_on="sometimes"),
        ContractError,
        r"task 'drift': fail_on must be one of drift, warn, never, got 'sometimes'",
        r"must be one of",
    ),
    "config-bad-partition-date": op_case(
        "configuration",
        nothing,
        lambda w: recommend(w, prediction_date="yesterday"),
        ContractError,
        r"prediction_date must render to a YYYY-MM-DD date, got 'yesterday'",
        r"YYYY-MM-DD",
    ),
    # --- data that is wrong but valid: the contract's data checks (issue 14) ---------------------
    "check-duplicated-events": op_case(
        "data checks",
        sql("INSERT INTO events SELECT * FROM events"),
        lambda w: checks(w, scope="events"),
        DataCheckError,
        r"data checks of 2026-03-31: .*\[duplicate_events\] events: \d+ of \d+ events .*\(50\.0%\) repeat another",
        r"Deduplicate the source",
    ),
    "check-duplicated-events-all-scopes": op_case(
        "data checks",
        sql("INSERT INTO events SELECT * FROM events"),
        checks,
        DataCheckError,
        r"\[duplicate_events\]",
        r"nothing was written",
    ),
    "check-null-in-non-nullable-feature": op_case(
        "data checks",
        sql_file(
            "features_null.sql",
            "SELECT * EXCEPT (as_of_date) REPLACE (IF(item_id < 'i00040', NULL, item_category) AS item_category) "
            "FROM features WHERE as_of_date = @as_of",
        ),
        lambda w: features(w, table="features", sql="features_null.sql", searchpath=w.root / "sql"),
        DataCheckError,
        r"features\.item_category has \d+ NULL value\(s\) in partition 2026-03-31 but must have none",
        r"declare the column nullable in pipeline\.yaml",
    ),
    "check-nan-in-non-nullable-feature": op_case(
        "data checks",
        sql_file(
            "features_nan.sql",
            "SELECT * EXCEPT (as_of_date) REPLACE (IF(item_id = 'i00003', CAST('NaN' AS FLOAT64), item_price) "
            "AS item_price) FROM features WHERE as_of_date = @as_of",
        ),
        lambda w: features(w, table="features", sql="features_nan.sql", searchpath=w.root / "sql"),
        DataCheckError,
        r"features\.item_price has \d+ NULL value\(s\)",
        r"IFNULL",
    ),
    "check-duplicate-feature-keys": op_case(
        "data checks",
        sql_file(
            "features_dupes.sql",
            "SELECT * EXCEPT (as_of_date) FROM features WHERE as_of_date = @as_of UNION ALL "
            "SELECT * EXCEPT (as_of_date) FROM features WHERE as_of_date = @as_of AND user_id < 'u00010'",
        ),
        lambda w: features(w, table="features", sql="features_dupes.sql", searchpath=w.root / "sql"),
        DataCheckError,
        r"features partition 2026-03-31: \d+ row\(s\) repeat a \(user_id, item_id\) key that must be unique",
        r"a join fanned out",
    ),
    "check-accepted-values": op_case(
        "data checks",
        contract(
            setdeep(
                "checks",
                {
                    "tables": {
                        "features": [
                            {"check": "accepted_values", "column": "candidate_source", "values": ["history", "covisit"]}
                        ]
                    }
                },
            )
        ),
        lambda w: features(w, table="features"),
        DataCheckError,
        r"features\.candidate_source has \d+ value\(s\) in partition 2026-03-31 outside the accepted values",
        r"add the value to checks\.tables\.features",
    ),
    "check-range": op_case(
        "data checks",
        contract(
            setdeep("checks", {"tables": {"item_features": [{"check": "range", "column": "item_price", "max": 1}]}})
        ),
        lambda w: features(w, table="item_features"),
        DataCheckError,
        r"item_features\.item_price has \d+ value\(s\) in partition 2026-03-31 outside the range \[-inf, 1\]",
        r"widen the range in checks\.tables\.item_features",
    ),
    "check-future-events": op_case(
        "data checks",
        sql(
            "INSERT INTO events SELECT * REPLACE (TIMESTAMPTZ '2099-01-01 00:00:00+00' AS event_ts) FROM events LIMIT 5"
        ),
        lambda w: checks(w, scope="events"),
        DataCheckError,
        r"\[future_events\] events: 5 event\(s\) have event_ts after",
        r"Fix the loader's clock or time zone",
    ),
    "check-day-without-events": op_case(
        "data checks",
        sql(f"DELETE FROM events WHERE CAST(event_ts AS DATE) = DATE '{DAY}'"),
        lambda w: checks(w, scope="events"),
        DataCheckError,
        rf"\[freshness\] events: events must reach {DAY} for as-of date {DAY}, but the newest is on 2026-03-30",
        r"Load the missing events",
    ),
    "check-label-horizon-without-events": op_case(
        "data checks",
        nothing,
        lambda w: features(w, table="labels"),
        # The horizon guard refuses before any check runs (issue 13): labels are never all zeros.
        HorizonNotPassedError,
        rf"labels \(labels\) for {DAY}: the events source reaches to no day after {DAY}, before the end of",
        r"once events through 2026-04-07 are loaded; load them, then rerun\. Nothing was written",
    ),
    "check-label-horizon-no-interactions": op_case(
        "data checks",
        sql("DELETE FROM events WHERE CAST(event_ts AS DATE) BETWEEN DATE '2026-03-22' AND DATE '2026-03-28'"),
        lambda w: features(w, table="labels", partition_date="2026-03-21"),
        DataCheckError,
        r"labels partition 2026-03-21: 0 positive label\(s\) of \d+ row\(s\)",
        r"Check that events cover the horizon",
    ),
    "check-contract-unknown-table": op_case(
        "data checks",
        contract(setdeep("checks", {"tables": {"user_featurez": [{"check": "not_null", "column": "user_id"}]}})),
        features,
        ContractError,
        r"pipeline\.yaml: .*checks\.tables: 'user_featurez' is not written by a step",
        r"check one of user_features",
    ),
    "check-contract-unique-without-columns": op_case(
        "data checks",
        contract(setdeep("checks", {"tables": {"features": [{"check": "unique"}]}})),
        features,
        ContractError,
        r"pipeline\.yaml: checks\.tables\.features\.0",
        r"unique needs `columns`",
    ),
    "check-contract-unknown-severity": op_case(
        "data checks",
        contract(setdeep("checks", {"events": {"freshness": {"severity": "fatal"}}})),
        lambda w: checks(w, scope="events"),
        ContractError,
        r"pipeline\.yaml: checks\.events\.freshness\.severity",
        r"'error' or 'warn'",
    ),
    "check-bad-scope": op_case(
        "data checks",
        nothing,
        lambda w: checks(w, scope="everything"),
        ContractError,
        r"task 'checks': scope must be one of all, events, tables, steps, preflight, got 'everything'",
        r"must be one of",
    ),
    "check-events-role-missing": op_case(
        "data checks",
        contract(setdeep("checks", {"events": {"source": "clicks"}})),
        lambda w: checks(w, scope="events"),
        ContractError,
        r"pipeline\.yaml: .*checks\.events\.source: 'clicks' is not a role in `sources`",
        r"name the events role, or set `events: null`",
    ),
    "check-on-unknown-column": op_case(
        "data checks",
        contract(setdeep("checks", {"tables": {"features": [{"check": "not_null", "column": "no_such_column"}]}})),
        lambda w: features(w, table="features"),
        SQLTemplateError,
        r"data checks of recsys/features\.sql: DuckDB rejected the query: .*no_such_column",
        r"Fix the SQL",
    ),
    "sensor-partition-never-built": op_case(
        "data checks",
        nothing,
        lambda w: sensor(w, "partition", table="features", partition_date="2026-04-15", producer_dag="recsys_features"),
        AirflowSensorTimeout,
        r"features partition as_of_date=2026-04-15 still has fewer than 1 row\(s\).*DAG 'recsys_features'",
        r"airflow backfill create --dag-id recsys_features --from-date 2026-04-15 --to-date 2026-04-15",
        raised=AirflowSensorTimeout,
    ),
    "sensor-no-champion": op_case(
        "data checks",
        sql("UPDATE ml_models SET status = 'candidate'"),
        lambda w: sensor(w, "champion", model_name=MODEL),
        AirflowSensorTimeout,
        rf"model '{MODEL}' still has no champion in ml_models",
        r"airflow-ml models rollback",
        raised=AirflowSensorTimeout,
    ),
    "date-empty-prediction-date": op_case(
        "configuration",
        nothing,
        lambda w: recommend(w, prediction_date=""),
        ContractError,
        r"prediction_date must render to a YYYY-MM-DD date, got ''",
        r"Pass a date such as",
    ),
    # --- strict dates ----------------------------------------------------------------------
    "date-injection-in-prediction-date": op_case(
        "configuration",
        nothing,
        lambda w: recommend(w, prediction_date=f"{DAY}; DROP TABLE events"),
        ContractError,
        r"prediction_date must render to a YYYY-MM-DD date, got '2026-03-31; DROP TABLE events'",
        r"Pass a date such as",
    ),
    "date-injection-in-partition-date": op_case(
        "configuration",
        nothing,
        lambda w: features(w, partition_date=f"{DAY}; DROP TABLE events"),
        ContractError,
        r"partition_date must render to a YYYY-MM-DD date, got '2026-03-31; DROP TABLE events'",
        r"Pass a date such as",
    ),
    "date-not-a-calendar-day": op_case(
        "configuration",
        nothing,
        lambda w: features(w, partition_date="2026-02-30"),
        ContractError,
        r"partition_date '2026-02-30' is not a calendar date",
        r"Pass a real YYYY-MM-DD date",
    ),
    "date-compact-run-date": op_case(
        "configuration",
        nothing,
        lambda w: train(w, run_date="20260331"),
        ContractError,
        r"run_date must render to a YYYY-MM-DD date, got '20260331'",
        r"Pass a date such as",
    ),
    "date-bad-date-in-drift": op_case(
        "configuration",
        nothing,
        lambda w: drift(w, partition_date="31/03/2026"),
        ContractError,
        r"partition_date must render to a YYYY-MM-DD date, got '31/03/2026'",
        r"Pass a date such as",
    ),
    "date-bad-date-in-checks": op_case(
        "configuration",
        nothing,
        lambda w: checks(w, partition_date="2026-13-01"),
        ContractError,
        r"partition_date '2026-13-01' is not a calendar date",
        r"Pass a real YYYY-MM-DD date",
    ),
    # --- the CLI ---------------------------------------------------------------------------
    "cli-contract-unknown-key": cli_case(
        "cli",
        contract(setdeep("windows.lookback", 3)),
        lambda w: ["features", "--pipeline", str(w.pipeline), "--date", str(DAY)],
        r"airflow-ml features: error: .*pipeline\.yaml: windows\.lookback",
        r"unknown key; remove it or check its spelling",
    ),
    "cli-empty-feature-date": cli_case(
        "cli",
        nothing,
        lambda w: ["features", "--pipeline", str(w.pipeline), "--date", "2026-06-30"],
        r"airflow-ml features: error: feature steps of 2026-06-30: .*\[freshness\] events: events must reach "
        r"2026-06-30 for as-of date 2026-06-30, but no event in the scanned window",
        r"Load the missing events, or run this date once they have arrived",
    ),
    "cli-feature-date-before-start": cli_case(
        "cli",
        nothing,
        lambda w: ["features", "--pipeline", str(w.pipeline), "--date", "2025-01-01"],
        r"airflow-ml features: error: --date 2025-01-01 is before the pipeline's start_date 2026-01-17 "
        r"\(.*pipeline\.yaml: start_date\)",
        r"set start_date earlier in the contract",
    ),
    "cli-check-duplicated-events": cli_case(
        "cli",
        sql("INSERT INTO events SELECT * FROM events"),
        lambda w: ["check", "--pipeline", str(w.pipeline), "--date", str(DAY), "--record"],
        r"airflow-ml check: error: data checks of 2026-03-31: .*\[duplicate_events\]",
        r"Deduplicate the source",
    ),
    # --- a date's feature steps are all-or-nothing ---------------------------------------------
    "steps-last-step-sql-error-cli": cli_case(
        "data checks",
        broken_sql_copy("features.sql", _TYPO),
        lambda w: [
            "features",
            "--pipeline",
            str(w.pipeline),
            "--sql-dir",
            str(w.root / "sql_copy"),
            "--date",
            str(DAY),
        ],
        r"airflow-ml features: error: .*features\.sql: does not parse as GoogleSQL at line 1",
        r"Fix the SQL and rerun",
    ),
    "steps-last-step-sql-error-dag-gate": op_case(
        "data checks",
        broken_sql_copy("features.sql", _TYPO),
        lambda w: checks(w, scope="preflight", record=False, searchpath=w.root / "sql_copy"),
        SQLTemplateError,
        r"features\.sql: does not parse as GoogleSQL",
        r"Fix the SQL and rerun",
    ),
    "steps-last-step-error-check-cli": cli_case(
        "data checks",
        both(contract(lambda raw: raw["checks"]["tables"]["features"].append(_RANK_MAX_1)), fresh_events),
        lambda w: ["features", "--pipeline", str(w.pipeline), "--date", str(DAY)],
        r"airflow-ml features: error: feature steps of 2026-03-31: 1 data check\(s\) failed, nothing was written"
        r"\. \[range\(candidate_rank\)\] features\.candidate_rank",
        r"Fix the SQL, or widen the range in checks\.tables\.features",
    ),
    "steps-last-step-error-check-dag-gate": op_case(
        "data checks",
        both(contract(lambda raw: raw["checks"]["tables"]["features"].append(_RANK_MAX_1)), fresh_events),
        lambda w: checks(w, scope="preflight", record=False),
        DataCheckError,
        r"\[range\(candidate_rank\)\] features\.candidate_rank has \d+ value\(s\)",
        r"Fix the SQL, or widen the range",
    ),
    "steps-gate-without-searchpath": op_case(
        "configuration",
        nothing,
        lambda w: _checks_without_searchpath(w),
        ContractError,
        r"task 'checks': scope 'steps' reads the feature steps' SQL files from the DAG's template_searchpath",
        r"Pass template_searchpath=",
    ),
    # --- model.py is checked before any data is exported ---------------------------------------
    "model-py-transform-renames-feature": op_case(
        "models",
        hooks_file("def transform(df):\n    return df.rename(columns={'item_price': 'price'})\n"),
        train,
        ContractError,
        r"model\.py: transform\(\) dropped or renamed column\(s\) item_price; it returned new column\(s\) price",
        r"must return every column it is given",
    ),
    "model-py-transform-drops-features": op_case(
        "models",
        hooks_file("def transform(df):\n    return df.drop(columns=['user_events', 'item_views'])\n"),
        train,
        ContractError,
        r"transform\(\) dropped or renamed column\(s\) user_events, item_views\.",
        r"remove a feature from `features:` in pipeline\.yaml",
    ),
    "model-py-import-error": op_case(
        "models",
        hooks_file("import no_such_module_here\n"),
        train,
        ContractError,
        r"model\.py: fails to import: ModuleNotFoundError: No module named 'no_such_module_here'",
        r"Fix model\.py",
    ),
    "model-py-undocumented-hook-cli": cli_case(
        "models",
        hooks_file("def param(defaults):\n    return defaults\n"),
        lambda w: [
            "train",
            "--pipeline",
            str(w.pipeline),
            "--date",
            str(DAY),
            "--no-promote",
            "--artifacts",
            str(w.root / "cli-artifacts"),
        ],
        r"airflow-ml train: error: .*model\.py: defines param, which are not documented hooks",
        r"Offer only params",
    ),
    # --- the command line a new user meets ------------------------------------------------------
    "cli-warehouse-path-missing": Case(
        "cli",
        nothing,
        missing_warehouse,
        CLIFailed,
        r"airflow-ml tables: error: --warehouse .*typo\.duckdb: no such warehouse file",
        r"Check the path, or create one with `airflow-ml seed-demo --warehouse",
        raised=CLIFailed,
    ),
    "cli-no-contract-in-project": Case(
        "cli",
        nothing,
        project_without_contract,
        CLIFailed,
        r"airflow-ml features: error: no pipeline\.yaml found: looked for dags/\*/pipeline\.yaml in .*not-a-project",
        r"Pass --pipeline PATH, run the command from your project, or create one with `airflow-ml init NAME`",
        raised=CLIFailed,
    ),
    "cli-two-contracts-in-project": Case(
        "cli",
        nothing,
        project_with_two_contracts,
        CLIFailed,
        r"airflow-ml features: error: 2 pipelines found in .*dags/churn/pipeline\.yaml, .*dags/recsys/pipeline\.yaml",
        r"Pass --pipeline with the one you mean",
        raised=CLIFailed,
    ),
    "cli-recommendations-unknown-user": cli_case(
        "cli",
        nothing,
        lambda w: ["recommendations", "--date", str(DAY), "--user", "u_nobody", "--json"],
        r"airflow-ml recommendations: error: user 'u_nobody' has no recommendations for 2026-03-31",
        r"Check the id",
    ),
    "cli-recommendations-date-without-run": cli_case(
        "cli",
        nothing,
        lambda w: ["recommendations", "--date", "2026-03-01"],
        r"airflow-ml recommendations: error: no successful recommendation run for 2026-03-01",
        r"`airflow-ml recommend --date 2026-03-01`",
    ),
    "cli-recommend-unknown-model-version": cli_case(
        "cli",
        nothing,
        lambda w: ["recommend", "--pipeline", str(w.pipeline), "--date", str(DAY), "--model-version", "v404"],
        r"airflow-ml recommend: error: model 'recsys' has no version 'v404'",
        r"`airflow-ml models list`",
    ),
    "cli-models-promote-unknown-version": cli_case(
        "cli",
        nothing,
        lambda w: ["models", "promote", "v404", "--pipeline", str(w.pipeline)],
        r"airflow-ml models: error: model 'recsys' has no version 'v404'",
        r"`airflow-ml models list`",
    ),
    "cli-models-promote-without-version": cli_case(
        "cli",
        nothing,
        lambda w: ["models", "promote", "--pipeline", str(w.pipeline)],
        r"airflow-ml models: error: models promote needs a VERSION",
        r"one of `airflow-ml models list`",
    ),
    "cli-models-list-unknown-model": cli_case(
        "cli",
        nothing,
        lambda w: ["models", "list", "--model", "recsys_typo", "--json"],
        r"airflow-ml models: error: no model named 'recsys_typo' is registered",
        r"Check --model",
    ),
    "cli-check-preflight-sql-error": cli_case(
        "cli",
        broken_sql_copy("candidates.sql", "SELECT user_id FROM {{ source('events') }} GROUP BY\n"),
        lambda w: [
            "check",
            "--pipeline",
            str(w.pipeline),
            "--date",
            str(DAY),
            "--scope",
            "preflight",
            "--sql-dir",
            str(w.root / "sql_copy"),
        ],
        r"airflow-ml check: error: .*candidates\.sql \(checked before publishing\): DuckDB rejected the query",
        r"Fix the SQL \(names and types must match the tables it reads\) and rerun",
    ),
}


def _merge_case_tables() -> None:
    """Add every ``cases_*.py`` module's ``CASES`` to the table (a name may appear only once)."""
    import importlib
    import pkgutil

    package = "tests.integration.reliability"
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("cases_"):
            extra = importlib.import_module(f"{package}.{info.name}").CASES
            clash = CASES.keys() & extra.keys()
            assert not clash, f"{info.name} repeats case names: {sorted(clash)}"
            CASES.update(extra)


_merge_case_tables()


def _checks_without_searchpath(w: World) -> Any:
    from airflow_ml_provider.operators.checks import DataCheckOperator

    with DAG("reliability_checks_no_searchpath", schedule=None):
        op = DataCheckOperator(task_id="checks", pipeline=str(w.pipeline), partition_date=str(DAY), scope="steps")
    return op.execute(context("checks"))


RESULTS: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """Print the counts the closing note of the reliability issue asks for."""
    yield
    tried = len(RESULTS)
    passed = sum(r["passed"] for r in RESULTS)
    lost = sum(r["rows_lost"] for r in RESULTS)
    line = f"bad input: tried {tried}, passed {passed}, rows lost {lost}"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line("")
            reporter.write_line(line)


def test_bad_input_table_has_enough_cases():
    assert len(CASES) >= 140  # issue 25: every case of its corpus, generalised
    assert {c.area for c in CASES.values()} >= {
        "contract",
        "sql",
        "identifiers",
        "data",
        "data checks",
        "models",
        "configuration",
    }


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_bad_input_fails_clearly_and_changes_no_table(name: str, case: World):
    c = CASES[name]
    result: dict[str, Any] = {"case": name, "passed": False, "rows_lost": 0}
    RESULTS.append(result)
    c.setup(case)
    before = table_checksums(case.warehouse)

    with pytest.raises(c.raised) as info:
        c.run(case)

    after = table_checksums(case.warehouse)
    result["rows_lost"] = sum(max(0, n - after.get(t, (0, 0))[0]) for t, (n, _) in before.items())
    error = info.value if c.raised is CLIFailed else info.value.__cause__
    assert isinstance(error, c.error), f"expected {c.error.__name__}, got {type(error).__name__}: {error}"
    message = str(info.value)
    assert re.search(c.names, message), f"the thing is not named: {message}"
    assert re.search(c.fix, message), f"the fix is not given: {message}"

    changed = {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}
    if c.logs_failed_run:
        assert changed <= {RUNS}, changed
        assert after[RUNS][0] == before[RUNS][0] + 1
        runs = (
            DuckDBWarehouse(case.warehouse)
            .query("SELECT status, error FROM recommendation_runs WHERE run_id = 'bad-input'")
            .to_pylist()
        )
        assert len(runs) == 1 and runs[0]["status"] == "failed", runs
        assert str(error)[:60] in runs[0]["error"], runs
    else:
        assert changed == set(), {t: (before.get(t), after.get(t)) for t in changed}
    result["passed"] = True


def test_future_events_do_not_leak_into_features(case: World):
    """Events after the as-of date exist (a backfill always has them); the day's features must not see them."""
    tables = ("user_features", "item_features", "candidates", "features")
    for table in tables:  # the world was built by the CLI's code path; the operator must give the same rows
        features(case, table=table)
    before = table_checksums(case.warehouse)
    later = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    with DuckDBWarehouse(case.warehouse).connect() as con:
        con.execute(
            "INSERT INTO events SELECT * REPLACE ($ts AS event_ts) FROM events ORDER BY event_ts DESC LIMIT 500",
            {"ts": later},
        )
    for table in tables:
        features(case, table=table)
    after = table_checksums(case.warehouse)
    assert {t: after[t] for t in after if t != "main.events"} == {t: before[t] for t in before if t != "main.events"}
    assert after["main.events"][0] == before["main.events"][0] + 500
