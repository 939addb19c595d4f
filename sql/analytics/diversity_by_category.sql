-- Diversity by category: for each prediction_date from @start_date to @end_date (DATE,
-- inclusive), how many categories a user's list spans, and how the categories of the
-- recommendations compare with the categories of what users did.
--
-- One row per date and category (`items.category`). The first two columns after the category
-- are per date, repeated on each of its rows: aggregate them with MAX or ANY_VALUE, not SUM.
--   avg_categories_per_list  distinct categories in a user's list, averaged over the users
--                            with a list; 1 means single-category lists
--   users_with_lists         users with a list that day
--   rec_slots                slots (list rows) of the category that day
--   rec_share                rec_slots / all slots of the day; sums to 1 over the categories
--   event_share              the category's share of all events (views, carts, purchases) in
--                            the 28 days up to and including the date: what users engaged with
--                            in the window the features see; sums to 1 over the categories
--   rec_to_event_ratio       rec_share / event_share: above 1 the lists over-represent the
--                            category compared with behaviour, below 1 they under-represent it
--                            (NULL when no event of the category was seen)
-- Categories with events but no slots appear with rec_slots 0.
WITH lists AS (
  SELECT r.prediction_date, r.user_id, i.category
  FROM recommendations AS r
  JOIN items AS i ON i.item_id = r.item_id
  WHERE r.prediction_date BETWEEN @start_date AND @end_date
),
per_date AS (
  SELECT prediction_date, AVG(categories) AS avg_categories_per_list, COUNT(*) AS users_with_lists
  FROM (
    SELECT prediction_date, user_id, COUNT(DISTINCT category) AS categories
    FROM lists
    GROUP BY prediction_date, user_id
  )
  GROUP BY prediction_date
),
rec_mix AS (
  SELECT prediction_date, category, COUNT(*) AS rec_slots
  FROM lists
  GROUP BY prediction_date, category
),
event_days AS (
  -- Events per day and category once, so the 28-day window below sums few rows.
  SELECT DATE(e.event_ts) AS event_date, i.category, COUNT(*) AS events
  FROM events AS e
  JOIN items AS i ON i.item_id = e.item_id
  WHERE DATE(e.event_ts) > DATE_SUB(@start_date, INTERVAL 28 DAY)
    AND DATE(e.event_ts) <= @end_date
  GROUP BY event_date, i.category
),
event_mix AS (
  SELECT d.prediction_date, e.category, SUM(e.events) AS events
  FROM per_date AS d
  JOIN event_days AS e
    ON e.event_date <= d.prediction_date
    AND e.event_date > DATE_SUB(d.prediction_date, INTERVAL 28 DAY)
  GROUP BY d.prediction_date, e.category
),
mix AS (
  SELECT
    COALESCE(r.prediction_date, e.prediction_date) AS prediction_date,
    COALESCE(r.category, e.category) AS category,
    IFNULL(r.rec_slots, 0) AS rec_slots,
    IFNULL(e.events, 0) AS events
  FROM rec_mix AS r
  FULL OUTER JOIN event_mix AS e ON e.prediction_date = r.prediction_date AND e.category = r.category
)
SELECT
  m.prediction_date,
  m.category,
  d.avg_categories_per_list,
  d.users_with_lists,
  m.rec_slots,
  SAFE_DIVIDE(m.rec_slots, SUM(m.rec_slots) OVER (PARTITION BY m.prediction_date)) AS rec_share,
  SAFE_DIVIDE(m.events, SUM(m.events) OVER (PARTITION BY m.prediction_date)) AS event_share,
  SAFE_DIVIDE(
    SAFE_DIVIDE(m.rec_slots, SUM(m.rec_slots) OVER (PARTITION BY m.prediction_date)),
    SAFE_DIVIDE(m.events, SUM(m.events) OVER (PARTITION BY m.prediction_date))
  ) AS rec_to_event_ratio
FROM mix AS m
JOIN per_date AS d ON d.prediction_date = m.prediction_date
ORDER BY m.prediction_date, m.category
