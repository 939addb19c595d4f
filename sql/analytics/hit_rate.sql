-- Hit rate: did users act on their lists? Each prediction_date's lists, from @start_date to
-- @end_date (DATE, inclusive), are joined to the events of the @horizon_days (INT64) days
-- AFTER it, (D, D + @horizon_days]; an event on D itself is not a hit, since the list is
-- built from features up to and including D. With @horizon_days = 1 this is "the hit rate
-- of yesterday's list", read today.
--
-- One row per date and rank. The user_* columns are per date, repeated on each rank row:
-- aggregate them with MAX or ANY_VALUE, not SUM.
--   users_with_lists          users with a list that day
--   user_interaction_hit_rate share of those users who viewed, carted or bought at least one
--                             item of their list in the horizon, in [0, 1]
--   user_purchase_hit_rate    share who bought at least one item of their list, in [0, 1]
--   horizon_complete          FALSE while D + @horizon_days is after the newest event in
--                             `events`: the horizon is still open and the rates will rise
--   rank                      position in the list (1 = best)
--   slots                     lists with an item at this rank (users with shorter lists drop out)
--   interaction_rate          share of the items at this rank the user then interacted with
--   purchase_rate             share of the items at this rank the user then bought
-- A good model shows rates falling with rank. Compare dates with the same horizon only, and
-- weekdays with weekdays (weekends are busier).
WITH lists AS (
  SELECT prediction_date, user_id, item_id, rank
  FROM recommendations
  WHERE prediction_date BETWEEN @start_date AND @end_date
),
later AS (
  -- What each user did with each item per day, restricted to the horizons of the range.
  SELECT
    user_id,
    item_id,
    DATE(event_ts) AS event_date,
    LOGICAL_OR(event_type = 'purchase') AS purchased
  FROM events
  WHERE DATE(event_ts) > @start_date
    AND DATE(event_ts) <= DATE_ADD(@end_date, INTERVAL @horizon_days DAY)
  GROUP BY user_id, item_id, event_date
),
outcomes AS (
  SELECT
    l.prediction_date,
    l.user_id,
    l.rank,
    COUNT(e.event_date) > 0 AS interacted,
    IFNULL(LOGICAL_OR(e.purchased), FALSE) AS purchased
  FROM lists AS l
  LEFT JOIN later AS e
    ON e.user_id = l.user_id
    AND e.item_id = l.item_id
    AND e.event_date > l.prediction_date
    AND e.event_date <= DATE_ADD(l.prediction_date, INTERVAL @horizon_days DAY)
  GROUP BY l.prediction_date, l.user_id, l.rank
),
per_user AS (
  SELECT prediction_date, user_id, LOGICAL_OR(interacted) AS interacted, LOGICAL_OR(purchased) AS purchased
  FROM outcomes
  GROUP BY prediction_date, user_id
),
per_date AS (
  SELECT
    prediction_date,
    COUNT(*) AS users_with_lists,
    SAFE_DIVIDE(COUNTIF(interacted), COUNT(*)) AS user_interaction_hit_rate,
    SAFE_DIVIDE(COUNTIF(purchased), COUNT(*)) AS user_purchase_hit_rate
  FROM per_user
  GROUP BY prediction_date
),
newest_event AS (
  SELECT MAX(DATE(event_ts)) AS newest_event_date FROM events WHERE DATE(event_ts) > @start_date
)
SELECT
  d.prediction_date,
  d.users_with_lists,
  d.user_interaction_hit_rate,
  d.user_purchase_hit_rate,
  DATE_ADD(d.prediction_date, INTERVAL @horizon_days DAY) <= n.newest_event_date AS horizon_complete,
  o.rank,
  COUNT(*) AS slots,
  SAFE_DIVIDE(COUNTIF(o.interacted), COUNT(*)) AS interaction_rate,
  SAFE_DIVIDE(COUNTIF(o.purchased), COUNT(*)) AS purchase_rate
FROM outcomes AS o
JOIN per_date AS d ON d.prediction_date = o.prediction_date
CROSS JOIN newest_event AS n
GROUP BY
  d.prediction_date,
  d.users_with_lists,
  d.user_interaction_hit_rate,
  d.user_purchase_hit_rate,
  n.newest_event_date,
  o.rank
ORDER BY d.prediction_date, o.rank
