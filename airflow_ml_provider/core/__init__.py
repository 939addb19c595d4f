"""Pure-Python heart of the provider. Never imports Airflow (it runs inside Vertex AI jobs)."""
