"""The Airflow UI plugin (entry point ``airflow.plugins``): the ML pages under ``/ml``.

The FastAPI app (``plugins/app.py``) serves the Models, Drift, Recommendations and Data pages and
their JSON; the ``external_views`` put the pages in the nav (Browse menu), loaded in an
iframe with the user's session cookie. Every route requires Airflow's auth.

Every Airflow process loads plugins (each task process too, for macros), but only the API
server mounts FastAPI apps: the app, and Airflow's API security module it needs, are
imported on first access of ``fastapi_apps``.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ml"


def _view(name: str, page: str) -> dict[str, str]:
    return {
        "name": name,
        "href": f"{URL_PREFIX}/{page}",
        "url_route": f"ml-{page}",
        "destination": "nav",
        "category": "browse",
    }


class _FastAPIApps:
    """``fastapi_apps`` built on first access, on the class or an instance alike."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: object, objtype: type | None = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from airflow_ml_provider.plugins.app import app

            self._apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ML platform"}]
        return self._apps


class MLPlatformPlugin(AirflowPlugin):
    """Registers the ML pages (models, drift, recommendations, data) with Airflow's API server and UI."""

    name = "ml_platform"
    fastapi_apps = _FastAPIApps()  # type: ignore[assignment]
    external_views = [
        _view("Models", "models"),
        _view("Drift", "drift"),
        _view("Recommendations", "recommendations"),
        _view("Data", "data"),
    ]
