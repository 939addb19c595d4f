-- Popularity concentration: for each prediction_date from @start_date to @end_date (DATE,
-- inclusive), how unevenly the recommendation slots are spread over the catalog. A recommender
-- that only pushes bestsellers shows high shares and a Gini close to 1.
--
-- The catalog of a date is every item launched on or before it (`items.launch_date`); items
-- never recommended that day count with zero exposure. An item's exposure is the number of
-- lists (slots) it appears in that day.
--   slots              rows of the day's partition (users x list length)
--   catalog_items      items in the day's catalog
--   items_recommended  items with at least one slot
--   top_1pct_share     share of all slots taken by the most exposed 1% of the catalog
--                      (rounded up to at least one item), in [0, 1]
--   top_10pct_share    the same for the most exposed 10%; >= top_1pct_share
--   gini_exposure      Gini coefficient of exposure over the catalog, in [0, 1): 0 when
--                      every item gets the same number of slots, towards 1 when a few items
--                      take them all. Compare it day over day, not with other catalogs.
-- Dates without a partition have no row (daily_coverage.sql shows those gaps).
WITH exposure AS (
  SELECT prediction_date, item_id, COUNT(*) AS slots
  FROM recommendations
  WHERE prediction_date BETWEEN @start_date AND @end_date
  GROUP BY prediction_date, item_id
),
dates AS (
  SELECT DISTINCT prediction_date FROM exposure
),
catalog_exposure AS (
  -- Every live item of each date, zero when it got no slot.
  SELECT d.prediction_date, i.item_id, IFNULL(e.slots, 0) AS slots
  FROM dates AS d
  JOIN items AS i ON i.launch_date <= d.prediction_date
  LEFT JOIN exposure AS e ON e.prediction_date = d.prediction_date AND e.item_id = i.item_id
),
ranked AS (
  SELECT
    prediction_date,
    slots,
    ROW_NUMBER() OVER (PARTITION BY prediction_date ORDER BY slots DESC, item_id) AS exposure_rank,
    COUNT(*) OVER (PARTITION BY prediction_date) AS catalog_items
  FROM catalog_exposure
)
SELECT
  prediction_date,
  SUM(slots) AS slots,
  MAX(catalog_items) AS catalog_items,
  COUNTIF(slots > 0) AS items_recommended,
  SAFE_DIVIDE(SUM(IF(exposure_rank <= CEIL(0.01 * catalog_items), slots, 0)), SUM(slots)) AS top_1pct_share,
  SAFE_DIVIDE(SUM(IF(exposure_rank <= CEIL(0.10 * catalog_items), slots, 0)), SUM(slots)) AS top_10pct_share,
  -- Gini with items in ascending order of exposure (position i = n + 1 - exposure_rank):
  -- G = 2 * sum(i * x_i) / (n * sum(x)) - (n + 1) / n.
  SAFE_DIVIDE(
    2 * SUM((catalog_items + 1 - exposure_rank) * slots),
    MAX(catalog_items) * SUM(slots)
  ) - SAFE_DIVIDE(MAX(catalog_items) + 1, MAX(catalog_items)) AS gini_exposure
FROM ranked
GROUP BY prediction_date
ORDER BY prediction_date
