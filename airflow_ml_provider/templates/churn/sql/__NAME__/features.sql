-- __NAME__ features as of @as_of: one row per user active in the @lookback_days days up to and
-- including @as_of. Reads no event after @as_of. The declared schema is in pipeline.yaml.
-- item_id is the constant outcome the model scores, so the recommendation operators see
-- exactly one candidate per user. Owner: data science.
WITH window_events AS (
  SELECT user_id, item_id, event_type, DATE(event_ts) AS event_date
  FROM {{ source('events') }}
  WHERE DATE(event_ts) <= @as_of
    AND DATE(event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)
),
per_user AS (
  SELECT
    user_id,
    COUNT(*) AS user_events,
    COUNTIF(event_date > DATE_SUB(@as_of, INTERVAL 7 DAY)) AS user_events_7d,
    COUNTIF(event_type = 'purchase') AS user_purchases,
    COUNT(DISTINCT item_id) AS user_distinct_items,
    COUNT(DISTINCT event_date) AS user_active_days,
    DATE_DIFF(@as_of, MAX(event_date), DAY) AS user_days_since_last_event
  FROM window_events
  GROUP BY user_id
)
SELECT
  p.user_id,
  '__NAME__' AS item_id,
  p.user_events,
  p.user_events_7d,
  p.user_purchases,
  p.user_distinct_items,
  p.user_active_days,
  p.user_days_since_last_event,
  -- Last week's events against the window's weekly average: < 1 means the user is slowing down.
  CAST(IFNULL(SAFE_DIVIDE(p.user_events_7d * @lookback_days, p.user_events * 7), 0) AS FLOAT64) AS user_activity_trend,
  DATE_DIFF(@as_of, u.signup_date, DAY) AS user_tenure_days,
  u.country AS user_country
FROM per_user AS p
LEFT JOIN {{ source('users') }} AS u ON u.user_id = p.user_id
