-- Item features as of @as_of: popularity, trend, conversion and price over the
-- @lookback_days days up to and including @as_of. Reads no event after @as_of.
-- Owner: data science. One row per item launched on or before @as_of.
WITH window_events AS (
  SELECT item_id, user_id, event_type, DATE(event_ts) AS event_date
  FROM {{ source('events') }}
  WHERE DATE(event_ts) <= @as_of
    AND DATE(event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)
),
per_item AS (
  SELECT
    i.item_id,
    i.category,
    i.price,
    i.launch_date,
    COUNTIF(e.event_type = 'view') AS views,
    COUNTIF(e.event_type = 'view' AND e.event_date > DATE_SUB(@as_of, INTERVAL 7 DAY)) AS views_7d,
    COUNTIF(e.event_type = 'add_to_cart') AS carts,
    COUNTIF(e.event_type = 'purchase') AS purchases,
    COUNT(DISTINCT e.user_id) AS users
  FROM {{ source('items') }} AS i
  LEFT JOIN window_events AS e ON e.item_id = i.item_id
  WHERE i.launch_date <= @as_of
  GROUP BY i.item_id, i.category, i.price, i.launch_date
)
SELECT
  item_id,
  category AS item_category,
  price AS item_price,
  DATE_DIFF(@as_of, launch_date, DAY) AS item_age_days,
  views AS item_views,
  views_7d AS item_views_7d,
  purchases AS item_purchases,
  users AS item_users,
  -- Last week's views against the window's weekly average: > 1 means trending up.
  CAST(IFNULL(SAFE_DIVIDE(views_7d * @lookback_days, views * 7), 0) AS FLOAT64) AS item_trend,
  CAST(IFNULL(SAFE_DIVIDE(purchases, views), 0) AS FLOAT64) AS item_conversion,
  CAST(SAFE_DIVIDE(carts + purchases, views + carts + purchases) AS FLOAT64) AS item_engagement
FROM per_item
