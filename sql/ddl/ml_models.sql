-- ml_models: the model registry. One row per trained model version: where its envelope
-- lives, how it was built (git sha, contract hash), how it scored against the popularity
-- baseline, and its lifecycle status. At most one row per model_name is the champion,
-- the version batch inference resolves for the `champion` alias.
-- Written only by airflow_ml_provider.core.registry.models, one statement per state change.
CREATE TABLE IF NOT EXISTS ml_models (
  model_name STRING NOT NULL OPTIONS(description = "Model (pipeline) name, from pipeline.yaml."),
  version STRING NOT NULL OPTIONS(description = "Version id, unique within model_name."),
  uri STRING NOT NULL OPTIONS(description = "URI of the envelope folder (model.txt, envelope.json)."),
  created_at TIMESTAMP NOT NULL OPTIONS(description = "When the training run produced the model."),
  git_sha STRING OPTIONS(description = "Git commit of the code that trained it."),
  spec_hash STRING OPTIONS(description = "Hash of the pipeline contract it was trained with."),
  metrics JSON OPTIONS(description = "Evaluation at k: model, baseline and lift metrics."),
  status STRING NOT NULL OPTIONS(description = "candidate | champion | archived | rejected."),
  status_reason STRING OPTIONS(description = "Why the status last changed (gate result, rollback, rejection)."),
  blessed_by STRING OPTIONS(description = "Who or what made it champion (a user, or the evaluation gate)."),
  promoted_at TIMESTAMP OPTIONS(description = "When it last became champion."),
  updated_at TIMESTAMP OPTIONS(description = "When the row last changed.")
)
CLUSTER BY model_name
OPTIONS(description = "Model registry: one row per model version with its metrics and status (candidate, champion, archived, rejected).");
