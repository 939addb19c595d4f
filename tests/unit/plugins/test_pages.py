"""The detail pages and their filters through FastAPI's TestClient, with Airflow's real auth.

Auth refusal of every page and endpoint (401 without a token, 403 without DAG access) is
parametrized in test_app.py over the same paths; here, what each page shows.
"""

from __future__ import annotations

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.plugins import data_outcomes
from tests.unit.plugins.world import SVG, auth, make_client, svgs


def get(client, tokens, path: str, **params):
    return client.get(path, params=params, headers=auth(tokens["viewer"]))


def titles(svg, tag: str) -> list[str]:
    return [e.find(f"{SVG}title").text for e in svg.iter(f"{SVG}{tag}") if e.find(f"{SVG}title") is not None]


def by_label(html: str, words: str):
    found = [s for s in svgs(html) if words in (s.get("aria-label") or "")]
    assert len(found) == 1, [s.get("aria-label") for s in svgs(html)]
    return found[0]


# --- models --------------------------------------------------------------------------------------


def test_the_version_page_shows_params_windows_scopes_importance_gate_and_profile(client, tokens):
    response = get(client, tokens, "/ml/models/recsys/v3")
    assert response.status_code == 200
    html = response.text
    importance = by_label(html, "Feature importance of v3")
    assert importance.get("class") == "chart hbar-chart"
    assert titles(importance, "rect") == [
        "v3 gain user_events: 300",
        "v3 gain item_price: 120",
        "v3 gain item_category: 0",
    ]
    end_to_end = by_label(html, "end-to-end: the model vs the baselines")
    assert {g.get("data-series") for g in end_to_end.iter(f"{SVG}g") if g.get("data-series")} == {
        "model",
        "global popularity",
    }
    assert "candidate-restricted: the model vs the baselines" in html
    assert 'id="gate-reason">below the baseline<' in html
    assert '<dt>num_leaves</dt><dd class="mono">31</dd>' in html
    assert "2026-02-13 to 2026-02-26" in html and "12,000" in html  # fit window and rows
    assert 'id="envelope-error"' not in html
    # v3 never served: the honest empty state, no outcome chart.
    assert 'data-state="no-outcomes"' in html and "dates are evaluated once their horizon has passed" in html
    assert "recsys_outcomes" in html


def test_the_version_page_of_a_served_version_charts_its_outcomes_and_names_an_unreadable_envelope(client, tokens):
    html = get(client, tokens, "/ml/models/recsys/v2").text
    assert 'id="envelope-error"' in html and "file:///m/v2/envelope.json could not be read" in html
    assert 'id="profile"' in html and "item_price" in html
    chart = by_label(html, "Realized hit rate")
    assert titles(chart, "circle") == [
        "recsys v2 hit rate @ 2026-03-29: 50%",
        "recsys v2 hit rate @ 2026-03-31: 75%",
        "global popularity hit rate @ 2026-03-29: 25%",
        "global popularity hit rate @ 2026-03-31: 25%",
    ]
    # The date filter narrows the outcomes.
    narrowed = get(client, tokens, "/ml/models/recsys/v2", date="2026-03-30").text
    assert titles(by_label(narrowed, "Realized hit rate"), "circle")[0].endswith("2026-03-29: 50%")
    assert "2026-03-31: 75%" not in narrowed


def test_an_unknown_version_is_a_404_page_and_json(client, tokens):
    page = get(client, tokens, "/ml/models/recsys/v9")
    assert page.status_code == 404 and "No such model version" in page.text and 'role="alert"' in page.text
    api = get(client, tokens, "/ml/api/models/recsys/v9")
    assert api.status_code == 404 and "has no version 'v9'" in api.json()["detail"]


def test_the_version_api_serves_what_the_page_shows(client, tokens):
    body = get(client, tokens, "/ml/api/models/recsys/v3").json()
    assert body["envelope"]["feature_importance"][0] == {"feature": "user_events", "gain": 300.25}
    assert body["gate"]["status"] == "rejected"
    assert {r["scope"] for r in body["metrics"]} == {"end_to_end", "candidates"}


def test_the_models_list_links_each_version_and_filters_by_model_version_and_date(client, tokens):
    html = get(client, tokens, "/ml/models").text
    assert 'href="/ml/models/recsys/v2"' in html
    assert [m["version"] for m in get(client, tokens, "/ml/api/models", version="v2").json()["models"]] == ["v2"]
    assert get(client, tokens, "/ml/api/models", model="other").json()["models"] == []
    # The date filters by the data's as-of date, not the creation time (04-01 to 04-03): only v3 records
    # one (its test window ends 2026-03-17); v1 and v2 have no dated version name and no test window.
    early = get(client, tokens, "/ml/api/models", date="2026-03-31").json()
    assert [m["version"] for m in early["models"]] == ["v3"] and early["filters"]["date"] == "2026-03-31"
    assert early["models"][0]["data_date"] == "2026-03-17"


# --- recommendations -----------------------------------------------------------------------------


def test_realized_outcomes_chart_shows_a_gap_for_the_unevaluated_date(client, tokens):
    html = get(client, tokens, "/ml/recommendations").text
    chart = by_label(html, "Realized hit rate by served date")
    x_labels = [t.text for t in chart.iter(f"{SVG}text") if (t.text or "").startswith("2026-")]
    assert x_labels == ["2026-03-29", "2026-03-30", "2026-03-31"]
    series = {g.get("data-series"): g for g in chart.iter(f"{SVG}g") if g.get("data-series")}
    assert set(series) == {"recsys v2 hit rate", "global popularity hit rate"}
    # Two points and no line between them: 03-30 is a gap, not an interpolation.
    model = series["recsys v2 hit rate"]
    assert len(list(model.iter(f"{SVG}circle"))) == 2 and list(model.iter(f"{SVG}polyline")) == []
    ndcg = by_label(html, "Realized ndcg@10")
    assert "recsys v2 ndcg@10 @ 2026-03-31: 0.4200" in titles(ndcg, "circle")
    assert 'id="outcomes"' in html


def test_top_items_show_category_and_price(client, tokens):
    html = get(client, tokens, "/ml/recommendations").text
    table = html[html.index('id="top-items"') :]
    assert "<th>category</th>" in table and '<th class="num">price (EUR)</th>' in table
    assert "<td>bags</td>" in table and '<td class="num">30.00</td>' in table


def test_the_user_lookup_shows_the_list_and_what_the_user_did(client, tokens):
    html = get(client, tokens, "/ml/recommendations", user="u0").text
    listed = html[html.index('id="user-list"') : html.index('id="user-events"')]
    assert listed.count("<tr") == 4  # header + three ranks
    assert (
        '<td class="mono">i2</td><td>bags</td><td class="num">30.00</td><td class="num">1.0000</td><td>view</td>'
        in listed
    )
    events = html[html.index('id="user-events"') :]
    assert "purchase" in events and "<td>no</td>" in events  # i0 was bought but never on the list
    assert "2026-04-01 to 2026-04-07" in html
    api = get(client, tokens, "/ml/api/recommendations", user="u0").json()
    assert [r["item_id"] for r in api["user"]["served"]] == ["i2", "i3", "i4"]
    unknown = get(client, tokens, "/ml/recommendations", user="nobody").text
    assert 'id="user-none"' in unknown


def test_recommendation_filters_narrow_runs_outcomes_and_the_date(client, tokens):
    body = get(client, tokens, "/ml/api/recommendations", date="2026-03-30").json()
    assert body["latest_date"] == "2026-03-30"
    assert {o["prediction_date"] for o in body["outcomes"]} == {"2026-03-29"}
    other = get(client, tokens, "/ml/api/recommendations", version="v1").json()
    assert other["runs"] == [] and other["outcomes"] == [] and other["latest_date"] is None


def test_recommendations_without_outcomes_say_why(seeded, tokens, tmp_path):
    wh = DuckDBWarehouse(tmp_path / "no-outcomes.duckdb")
    for table in ("recommendations", "recommendation_runs"):
        wh.replace_table(table, seeded.query(f"SELECT * FROM {table}"))
    html = get(make_client(wh), tokens, "/ml/recommendations").text
    assert 'data-state="no-outcomes"' in html and data_outcomes.NO_OUTCOMES in html
    assert "Realized hit rate" not in html
    assert 'id="top-items"' in html and "<th>category</th>" not in html  # no items table: no columns


# --- drift ---------------------------------------------------------------------------------------


def test_the_drift_page_charts_the_worst_features_trend_and_bins(client, tokens):
    html = get(client, tokens, "/ml/drift").text
    trend = by_label(html, "PSI of item_price by checked date")
    assert titles(trend, "circle")[:3] == [
        "item_price PSI @ 2026-03-29: 0.0200",
        "item_price PSI @ 2026-03-30: 0.1200",
        "item_price PSI @ 2026-03-31: 0.3100",
    ]
    bins = by_label(html, "features.item_price on 2026-03-31: share of rows per reference bin")
    assert bins.get("class") == "chart hbar-chart"
    current = [t for t in titles(bins, "rect") if t.startswith("2026-03-31")]
    assert current == [
        "2026-03-31 (10 rows) (-inf, 10]: 10.0%",
        "2026-03-31 (10 rows) (10, 20]: 10.0%",
        "2026-03-31 (10 rows) (20, 30]: 0.0%",
        "2026-03-31 (10 rows) (30, inf): 60.0%",
        "2026-03-31 (10 rows) __NULL__: 20.0%",
    ]
    # The headline counts agree with the table: one column on all rows, one segment row.
    assert 'id="flagged-all-rows"><div class="label">flagged on all rows</div><div class="value">1<' in html
    assert 'id="flagged-segments"><div class="label">flagged in segments</div><div class="value">1<' in html


def test_drift_filters_pick_the_date_and_feature(client, tokens):
    body = get(client, tokens, "/ml/api/drift", date="2026-03-30", feature="user_events").json()
    assert body["day"] == "2026-03-30" and body["feature"] == "user_events"
    assert [r["logical_date"] for r in body["trend"]] == ["2026-03-29", "2026-03-30"]
    assert "no stored reference" in body["bins"]["reason"]
    assert {v["logical_date"] for v in body["verdicts"]} == {"2026-03-29", "2026-03-30"}
    assert body["flagged"] == [{**body["flagged"][0], "feature": "item_price", "severity": "warn", "scope": "all rows"}]
    html = get(client, tokens, "/ml/drift", date="2026-03-30", feature="user_events").text
    assert 'id="bins-reason"' in html
    assert get(client, tokens, "/ml/api/drift", model="other").json()["verdicts"] == []


# --- data ----------------------------------------------------------------------------------------


def test_the_data_page_lists_the_newest_checks_and_filters_by_date(client, tokens):
    html = get(client, tokens, "/ml/data").text
    table = html[html.index('id="checks"') : html.index('id="check-dates"')]
    assert table.count('data-status="') == 4
    assert "2 rows of features have a NULL item_price." in table
    assert '<td class="num">2</td><td class="num">0</td><td>warn</td>' in table  # observed vs threshold, severity
    older = get(client, tokens, "/ml/data", date="2026-03-30").text
    assert older[older.index('id="checks"') :].count('data-status="pass"') == 1
    body = get(client, tokens, "/ml/api/data", status="warn").json()
    assert [c["check_name"] for c in body["checks"]] == ["not_null(item_price)"]


# --- bad filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ml/models", "/ml/drift", "/ml/recommendations", "/ml/data"])
def test_a_bad_date_filter_is_a_400_that_names_the_parameter(client, tokens, path):
    page = get(client, tokens, path, date="2026-02-30")
    assert page.status_code == 400
    assert "query parameter date=&#39;2026-02-30&#39; is not a calendar date: use YYYY-MM-DD" in page.text
    api = get(client, tokens, path.replace("/ml/", "/ml/api/"), date="31/03/2026")
    assert api.status_code == 400 and "date='31/03/2026' is not a calendar date" in api.json()["detail"]


def test_a_bad_filter_is_refused_before_auth_is_skipped(client):
    # Without a token, a bad filter is still a 401: auth runs before the filters are read.
    assert client.get("/ml/api/data", params={"date": "nope"}).status_code == 401


def test_an_empty_filter_is_no_filter(client, tokens):
    body = get(client, tokens, "/ml/api/recommendations", date="", model="", version="", user="").json()
    assert body["latest_date"] == "2026-03-31" and body["user"] is None
