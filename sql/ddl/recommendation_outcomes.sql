-- recommendation_outcomes: what the served lists actually did. One partition per served
-- prediction_date, written once that date's label horizon has passed (a date evaluated
-- earlier is refused). One row per (list_source, model_version, segment): the served lists
-- (list_source = 'model') and, beside them, the same day's global popularity list
-- (list_source = 'global_popularity'), both judged against everything each user did in the
-- horizon, not only against the candidates. A rerun replaces the date's partition.
-- Written by OutcomeEvaluationOperator (DAG recsys_outcomes); see docs/tables.md.
CREATE TABLE IF NOT EXISTS recommendation_outcomes (
  prediction_date DATE OPTIONS(description = "The served date whose lists are judged."),
  horizon_start DATE OPTIONS(description = "First day of the horizon the lists are judged on (the day after prediction_date)."),
  horizon_end DATE OPTIONS(description = "Last day of the horizon, inclusive."),
  list_source STRING OPTIONS(description = "model | global_popularity: the served lists, or the same day's top-k most popular items given to every user."),
  model_name STRING OPTIONS(description = "Model that served the lists (for global_popularity: the model whose users were judged)."),
  model_version STRING OPTIONS(description = "Model version that served the lists."),
  segment STRING OPTIONS(description = "'all', or a value of the contract's segment column."),
  k INT64 OPTIONS(description = "List length judged (the contract's top_k)."),
  lists INT64 OPTIONS(description = "Lists served (users with a list on prediction_date)."),
  active_users INT64 OPTIONS(description = "Users with a list who did anything in the horizon: the denominator of the rates below."),
  hits INT64 OPTIONS(description = "Active users with at least one recommended item they then interacted with."),
  hit_rate FLOAT64 OPTIONS(description = "hits / active_users."),
  precision_at_k FLOAT64 OPTIONS(description = "Mean over active users of (recommended items interacted with) / k."),
  recall_at_k FLOAT64 OPTIONS(description = "Mean over active users of (recommended items interacted with) / (distinct items interacted with), end to end."),
  ndcg_at_k FLOAT64 OPTIONS(description = "Mean over active users of NDCG@k with graded relevance per event type, end to end."),
  purchases INT64 OPTIONS(description = "Purchases in the horizon of items that were on the user's list."),
  revenue FLOAT64 OPTIONS(description = "Revenue in the horizon from those purchases (price from the items table, or the event's own amount)."),
  coverage FLOAT64 OPTIONS(description = "Distinct recommended items / items in the catalogue."),
  run_id STRING OPTIONS(description = "Airflow run (or 'cli') that evaluated the date."),
  evaluated_at TIMESTAMP OPTIONS(description = "When the outcomes were computed.")
)
PARTITION BY prediction_date
CLUSTER BY model_version
OPTIONS(description = "Realized outcomes of served recommendations vs the global popularity list; see docs/tables.md.");
