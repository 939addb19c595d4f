-- recommendations_latest: the newest partition of recommendations, for "today's lists".
-- {{ dataset }} is the connection's dataset (BigQuery views need qualified names).
CREATE OR REPLACE VIEW {{ dataset }}.recommendations_latest AS
SELECT *
FROM {{ dataset }}.recommendations
WHERE prediction_date = (SELECT MAX(prediction_date) FROM {{ dataset }}.recommendations)
