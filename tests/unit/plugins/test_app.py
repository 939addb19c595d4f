"""The ML pages through FastAPI's TestClient, with Airflow's real auth (SimpleAuthManager JWTs).

The app is mounted under /ml in an outer app, as Airflow's API server mounts it. The
warehouse is real DuckDB, filled through the provider's own writers (the registry,
record_run, replace_partition with the drift results schema).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from filelock import FileLock

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.plugins import app as ml_app
from airflow_ml_provider.plugins.ml_platform import MLPlatformPlugin
from tests.unit.plugins.world import SVG, auth, make_client, svgs

PAGES = ("/ml/models", "/ml/models/recsys/v3", "/ml/drift", "/ml/recommendations", "/ml/data")
APIS = ("/ml/api/models", "/ml/api/models/recsys/v3", "/ml/api/drift", "/ml/api/recommendations", "/ml/api/data")
#: Pages with an overview that shows the empty state on a fresh install.
OVERVIEWS = ("/ml/models", "/ml/drift", "/ml/recommendations", "/ml/data")


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", APIS)
def test_no_token_is_401_on_the_api(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize("path", [*PAGES, "/ml/"])
def test_no_token_on_a_page_redirects_to_airflows_login(client, path):
    # What Airflow's own UI does on a 401: /api/v2/auth/login?next=<page>; the auth manager picks the login page.
    response = client.get(f"{path}?date=2026-03-31", follow_redirects=False)
    assert response.status_code == 307, response.text
    location = response.headers["location"]
    assert location.startswith("/api/v2/auth/login?next=")
    assert parse_qs(urlsplit(location).query)["next"] == [f"http://testserver{path}?date=2026-03-31"]


@pytest.mark.parametrize("path", [*PAGES, *APIS])
def test_user_without_dag_read_access_is_403(client, tokens, path):
    response = client.get(path, headers=auth(tokens["none"]))
    assert response.status_code == 403, response.text


def test_a_forged_token_is_rejected(client, tokens):
    forged = tokens["viewer"][:-4] + ("AAAA" if not tokens["viewer"].endswith("AAAA") else "BBBB")
    assert client.get("/ml/api/models", headers=auth(forged)).status_code in (401, 403)


def test_the_ui_session_cookie_is_accepted(client, tokens):
    # The nav loads the pages in an iframe: the browser sends the `_token` cookie, no header.
    client.cookies.set("_token", tokens["viewer"])
    try:
        response = client.get("/ml/models")
    finally:
        client.cookies.clear()
    assert response.status_code == 200
    assert "v2" in response.text


@pytest.mark.parametrize("role", ["viewer", "admin"])
@pytest.mark.parametrize("path", [*PAGES, *APIS])
def test_pages_and_apis_answer_200_with_a_token(client, tokens, role, path):
    response = client.get(path, headers=auth(tokens[role]))
    assert response.status_code == 200, response.text


def test_index_redirects_to_models_under_the_mount(client, tokens):
    response = client.get("/ml/", headers=auth(tokens["viewer"]), follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/ml/models"


# --- data ----------------------------------------------------------------------------------


def test_models_api_lists_versions_with_metric_and_baseline(client, tokens):
    body = client.get("/ml/api/models", headers=auth(tokens["viewer"])).json()
    by_version = {m["version"]: m for m in body["models"]}
    assert [m["version"] for m in body["models"]] == ["v3", "v2", "v1"]  # newest first
    assert {v: m["status"] for v, m in by_version.items()} == {"v1": "archived", "v2": "champion", "v3": "rejected"}
    assert by_version["v2"]["model_score"] == pytest.approx(0.47)
    assert by_version["v2"]["baseline_score"] == pytest.approx(0.42)
    assert by_version["v2"]["k"] == 10
    json.dumps(body)  # JSON-able all the way down


def test_models_page_marks_the_champion_and_charts_model_vs_baseline(client, tokens):
    html = client.get("/ml/models", headers=auth(tokens["viewer"])).text
    assert 'id="recsys-v2"' in html  # the anchor the model-page extra link points at
    assert "★" in html and "rejected" in html
    line, bars = svgs(html)
    assert line.get("class") == "chart line-chart" and bars.get("class") == "chart bar-chart"
    chart = line
    series = {g.get("data-series"): g for g in chart.iter(f"{SVG}g") if g.get("data-series")}
    # v1 and v2 were gated against the candidate popularity, v3 against the global popularity list:
    # the line is the gate's baseline of each version, not "popularity" for all.
    assert set(series) == {"model ndcg@10", "the gate's baseline (per version) ndcg@10"}
    # One point per version, oldest first, and the values are in the tooltips.
    model_points = [c.find(f"{SVG}title").text for c in series["model ndcg@10"].iter(f"{SVG}circle")]
    assert model_points == ["model ndcg@10 @ v1: 0.4100", "model ndcg@10 @ v2: 0.4700", "model ndcg@10 @ v3: 0.3900"]
    baseline = series["the gate's baseline (per version) ndcg@10"]
    base_points = [c.find(f"{SVG}title").text for c in baseline.iter(f"{SVG}circle")]
    assert base_points[-1].endswith("v3: 0.4300")
    # The bars compare the champion (v2), not the newest version, with the baseline metric by metric.
    bar_titles = [r.find(f"{SVG}title").text for r in bars.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert bar_titles == [
        "v2 ndcg@10: 0.4700",
        "v2 recall@10: 0.7000",
        # Envelopes from before scopes scored candidates only, against the candidate-popularity baseline.
        "candidate popularity baseline ndcg@10: 0.4200",
        "candidate popularity baseline recall@10: 0.6000",
    ]
    assert "candidate recall" in html and "<td>candidates</td>" in html


def test_drift_page_heatmap_has_a_cell_per_feature_and_date(client, tokens):
    html = client.get("/ml/drift", headers=auth(tokens["viewer"])).text
    (heat,) = [svg for svg in svgs(html) if svg.get("class") == "chart heatmap"]
    cells = list(heat.iter(f"{SVG}g"))
    severities = [c.get("data-severity") for c in cells if c.get("data-severity")]
    assert len(severities) == 3 * 3  # item_price, user_events, item_category x three dates
    assert severities.count("drift") == 1 and severities.count("warn") == 1 and severities.count("skipped") == 3
    tips = " ".join(c.find(f"{SVG}title").text for c in cells if c.get("data-severity"))
    assert "item_price on 2026-03-31: PSI 0.3100 (drift; warn at 0.1, drift at 0.25)" in tips
    legend = " ".join(t.text or "" for t in heat.iter(f"{SVG}text"))
    assert "warn: PSI ≥ 0.1" in legend and "drift: PSI ≥ 0.25" in legend
    # The latest verdict is shown, and the drifted feature is listed for the latest date.
    assert 'id="verdicts"' in html and 'id="flagged"' in html
    flagged = html[html.index('id="flagged"') :]
    assert "item_price" in flagged
    # user_events is flagged only in a segment, and the row says so: it is not in the all-rows count.
    assert '<tr data-scope="segment"><td>segment country=DE</td>' in flagged
    assert '<tr data-scope="all"><td>all rows</td>' in flagged


def test_drift_api_returns_psi_verdicts_and_flagged(client, tokens):
    body = client.get("/ml/api/drift", headers=auth(tokens["viewer"])).json()
    assert [v["logical_date"] for v in body["verdicts"]] == ["2026-03-31", "2026-03-30", "2026-03-29"]
    assert body["verdicts"][0]["severity"] == "drift"
    # All-rows columns first (what the verdict judges), then segments, each labelled.
    assert [(f["feature"], f["severity"], f["scope"]) for f in body["flagged"]] == [
        ("item_price", "drift", "all rows"),
        ("user_events", "warn", "segment country=DE"),
    ]
    assert len(body["psi"]) == 9


def test_recommendations_page_shows_runs_coverage_and_top_items(client, tokens):
    html = client.get("/ml/recommendations", headers=auth(tokens["viewer"])).text
    (chart,) = [svg for svg in svgs(html) if "Catalog coverage" in svg.get("aria-label")]
    points = [c.find(f"{SVG}title").text for c in chart.iter(f"{SVG}circle")]
    assert points == [
        "catalog coverage @ 2026-03-29: 60%",
        "catalog coverage @ 2026-03-30: 80%",
        "catalog coverage @ 2026-03-31: 40%",
    ]
    assert 'id="top-items"' in html and 'id="runs"' in html
    assert "run-failed" in html and "failed" in html


def test_recommendations_api_top_items_are_the_newest_dates(client, tokens):
    body = client.get("/ml/api/recommendations", headers=auth(tokens["viewer"])).json()
    assert body["latest_date"] == "2026-03-31"
    assert body["latest_totals"]["users"] == 4
    # On the newest day (d=2) every user gets items i2, i3, i4 at ranks 1..3.
    assert sorted(t["item_id"] for t in body["top_items"]["items"]) == ["i2", "i3", "i4"]
    assert {t["item_id"]: t["first_place"] for t in body["top_items"]["items"]}["i2"] == 4
    assert [c["prediction_date"] for c in body["coverage"]] == ["2026-03-29", "2026-03-30", "2026-03-31"]
    assert len(body["runs"]) == 4


# --- states --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", OVERVIEWS)
def test_a_fresh_install_shows_the_empty_state_not_a_500(tmp_path, tokens, path):
    client = make_client(DuckDBWarehouse(tmp_path / "none" / "warehouse.duckdb", lock_timeout=2))
    response = client.get(path, headers=auth(tokens["viewer"]))
    assert response.status_code == 200
    assert 'data-state="empty"' in response.text and "make demo" in response.text
    assert "<svg" not in response.text


def test_the_empty_apis_answer_empty_lists(tmp_path, tokens):
    client = make_client(DuckDBWarehouse(tmp_path / "none" / "warehouse.duckdb", lock_timeout=2))
    assert client.get("/ml/api/models", headers=auth(tokens["viewer"])).json()["models"] == []
    assert client.get("/ml/api/recommendations", headers=auth(tokens["viewer"])).json()["latest_date"] is None


def test_a_locked_warehouse_answers_503_with_a_message(seeded, tokens):
    client = make_client(DuckDBWarehouse(seeded.path, lock_timeout=0.3))
    with FileLock(f"{seeded.path}.lock"):  # a writer holds the warehouse
        page = client.get("/ml/drift", headers=auth(tokens["viewer"]))
        api = client.get("/ml/api/drift", headers=auth(tokens["viewer"]))
    assert page.status_code == 503
    assert "The warehouse is busy" in page.text and "Reload in a few seconds" in page.text
    assert 'role="alert"' in page.text
    assert api.status_code == 503 and "locked" in api.json()["detail"]
    # Once the writer is done, the same client reads again.
    assert client.get("/ml/drift", headers=auth(tokens["viewer"])).status_code == 200


class BrokenWarehouse(DuckDBWarehouse):
    def query(self, sql, params=None, *, source="<sql>"):
        raise RuntimeError("403 Access Denied: dataset recsys")


def test_a_failing_warehouse_shows_the_error_on_a_page(tmp_path, tokens):
    client = make_client(BrokenWarehouse(tmp_path / "x.duckdb"))
    page = client.get("/ml/models", headers=auth(tokens["viewer"]))
    assert page.status_code == 500
    assert "The warehouse could not be read" in page.text and "403 Access Denied: dataset recsys" in page.text
    api = client.get("/ml/api/models", headers=auth(tokens["viewer"]))
    assert api.status_code == 500 and api.json() == {"detail": "RuntimeError: 403 Access Denied: dataset recsys"}


# --- wiring --------------------------------------------------------------------------------


def test_default_warehouse_follows_the_connection_with_a_short_lock_timeout(tmp_path, monkeypatch):
    path = tmp_path / "conn.duckdb"
    extra = {"warehouse_path": str(path), "lock_timeout_seconds": 600}
    monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
    warehouse = ml_app.get_warehouse()
    assert isinstance(warehouse, DuckDBWarehouse)
    assert warehouse.path == path and warehouse.lock_timeout == ml_app.UI_LOCK_TIMEOUT


def test_the_warehouse_is_reused_until_the_connection_changes(tmp_path, monkeypatch):
    def connect(path):
        extra = {"warehouse_path": str(path)}
        monkeypatch.setenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", json.dumps({"conn_type": "ml_platform", "extra": extra}))
        return ml_app.get_warehouse()

    first = connect(tmp_path / "a.duckdb")
    assert connect(tmp_path / "a.duckdb") is first
    other = connect(tmp_path / "b.duckdb")
    assert other is not first and other.path == tmp_path / "b.duckdb"


def test_without_a_connection_the_embedded_default_is_read(monkeypatch):
    import os
    from pathlib import Path

    monkeypatch.delenv("AIRFLOW_CONN_ML_PLATFORM_DEFAULT", raising=False)
    warehouse = ml_app.get_warehouse()
    assert isinstance(warehouse, DuckDBWarehouse)
    assert Path(warehouse.path).is_relative_to(Path(os.environ["AIRFLOW_ML_HOME"]))


def test_plugin_mounts_the_app_and_puts_the_pages_in_the_browse_menu():
    (fastapi_app,) = MLPlatformPlugin.fastapi_apps
    assert fastapi_app["url_prefix"] == "/ml" and fastapi_app["app"] is ml_app.app
    views = {v["name"]: v for v in MLPlatformPlugin.external_views}
    assert set(views) == {"Models", "Drift", "Recommendations", "Data"}
    assert views["Drift"]["href"] == "/ml/drift" and views["Drift"]["category"] == "browse"
    routes = {v["url_route"] for v in views.values()}
    assert len(routes) == 4
    # The views validate against Airflow's own response model (what /ui/plugins serves).
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    for view in views.values():
        ExternalViewResponse.model_validate(view)


def test_loading_the_plugin_does_not_import_the_app():
    # Every task process loads plugins (for macros); only the API server needs the FastAPI app.
    import subprocess
    import sys

    code = (
        "import sys, airflow_ml_provider.plugins.ml_platform as m; "
        "print('airflow_ml_provider.plugins.app' in sys.modules, "
        "'airflow.api_fastapi.core_api.security' in sys.modules); "
        "m.MLPlatformPlugin.fastapi_apps; print('airflow_ml_provider.plugins.app' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]


def test_every_route_of_the_real_app_requires_auth():
    # Guard against a route added later without the dependency: the app-level dependency covers all.
    from fastapi.routing import APIRoute

    client = TestClient(FastAPI())
    client.app.mount("/ml", ml_app.app)
    for route in ml_app.app.routes:
        if isinstance(route, APIRoute):
            response = client.get(f"/ml{route.path}", follow_redirects=False)
            if route.path.startswith("/api/"):
                assert response.status_code == 401, route.path
            else:  # a page sends the browser to Airflow's login
                assert response.status_code == 307, route.path
                assert response.headers["location"].startswith("/api/v2/auth/login?next="), route.path
