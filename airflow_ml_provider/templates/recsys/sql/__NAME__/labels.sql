-- Labels for the @as_of candidates: what each user did with each candidate item in the
-- @label_horizon_days days AFTER @as_of (never on or before it). Needs events up to
-- @as_of + @label_horizon_days, so it runs once that horizon has passed.
--   label      1 if the user interacted with the item at all, else 0
--   relevance  graded for ranking: 3 purchase, 2 add to cart, 1 view, 0 nothing
-- One row per candidate (the training rows), plus one per item any user interacted with that
-- was NOT their candidate, users without candidates included: the trainer's end-to-end and
-- all-active metrics and candidate recall count those misses (they never join the feature
-- rows, so training ignores them).
-- Owner: data science.
WITH horizon_events AS (
  SELECT
    user_id,
    item_id,
    -- An event type the SQL does not know (e.g. 'unknown' from event_types) weighs nothing.
    MAX(CASE event_type WHEN 'purchase' THEN 3 WHEN 'add_to_cart' THEN 2 WHEN 'view' THEN 1 ELSE 0 END) AS relevance
  FROM {{ source('events') }}
  WHERE DATE(event_ts) > @as_of
    AND DATE(event_ts) <= DATE_ADD(@as_of, INTERVAL @label_horizon_days DAY)
  GROUP BY user_id, item_id
  HAVING relevance > 0
),
day_candidates AS (
  SELECT user_id, item_id FROM {{ ref('candidates') }} WHERE as_of_date = @as_of
)
SELECT
  c.user_id,
  c.item_id,
  CAST(IF(h.relevance IS NULL, 0, 1) AS INT64) AS label,
  CAST(IFNULL(h.relevance, 0) AS INT64) AS relevance
FROM day_candidates AS c
LEFT JOIN horizon_events AS h ON h.user_id = c.user_id AND h.item_id = c.item_id
UNION ALL
SELECT
  h.user_id,
  h.item_id,
  CAST(1 AS INT64) AS label,
  CAST(h.relevance AS INT64) AS relevance
FROM horizon_events AS h
WHERE NOT EXISTS (
    SELECT 1 FROM day_candidates AS c WHERE c.user_id = h.user_id AND c.item_id = h.item_id
  )
