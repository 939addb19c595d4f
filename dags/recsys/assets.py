"""The assets that tie the recsys DAGs together (features -> training/inference -> drift)."""

from airflow.sdk import Asset

FEATURES = Asset(name="recsys_features", uri="ml-platform://recsys/features")
MODEL = Asset(name="recsys_model", uri="ml-platform://recsys/model")
RECOMMENDATIONS = Asset(name="recsys_recommendations", uri="ml-platform://recsys/recommendations")
DRIFT_DETECTED = Asset(name="recsys_drift_detected", uri="ml-platform://recsys/drift")
