-- Model input as of @as_of: one row per (user, candidate item) with user, item and
-- user x item features. Reads the @as_of partitions of candidates, user_features and
-- item_features, and events up to @as_of. The declared schema is in pipeline.yaml.
-- Owner: data science.
WITH window_events AS (
  SELECT user_id, item_id, event_type, DATE(event_ts) AS event_date
  FROM {{ source('events') }}
  WHERE DATE(event_ts) <= @as_of
    AND DATE(event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)
),
pair_history AS (
  SELECT
    user_id,
    item_id,
    COUNTIF(event_type = 'view') AS pair_views,
    COUNTIF(event_type IN ('add_to_cart', 'purchase')) AS pair_conversions,
    DATE_DIFF(@as_of, MAX(event_date), DAY) AS pair_days_since_last_event
  FROM window_events
  GROUP BY user_id, item_id
),
user_category AS (
  SELECT e.user_id, i.category, COUNT(*) AS events_in_category
  FROM window_events AS e
  JOIN {{ source('items') }} AS i ON i.item_id = e.item_id
  GROUP BY e.user_id, i.category
)
SELECT
  c.user_id,
  c.item_id,
  c.candidate_source,
  CAST(c.candidate_sources AS INT64) AS candidate_sources,
  c.candidate_score,
  c.candidate_rank,
  u.user_events,
  u.user_purchases,
  u.user_distinct_items,
  u.user_active_days,
  u.user_days_since_last_event,
  u.user_purchase_rate,
  u.user_top_category_share,
  i.item_category,
  i.item_price,
  i.item_age_days,
  i.item_views,
  i.item_views_7d,
  i.item_trend,
  i.item_conversion,
  IFNULL(h.pair_views, 0) AS pair_views,
  IFNULL(h.pair_conversions, 0) AS pair_conversions,
  h.pair_days_since_last_event,
  CAST(IFNULL(SAFE_DIVIDE(uc.events_in_category, u.user_events), 0) AS FLOAT64) AS pair_category_affinity,
  CAST(SAFE_DIVIDE(i.item_price, u.user_avg_price) AS FLOAT64) AS pair_price_ratio
FROM {{ ref('candidates') }} AS c
JOIN {{ ref('user_features') }} AS u ON u.user_id = c.user_id AND u.as_of_date = @as_of
JOIN {{ ref('item_features') }} AS i ON i.item_id = c.item_id AND i.as_of_date = @as_of
LEFT JOIN pair_history AS h ON h.user_id = c.user_id AND h.item_id = c.item_id
LEFT JOIN user_category AS uc ON uc.user_id = c.user_id AND uc.category = i.item_category
WHERE c.as_of_date = @as_of
