"""The README and docs/ui.md name every JSON endpoint the ML app serves (issue 28: /ml/api/data was missing)."""

from __future__ import annotations

import re

import pytest

from tests.paths import REPO


def api_paths() -> list[str]:
    """The app's ``/api/...`` GET routes as users call them, under the plugin's ``/ml`` mount."""
    from airflow_ml_provider.plugins.app import router
    from airflow_ml_provider.plugins.ml_platform import URL_PREFIX

    paths = [route.path for route in router.routes if route.path.startswith("/api/")]
    # {model_name} is the route's parameter name; the docs call it {model}.
    return [URL_PREFIX + re.sub(r"\{model_name\}", "{model}", p) for p in paths]


def test_the_app_serves_the_endpoints_the_docs_are_checked_against():
    assert "/ml/api/data" in api_paths() and "/ml/api/models/{model}/{version}" in api_paths()


@pytest.mark.parametrize("doc", ["README.md", "docs/ui.md"])
def test_every_json_endpoint_is_documented(doc):
    text = (REPO / doc).read_text()
    missing = [path for path in api_paths() if f"`{path}`" not in text]
    assert not missing, f"{doc} does not name {missing}"
