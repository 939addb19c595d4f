"""`airflow-ml validate`: the contract, its SQL and model.py checked on a tiny sample, in seconds, with no cloud."""
