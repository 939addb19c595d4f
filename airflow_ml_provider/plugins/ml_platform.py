"""The Airflow UI plugin (entry point ``airflow.plugins``): the ML pages under ``/ml``.

The FastAPI app (``plugins/app.py``) serves the Models, Drift and Recommendations pages and
their JSON; the ``external_views`` put the pages in the nav (Browse menu), loaded in an
iframe with the user's session cookie. Every route requires Airflow's auth.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_ml_provider.plugins.app import app

URL_PREFIX = "/ml"


def _view(name: str, page: str) -> dict[str, str]:
    return {
        "name": name,
        "href": f"{URL_PREFIX}/{page}",
        "url_route": f"ml-{page}",
        "destination": "nav",
        "category": "browse",
    }


class MLPlatformPlugin(AirflowPlugin):
    """Registers the ML pages (models, drift, recommendations) with Airflow's API server and UI."""

    name = "ml_platform"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ML platform"}]
    external_views = [
        _view("Models", "models"),
        _view("Drift", "drift"),
        _view("Recommendations", "recommendations"),
    ]
