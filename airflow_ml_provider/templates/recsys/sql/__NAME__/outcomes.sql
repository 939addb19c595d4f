-- Realized outcomes, the rows: the lists served on @as_of (a prediction_date of recommendations)
-- beside everything each served user did in the @label_horizon_days days AFTER it,
-- (@as_of, @as_of + @label_horizon_days], recommended or not. The metrics
-- (hit rate, precision/recall/ndcg@k) are computed from these rows by the same Python code as
-- offline evaluation (core/evaluation/outcomes.py, core/evaluation/offline.py), so both mean the same thing.
-- One row per (served user, item) that was recommended, interacted with in the horizon, or both:
--   rank       position in the served list; NULL for an item the user found elsewhere
--   relevance  graded as in labels.sql: 3 purchase, 2 add to cart, 1 view, 0 nothing
--   purchases  purchase events of the item by the user in the horizon
--   revenue    purchases * the item's price in the items source (NULL when it has none:
--              revenue is never invented; source_columns: {items: {price: null}} makes every row NULL)
-- Runs once the horizon has passed (OutcomeEvaluationOperator refuses earlier dates).
-- Owner: data science (the relevance grades), ML platform engineering (the table it feeds).
WITH served AS (
  SELECT user_id, item_id, rank, model_name, model_version
  FROM recommendations
  WHERE prediction_date = @as_of
),
served_users AS (
  SELECT DISTINCT user_id, model_name, model_version FROM served
),
horizon_events AS (
  SELECT
    user_id,
    item_id,
    MAX(CASE event_type WHEN 'purchase' THEN 3 WHEN 'add_to_cart' THEN 2 WHEN 'view' THEN 1 ELSE 0 END) AS relevance,
    COUNTIF(event_type = 'purchase') AS purchases
  FROM {{ source('events') }}
  WHERE DATE(event_ts) > @as_of
    AND DATE(event_ts) <= DATE_ADD(@as_of, INTERVAL @label_horizon_days DAY)
    AND user_id IN (SELECT user_id FROM served_users)
  GROUP BY user_id, item_id
  HAVING relevance > 0
),
prices AS (
  SELECT item_id, MAX(price) AS price FROM {{ source('items') }} GROUP BY item_id
),
judged AS (
  SELECT
    COALESCE(s.user_id, h.user_id) AS user_id,
    COALESCE(s.item_id, h.item_id) AS item_id,
    s.rank,
    CAST(IFNULL(h.relevance, 0) AS INT64) AS relevance,
    CAST(IFNULL(h.purchases, 0) AS INT64) AS purchases
  FROM served AS s
  FULL OUTER JOIN horizon_events AS h ON h.user_id = s.user_id AND h.item_id = s.item_id
)
SELECT
  u.model_name,
  u.model_version,
  j.user_id,
  j.item_id,
  CAST(j.rank AS INT64) AS rank,
  j.relevance,
  j.purchases,
  CAST(j.purchases * p.price AS FLOAT64) AS revenue
FROM judged AS j
JOIN served_users AS u ON u.user_id = j.user_id
LEFT JOIN prices AS p ON p.item_id = j.item_id
