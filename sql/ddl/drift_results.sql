-- drift_results: what each drift check found, one partition per logical date.
-- One row per (scanned table, segment, column, metric); a skipped column has one `psi` row
-- with status 'skipped' and its reason; the row with feature '__dataset__' holds the
-- verdict. A rerun for a date replaces that date's partition, so there is one set of results.
-- Columns are nullable on purpose: BigQuery copies a partition only between identical modes.
-- Written only by DriftCheckOperator (airflow_ml_provider.core.drift.check).
CREATE TABLE IF NOT EXISTS drift_results (
  logical_date DATE OPTIONS(description = "The date checked: the features / recommendations partition."),
  run_id STRING OPTIONS(description = "Airflow run that wrote the row."),
  model_name STRING OPTIONS(description = "Model whose reference profile was compared with."),
  model_version STRING OPTIONS(description = "Version of that model (the champion at check time, or pinned)."),
  table_name STRING OPTIONS(description = "Scanned table: the feature table, or recommendations for prediction drift."),
  segment STRING OPTIONS(description = "'__all__' for every row, else 'column=value,...' of drift.segment_by."),
  feature STRING OPTIONS(description = "Checked column ('score' for predictions); '__dataset__' for the verdict row."),
  kind STRING OPTIONS(description = "numeric | categorical."),
  metric STRING OPTIONS(description = "psi | js_distance | l_inf | null_rate_change | new_category_share | drifted_share."),
  value FLOAT64 OPTIONS(description = "The metric's value; NULL when the column was skipped."),
  warn_threshold FLOAT64 OPTIONS(description = "PSI warning level applied (psi rows only)."),
  threshold FLOAT64 OPTIONS(description = "PSI drift level applied (psi rows only)."),
  severity STRING OPTIONS(description = "psi rows: ok | warn | drift; other metrics: info; verdict row: ok | warn | drift | skipped."),
  status STRING OPTIONS(description = "evaluated | skipped."),
  skip_reason STRING OPTIONS(description = "Why the column was skipped: 'empty: ...', 'too_small: ...', 'constant: ...'."),
  n_ref INT64 OPTIONS(description = "Rows in the reference profile (training window)."),
  n_cur INT64 OPTIONS(description = "Rows scanned for the logical date."),
  null_rate_ref FLOAT64 OPTIONS(description = "Share of null (or NaN) values in the reference."),
  null_rate_cur FLOAT64 OPTIONS(description = "Share of null (or NaN) values in the current rows."),
  checked_at TIMESTAMP OPTIONS(description = "When the check ran.")
)
PARTITION BY logical_date
CLUSTER BY model_name, feature
OPTIONS(description = "Drift check results: per column and metric, per logical date (PSI, JS distance, L-infinity, null-rate change, new categories).");
