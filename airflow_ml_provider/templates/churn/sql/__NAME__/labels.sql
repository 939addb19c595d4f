-- __NAME__ labels for the @as_of users: churned = 1 when the user has no event in the
-- @label_horizon_days days AFTER @as_of (never on or before it), else 0. Needs events up to
-- @as_of + @label_horizon_days, so it runs once that horizon has passed. Owner: data science.
WITH active_after AS (
  SELECT DISTINCT user_id
  FROM {{ source('events') }}
  WHERE DATE(event_ts) > @as_of
    AND DATE(event_ts) <= DATE_ADD(@as_of, INTERVAL @label_horizon_days DAY)
)
SELECT
  f.user_id,
  f.item_id,
  CAST(IF(a.user_id IS NULL, 1, 0) AS INT64) AS churned
FROM {{ ref('features') }} AS f
LEFT JOIN active_after AS a ON a.user_id = f.user_id
WHERE f.as_of_date = @as_of
