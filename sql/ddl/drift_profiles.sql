-- drift_profiles: the stored reference bins of each model version, one row per column (and
-- per segment when drift.segment_by is set). Written once per version and never updated:
-- core.drift.check.store_profile at registration (segment '__all__'), and the first drift check
-- with segment_by for that version's per-segment references. A rerun inserts nothing.
CREATE TABLE IF NOT EXISTS drift_profiles (
  model_name STRING NOT NULL OPTIONS(description = "Model (pipeline) name."),
  model_version STRING NOT NULL OPTIONS(description = "Model version the profile was built for."),
  scope STRING NOT NULL OPTIONS(description = "feature | prediction (the top-k scores batch inference keeps)."),
  column_name STRING NOT NULL OPTIONS(description = "Feature name, or 'score' for predictions."),
  segment_by STRING NOT NULL OPTIONS(description = "Comma-separated segment columns; '' for the whole population."),
  segment STRING NOT NULL OPTIONS(description = "'__all__', or 'column=value,...' of segment_by."),
  kind STRING NOT NULL OPTIONS(description = "numeric | categorical."),
  n INT64 OPTIONS(description = "Reference rows."),
  null_share FLOAT64 OPTIONS(description = "Share of null values in the reference."),
  profile JSON OPTIONS(description = "Bins: edges or categories, counts, null, inf / other (core/training/profile.py format)."),
  created_at TIMESTAMP NOT NULL OPTIONS(description = "When the row was written.")
)
CLUSTER BY model_name, model_version
OPTIONS(description = "Drift reference profiles: the stored bins each model version's drift checks count rows into.");
