-- Candidate generation as of @as_of: up to @candidates_per_user items per active user from
--   history:          items the user interacted with in the window (people come back)
--   covisit:          items viewed on the same day by the same users as the user's recent items
--   category_popular: the most viewed items of the user's top categories
-- Reads no event after @as_of. Owner: data science.
WITH window_events AS (
  SELECT e.user_id, e.item_id, DATE(e.event_ts) AS event_date, i.category
  FROM events AS e
  JOIN items AS i ON i.item_id = e.item_id
  WHERE DATE(e.event_ts) <= @as_of
    AND DATE(e.event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)
),
history AS (
  SELECT user_id, item_id, 'history' AS source, CAST(COUNT(*) AS FLOAT64) AS score
  FROM window_events
  GROUP BY user_id, item_id
),
user_day_items AS (
  SELECT DISTINCT user_id, event_date, item_id FROM window_events
),
covisit_pairs AS (
  SELECT a.item_id AS item_a, b.item_id AS item_b, COUNT(*) AS together
  FROM user_day_items AS a
  JOIN user_day_items AS b
    ON a.user_id = b.user_id AND a.event_date = b.event_date AND a.item_id != b.item_id
  GROUP BY a.item_id, b.item_id
),
recent_items AS (
  SELECT DISTINCT user_id, item_id
  FROM window_events
  WHERE event_date > DATE_SUB(@as_of, INTERVAL 7 DAY)
),
covisit AS (
  SELECT r.user_id, p.item_b AS item_id, 'covisit' AS source, CAST(SUM(p.together) AS FLOAT64) AS score
  FROM recent_items AS r
  JOIN covisit_pairs AS p ON p.item_a = r.item_id
  GROUP BY r.user_id, p.item_b
),
top_categories AS (
  SELECT user_id, category
  FROM window_events
  GROUP BY user_id, category
  QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY COUNT(*) DESC, category) <= 3
),
popular_in_category AS (
  SELECT category, item_id, COUNT(*) AS views
  FROM window_events
  GROUP BY category, item_id
  QUALIFY ROW_NUMBER() OVER (PARTITION BY category ORDER BY COUNT(*) DESC, item_id) <= 20
),
category_popular AS (
  SELECT t.user_id, p.item_id, 'category_popular' AS source, CAST(p.views AS FLOAT64) / 100 AS score
  FROM top_categories AS t
  JOIN popular_in_category AS p ON p.category = t.category
),
all_sources AS (
  SELECT * FROM history
  UNION ALL SELECT * FROM covisit
  UNION ALL SELECT * FROM category_popular
),
per_pair AS (
  SELECT
    user_id,
    item_id,
    -- The strongest source names the candidate; history outranks covisit outranks popularity.
    ARRAY_AGG(source ORDER BY CASE source WHEN 'history' THEN 1 WHEN 'covisit' THEN 2 ELSE 3 END LIMIT 1)[OFFSET(0)] AS candidate_source,
    COUNT(DISTINCT source) AS candidate_sources,
    -- Float sums depend on the order rows are added in; rounding keeps reruns identical.
    ROUND(SUM(score), 6) AS candidate_score
  FROM all_sources
  GROUP BY user_id, item_id
)
SELECT
  user_id,
  item_id,
  candidate_source,
  candidate_sources,
  candidate_score,
  ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY candidate_sources DESC, candidate_score DESC, item_id) AS candidate_rank
FROM per_pair
QUALIFY candidate_rank <= @candidates_per_user
