-- User features as of @as_of: activity, recency, purchase rate and category mix over the
-- @lookback_days days up to and including @as_of. Reads no event after @as_of.
-- Owner: data science. One row per user active in the window.
WITH window_events AS (
  SELECT e.user_id, e.item_id, e.event_type, e.event_ts, i.category, i.price
  FROM {{ source('events') }} AS e
  JOIN {{ source('items') }} AS i ON i.item_id = e.item_id
  WHERE DATE(e.event_ts) <= @as_of
    AND DATE(e.event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)
),
per_user AS (
  SELECT
    user_id,
    COUNT(*) AS user_events,
    COUNTIF(event_type = 'view') AS user_views,
    COUNTIF(event_type = 'add_to_cart') AS user_carts,
    COUNTIF(event_type = 'purchase') AS user_purchases,
    COUNT(DISTINCT item_id) AS user_distinct_items,
    COUNT(DISTINCT category) AS user_categories,
    COUNT(DISTINCT DATE(event_ts)) AS user_active_days,
    DATE_DIFF(@as_of, DATE(MAX(event_ts)), DAY) AS user_days_since_last_event,
    -- Float sums depend on the order rows are added in; rounding keeps reruns identical.
    ROUND(AVG(price), 6) AS user_avg_price
  FROM window_events
  GROUP BY user_id
),
category_mix AS (
  SELECT
    user_id,
    category,
    COUNT(*) AS events_in_category,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY COUNT(*) DESC, category) AS category_rank
  FROM window_events
  GROUP BY user_id, category
)
SELECT
  p.user_id,
  p.user_events,
  p.user_views,
  p.user_carts,
  p.user_purchases,
  p.user_distinct_items,
  p.user_categories,
  p.user_active_days,
  p.user_days_since_last_event,
  p.user_avg_price,
  CAST(IFNULL(SAFE_DIVIDE(p.user_purchases, p.user_views), 0) AS FLOAT64) AS user_purchase_rate,
  c.category AS user_top_category,
  CAST(SAFE_DIVIDE(c.events_in_category, p.user_events) AS FLOAT64) AS user_top_category_share
FROM per_user AS p
JOIN category_mix AS c ON c.user_id = p.user_id AND c.category_rank = 1
