-- Daily coverage: for each date from @start_date to @end_date (DATE, inclusive), how many
-- users got a list, what share of the active users that is, and how much of the catalog the
-- lists reach. Start here every morning: a missing or thin partition shows up as a drop.
--
-- One row per date of the range, days without a partition included (with zero users and
-- items): a day the inference DAG did not write is a visible gap, not a missing row.
--   users_with_lists   users with a list in the day's partition of `recommendations`
--   active_users       users with at least one event in the 28 days up to and including the
--                      date: the feature lookback (windows.feature_lookback_days in
--                      dags/recsys/pipeline.yaml); only they get candidates
--   user_coverage      users_with_lists / active_users, in [0, 1] (NULL with no active user).
--                      Well below 1 means active users got no list: candidates.sql found
--                      none for them, or the day's features were incomplete
--   avg_list_length    rows per user with a list; below top_k when users had fewer candidates
--   items_recommended  distinct items in any list that day
--   catalog_items      items launched on or before the date (`items.launch_date`)
--   catalog_coverage   items_recommended / catalog_items, in [0, 1]. Low values mean the lists
--                      concentrate on few items (see popularity_concentration.sql)
-- Not the same as recommendation_runs.coverage, whose denominator is the distinct items among
-- the day's candidates rather than the catalog.
WITH dates AS (
  SELECT prediction_date
  FROM UNNEST(GENERATE_DATE_ARRAY(@start_date, @end_date)) AS prediction_date
),
lists AS (
  SELECT
    prediction_date,
    COUNT(DISTINCT user_id) AS users_with_lists,
    COUNT(*) AS slots,
    COUNT(DISTINCT item_id) AS items_recommended
  FROM recommendations
  WHERE prediction_date BETWEEN @start_date AND @end_date
  GROUP BY prediction_date
),
user_days AS (
  -- One row per user and active day: the range join below then touches few rows.
  SELECT DISTINCT user_id, DATE(event_ts) AS event_date
  FROM events
  WHERE DATE(event_ts) > DATE_SUB(@start_date, INTERVAL 28 DAY)
    AND DATE(event_ts) <= @end_date
),
active AS (
  SELECT d.prediction_date, COUNT(DISTINCT u.user_id) AS active_users
  FROM dates AS d
  JOIN user_days AS u
    ON u.event_date <= d.prediction_date
    AND u.event_date > DATE_SUB(d.prediction_date, INTERVAL 28 DAY)
  GROUP BY d.prediction_date
),
catalog_size AS (
  SELECT d.prediction_date, COUNTIF(i.launch_date <= d.prediction_date) AS catalog_items
  FROM dates AS d
  CROSS JOIN items AS i
  GROUP BY d.prediction_date
)
SELECT
  d.prediction_date,
  IFNULL(l.users_with_lists, 0) AS users_with_lists,
  IFNULL(a.active_users, 0) AS active_users,
  SAFE_DIVIDE(IFNULL(l.users_with_lists, 0), a.active_users) AS user_coverage,
  SAFE_DIVIDE(l.slots, l.users_with_lists) AS avg_list_length,
  IFNULL(l.items_recommended, 0) AS items_recommended,
  IFNULL(c.catalog_items, 0) AS catalog_items,
  SAFE_DIVIDE(IFNULL(l.items_recommended, 0), c.catalog_items) AS catalog_coverage
FROM dates AS d
LEFT JOIN lists AS l ON l.prediction_date = d.prediction_date
LEFT JOIN active AS a ON a.prediction_date = d.prediction_date
LEFT JOIN catalog_size AS c ON c.prediction_date = d.prediction_date
ORDER BY d.prediction_date
