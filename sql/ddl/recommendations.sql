-- recommendations: the top-k list of every active user for each prediction date.
-- The product's public table: analysts query it from BI and the application reads it.
-- One partition per prediction_date, replaced atomically by each inference run
-- (a rerun replaces, never appends). Columns are documented in docs/tables.md.
-- `source` came later: ensure_tables adds it to a table created before (core/warehouse/ddl.py).
CREATE TABLE IF NOT EXISTS recommendations (
  prediction_date DATE,
  user_id STRING,
  item_id STRING,
  rank INT64,
  score FLOAT64,
  model_name STRING,
  model_version STRING,
  run_id STRING,
  generated_at TIMESTAMP,
  source STRING
)
PARTITION BY prediction_date
CLUSTER BY user_id
OPTIONS (description = 'Top-k recommendations per user and prediction date; see docs/tables.md')
