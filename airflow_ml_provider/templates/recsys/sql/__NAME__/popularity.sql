-- The global popularity list's counts as of @as_of: per catalogue item (items
-- source), the distinct users who viewed, carted or bought it in the @label_horizon_days days
-- up to and including @as_of, (@as_of - @label_horizon_days, @as_of].
-- Nothing after the served date is read, so the list is what anyone could have served that day.
-- The top k by users (ties by item_id) is the list, ranked by the same code as offline evaluation's
-- global popularity baseline; the row count is the catalogue size coverage divides by.
-- Owner: ML platform engineering.
WITH recent AS (
  SELECT item_id, COUNT(DISTINCT user_id) AS users
  FROM {{ source('events') }}
  WHERE DATE(event_ts) > DATE_SUB(@as_of, INTERVAL @label_horizon_days DAY)
    AND DATE(event_ts) <= @as_of
    AND event_type IN ('purchase', 'add_to_cart', 'view')
  GROUP BY item_id
)
SELECT c.item_id, CAST(IFNULL(r.users, 0) AS INT64) AS users
FROM (SELECT DISTINCT item_id FROM {{ source('items') }}) AS c
LEFT JOIN recent AS r ON r.item_id = c.item_id
