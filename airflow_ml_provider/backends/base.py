# Temporary re-export while a helper finishes; removed before commit.
from airflow_ml_provider.core.warehouse import Warehouse, WriteResult  # noqa: F401
