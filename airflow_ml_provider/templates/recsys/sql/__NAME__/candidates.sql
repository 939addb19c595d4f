-- Candidate generation as of @as_of: up to @candidates_per_user items per active user, from
-- four generators, each proposing its own top @<source>_candidates (sql_params in pipeline.yaml):
--   repeat:   items the user interacted with, by recency-decayed engagement (people come back)
--   covisit:  items other users engaged with on the same day as the user's items, over the whole
--             lookback, each co-visit and each of the user's items decayed by age
--             (half-life @covisit_half_life_days), normalised by item popularity (cosine); each
--             item lends its @covisit_neighbours most co-visited neighbours
--   category: the items trending in the user's categories, weighted by the user's share there
-- Every generator cuts per item or per category before it meets the users, so no step holds
-- users x catalogue rows: the cost grows linearly with users and events (issue 26).
--   trending: the most engaged-with items of the last @trending_days days, for everyone
-- The sources are interleaved by their own rank (every source's best first), so each gets its
-- share of the @candidates_per_user slots. With inference.exclude_seen (@exclude_seen: purchased
-- or interacted), every generator skips what the user bought (or touched) in the lookback before
-- it is cut to its quota, so lists stay full (batch inference still excludes against the whole
-- history, and fills a short list from the global popularity list). Reads no event after @as_of.
-- Float sums depend on the order rows are added in (threads, spilling); every sum that ranks or
-- cuts is rounded to 9 decimals, so near-ties break the same way on every run and backend.
-- Owner: data science.
WITH window_events AS (
  SELECT
    e.user_id,
    e.item_id,
    DATE(e.event_ts) AS event_date,
    i.category,
    e.event_type,
    CASE e.event_type WHEN 'purchase' THEN 3.0 WHEN 'add_to_cart' THEN 2.0 ELSE 1.0 END AS weight,
    POW(0.5, DATE_DIFF(@as_of, DATE(e.event_ts), DAY) / @covisit_half_life_days) AS decay
  FROM {{ source('events') }} AS e
  JOIN {{ source('items') }} AS i ON i.item_id = e.item_id
  WHERE DATE(e.event_ts) <= @as_of
    AND DATE(e.event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)
    -- An event type the SQL does not know (e.g. 'unknown' from event_types) proposes nothing.
    AND e.event_type IN ('view', 'add_to_cart', 'purchase')
),
-- The (user, item) pairs no generator proposes: inference.exclude_seen's rule, in the lookback.
seen AS (
  SELECT DISTINCT user_id, item_id
  FROM window_events
  WHERE @exclude_seen = 'interacted' OR (@exclude_seen = 'purchased' AND event_type = 'purchase')
),
user_items AS (
  SELECT user_id, item_id, ROUND(SUM(weight * decay), 9) AS engagement
  FROM window_events
  GROUP BY user_id, item_id
),
repeat_items AS (
  SELECT u.user_id, u.item_id, 'repeat' AS source, u.engagement AS score
  FROM user_items AS u
  LEFT JOIN seen AS x ON x.user_id = u.user_id AND x.item_id = u.item_id
  WHERE x.user_id IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY u.user_id ORDER BY u.engagement DESC, u.item_id) <= @repeat_candidates
),
user_day_items AS (
  SELECT user_id, event_date, item_id, MAX(decay) AS decay
  FROM window_events
  GROUP BY user_id, event_date, item_id
),
item_reach AS (
  SELECT item_id, ROUND(SUM(decay), 9) AS reach FROM user_day_items GROUP BY item_id
),
covisit_pairs AS (
  SELECT a.item_id AS item_a, b.item_id AS item_b, ROUND(SUM(a.decay), 9) AS together
  FROM user_day_items AS a
  JOIN user_day_items AS b
    ON a.user_id = b.user_id AND a.event_date = b.event_date AND a.item_id != b.item_id
  GROUP BY a.item_id, b.item_id
),
similar AS (
  SELECT p.item_a, p.item_b, p.together, p.together / SQRT(ra.reach * rb.reach) AS similarity
  FROM covisit_pairs AS p
  JOIN item_reach AS ra ON ra.item_id = p.item_a
  JOIN item_reach AS rb ON rb.item_id = p.item_b
),
-- Each item keeps its @covisit_neighbours (M) neighbours it was co-visited with most (decayed),
-- BEFORE any user is joined: the join below is then user items x M rows (linear in users and
-- events) instead of user items x every co-visited item (a popular item has thousands). Cut by
-- co-visits, not by cosine: the cosine's best neighbours are rare items seen together once,
-- while a user's best sums come from items co-visited with several of theirs, so this cut keeps
-- (here raises) the candidate recall. With exclude_seen, seen neighbours still take some of the
-- M places; M well above @covisit_candidates leaves room for them (docs/architecture.md).
similar_top AS (
  SELECT item_a, item_b, similarity
  FROM similar
  WHERE TRUE  -- BigQuery accepts QUALIFY only beside a WHERE, GROUP BY or HAVING clause
  QUALIFY ROW_NUMBER() OVER (PARTITION BY item_a ORDER BY together DESC, similarity DESC, item_b) <= @covisit_neighbours
),
covisit AS (
  SELECT u.user_id, s.item_b AS item_id, 'covisit' AS source, ROUND(SUM(u.engagement * s.similarity), 9) AS score
  FROM user_items AS u
  JOIN similar_top AS s ON s.item_a = u.item_id
  LEFT JOIN seen AS x ON x.user_id = u.user_id AND x.item_id = s.item_b
  WHERE x.user_id IS NULL
  GROUP BY u.user_id, s.item_b
  QUALIFY ROW_NUMBER() OVER (PARTITION BY u.user_id ORDER BY ROUND(SUM(u.engagement * s.similarity), 9) DESC, s.item_b)
    <= @covisit_candidates
),
user_categories AS (
  SELECT user_id, category, ROUND(SUM(weight * decay) / SUM(SUM(weight * decay)) OVER (PARTITION BY user_id), 9) AS share
  FROM window_events
  GROUP BY user_id, category
),
item_heat AS (
  SELECT item_id, category, ROUND(SUM(weight * decay), 9) AS heat
  FROM window_events
  GROUP BY item_id, category
),
-- Within a category a user ranks items by heat alone (the share is the user's, the same for all),
-- so the user's best @category_candidates unseen items of a category are among its
-- @category_candidates + (items of it the user has seen) hottest. Each user category is joined to
-- exactly those ranks (an equality join, linear in users and events), never to the whole category.
category_ranked AS (
  SELECT item_id, category, heat, ROW_NUMBER() OVER (PARTITION BY category ORDER BY heat DESC, item_id) AS category_rank
  FROM item_heat
),
category_seen AS (
  SELECT x.user_id, h.category, COUNT(*) AS seen_items
  FROM seen AS x
  JOIN item_heat AS h ON h.item_id = x.item_id
  GROUP BY x.user_id, h.category
),
category_slots AS (
  SELECT c.user_id, c.category, c.share, slot
  FROM user_categories AS c
  LEFT JOIN category_seen AS n ON n.user_id = c.user_id AND n.category = c.category
  CROSS JOIN UNNEST(GENERATE_ARRAY(1, @category_candidates + IFNULL(n.seen_items, 0))) AS slot
  WHERE @category_candidates > 0
),
category_items AS (
  SELECT c.user_id, h.item_id, 'category' AS source, c.share * h.heat AS score
  FROM category_slots AS c
  JOIN category_ranked AS h ON h.category = c.category AND h.category_rank = c.slot
  LEFT JOIN seen AS x ON x.user_id = c.user_id AND x.item_id = h.item_id
  WHERE x.user_id IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY c.user_id ORDER BY c.share * h.heat DESC, h.item_id) <= @category_candidates
),
trending_items AS (
  SELECT item_id, SUM(weight) AS heat
  FROM window_events
  WHERE event_date > DATE_SUB(@as_of, INTERVAL @trending_days DAY)
  GROUP BY item_id
  -- Twice the quota, so a user who has seen some of them still gets @trending_candidates.
  QUALIFY ROW_NUMBER() OVER (ORDER BY SUM(weight) DESC, item_id) <= 2 * @trending_candidates
),
trending_users AS (
  SELECT u.user_id, t.item_id, 'trending' AS source, t.heat AS score
  FROM (SELECT DISTINCT user_id FROM window_events) AS u
  CROSS JOIN trending_items AS t
  LEFT JOIN seen AS x ON x.user_id = u.user_id AND x.item_id = t.item_id
  WHERE x.user_id IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY u.user_id ORDER BY t.heat DESC, t.item_id) <= @trending_candidates
),
all_sources AS (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id, source ORDER BY score DESC, item_id) AS source_rank
  FROM (
    SELECT * FROM repeat_items
    UNION ALL SELECT * FROM covisit
    UNION ALL SELECT * FROM category_items
    UNION ALL SELECT * FROM trending_users
  )
),
per_pair AS (
  SELECT
    user_id,
    item_id,
    -- The source that ranked the item best names it; ties go to repeat, covisit, category, trending.
    -- (MIN of rank * 10 + the tie order: fixed-size aggregates, which DuckDB can spill under its
    -- memory_limit, where an ordered ARRAY_AGG per pair cannot.)
    CASE MOD(MIN(source_rank * 10 + CASE source WHEN 'repeat' THEN 1 WHEN 'covisit' THEN 2 WHEN 'category' THEN 3 ELSE 4 END), 10)
      WHEN 1 THEN 'repeat' WHEN 2 THEN 'covisit' WHEN 3 THEN 'category' ELSE 'trending'
    END AS candidate_source,
    -- A generator proposes an item to a user at most once, so the rows count the sources.
    COUNT(*) AS candidate_sources,
    MIN(source_rank) AS best_rank,
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
  ROW_NUMBER() OVER (
    PARTITION BY user_id ORDER BY best_rank, candidate_sources DESC, candidate_score DESC, item_id
  ) AS candidate_rank
FROM per_pair
WHERE TRUE  -- BigQuery accepts QUALIFY only beside a WHERE, GROUP BY or HAVING clause
QUALIFY candidate_rank <= @candidates_per_user
