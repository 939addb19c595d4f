"""Apache Airflow provider for batch recommendation systems on Google Cloud.

Importing this package must stay cheap and must not import Airflow: the same
code runs inside Vertex AI training jobs where Airflow is not installed.
"""

__version__ = "0.1.0"
