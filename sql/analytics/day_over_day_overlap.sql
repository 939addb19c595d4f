-- Day-over-day overlap: for each prediction_date from @start_date to @end_date (DATE,
-- inclusive), how much each user's list changed since the previous day's list. Lists that
-- barely change feel stale; lists that change completely every day feel random.
--
-- Per user (the `per_user` CTE; select from it instead for user-level detail), the overlap
-- is the Jaccard index of today's and yesterday's item sets: |both| / |either|, in [0, 1]
-- (1: the same items, in any order; 0: nothing in common). Only users with a list on both
-- days are compared. The result has one row per date with a partition:
--   users_with_lists    users with a list that day
--   users_compared      of those, users who also had a list the previous day
--   new_users           users_with_lists - users_compared (no list the day before)
--   avg_jaccard         mean overlap over users_compared, in [0, 1]; NULL when the previous
--                       day has no partition (the first day of the range needs the day
--                       before @start_date, which is read too)
--   share_unchanged     share of users_compared whose item set did not change (Jaccard 1)
--   share_all_new       share of users_compared with no item in common (Jaccard 0)
--   share_same_top1     share of users_compared whose rank-1 item stayed the same
WITH lists AS (
  SELECT prediction_date, user_id, item_id, rank
  FROM recommendations
  WHERE prediction_date BETWEEN DATE_SUB(@start_date, INTERVAL 1 DAY) AND @end_date
),
sizes AS (
  SELECT prediction_date, user_id, COUNT(*) AS items, MAX(IF(rank = 1, item_id, NULL)) AS top1
  FROM lists
  GROUP BY prediction_date, user_id
),
shared AS (
  SELECT cur.prediction_date, cur.user_id, COUNT(*) AS items_in_both
  FROM lists AS cur
  JOIN lists AS prev
    ON prev.user_id = cur.user_id
    AND prev.item_id = cur.item_id
    AND prev.prediction_date = DATE_SUB(cur.prediction_date, INTERVAL 1 DAY)
  GROUP BY cur.prediction_date, cur.user_id
),
per_user AS (
  SELECT
    t.prediction_date,
    t.user_id,
    t.items AS items_today,
    y.items AS items_yesterday,
    IFNULL(s.items_in_both, 0) AS items_in_both,
    -- NULL when the user had no list yesterday: nothing to compare with.
    SAFE_DIVIDE(IFNULL(s.items_in_both, 0), t.items + y.items - IFNULL(s.items_in_both, 0)) AS jaccard,
    t.top1 = y.top1 AS same_top1
  FROM sizes AS t
  LEFT JOIN sizes AS y
    ON y.user_id = t.user_id
    AND y.prediction_date = DATE_SUB(t.prediction_date, INTERVAL 1 DAY)
  LEFT JOIN shared AS s ON s.prediction_date = t.prediction_date AND s.user_id = t.user_id
  WHERE t.prediction_date >= @start_date
)
SELECT
  prediction_date,
  COUNT(*) AS users_with_lists,
  COUNT(jaccard) AS users_compared,
  COUNT(*) - COUNT(jaccard) AS new_users,
  AVG(jaccard) AS avg_jaccard,
  SAFE_DIVIDE(COUNTIF(jaccard = 1), COUNT(jaccard)) AS share_unchanged,
  SAFE_DIVIDE(COUNTIF(jaccard = 0), COUNT(jaccard)) AS share_all_new,
  SAFE_DIVIDE(COUNTIF(same_top1), COUNT(jaccard)) AS share_same_top1
FROM per_user
GROUP BY prediction_date
ORDER BY prediction_date
