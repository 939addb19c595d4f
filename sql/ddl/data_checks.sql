-- data_checks: the verdicts of the contract's data checks (pipeline.yaml `checks:`), one
-- partition per checked date. One row per (table, check). A rerun for a date replaces that
-- date's partition. An `error` check that fails stops its task before anything is written,
-- so failures show in the task log; the rows here are the passes, warnings and skips of
-- the dates that were published. Written by DataCheckOperator and `airflow-ml check --record`.
CREATE TABLE IF NOT EXISTS data_checks (
  check_date DATE OPTIONS(description = "The as-of date checked (the feature partitions, the events up to it)."),
  table_name STRING OPTIONS(description = "Checked table: a step table, or the events source."),
  check_name STRING OPTIONS(description = "dbt-style name: not_null(col), unique(a, b), accepted_values(col), range(col), freshness, future_events, duplicate_events, row_count, label_completeness(...)."),
  observed FLOAT64 OPTIONS(description = "What the check measured: failing rows, days of lag, a share or a relative change."),
  threshold FLOAT64 OPTIONS(description = "The limit the observed value was judged against."),
  severity STRING OPTIONS(description = "error | warn: what a failure does (stop, or write and record)."),
  status STRING OPTIONS(description = "pass | warn | fail | skipped."),
  message STRING OPTIONS(description = "Why it did not pass, and what to do; empty on pass."),
  run_id STRING OPTIONS(description = "Airflow run (or 'cli') that ran the checks."),
  checked_at TIMESTAMP OPTIONS(description = "When the checks ran.")
)
PARTITION BY check_date
CLUSTER BY table_name
OPTIONS(description = "Data check results per date, table and check; see docs/tables.md.");
