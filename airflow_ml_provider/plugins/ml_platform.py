"""The Airflow UI plugin (entry point ``airflow.plugins``).

For now it only registers the provider with the plugin manager; the model, drift and
recommendation pages arrive with the UI issue.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class MLPlatformPlugin(AirflowPlugin):
    """Registers airflow-ml-provider with Airflow's plugin manager."""

    name = "ml_platform"
