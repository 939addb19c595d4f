-- recommendations: the top-k list of every active user for each prediction date.
-- The product's public table: analysts query it from BI and the application reads it.
-- One partition per prediction_date, replaced atomically by each inference run
-- (a rerun replaces, never appends). Columns are documented in docs/tables.md.
CREATE TABLE IF NOT EXISTS recommendations (
  prediction_date DATE NOT NULL,
  user_id STRING NOT NULL,
  item_id STRING NOT NULL,
  rank INT64 NOT NULL,
  score FLOAT64 NOT NULL,
  model_name STRING NOT NULL,
  model_version STRING NOT NULL,
  run_id STRING NOT NULL,
  generated_at TIMESTAMP NOT NULL
)
PARTITION BY prediction_date
CLUSTER BY user_id
OPTIONS (description = 'Top-k recommendations per user and prediction date; see docs/tables.md')
