-- recommendation_runs: one row per batch inference attempt (run_id, try_number), failed
-- attempts included, with the model used, volumes, coverage and timings.
CREATE TABLE IF NOT EXISTS recommendation_runs (
  run_id STRING NOT NULL,
  try_number INT64 NOT NULL,
  prediction_date DATE NOT NULL,
  model_name STRING,
  model_version STRING,
  status STRING NOT NULL,
  users INT64,
  rows_written INT64,
  candidates INT64,
  catalog_items INT64,
  coverage FLOAT64,
  seconds_total FLOAT64,
  seconds_read FLOAT64,
  seconds_score FLOAT64,
  seconds_write FLOAT64,
  rows_per_second FLOAT64,
  error STRING,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP NOT NULL
)
PARTITION BY prediction_date
CLUSTER BY model_version
OPTIONS (description = 'One row per batch inference attempt; see docs/tables.md')
