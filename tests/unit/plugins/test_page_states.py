"""What the pages say when filters narrow or empty them, refuse a bad parameter, or meet no login (issue 28).

Same world as the other page tests (``world.py``): v1, v2 and v3 created 04-01 to 04-03 (only v3
records a data date: its test window ends 2026-03-17), drift and lists on 03-29 to 03-31.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.plugins.world import auth


def get(client, tokens, path: str, **params):
    return client.get(path, params=params, headers=auth(tokens["viewer"]))


# --- empty states name the filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/ml/models", {"version": "nope"}, "version=nope"),
        ("/ml/models", {"date": "2026-01-01"}, "date=2026-01-01"),
        ("/ml/drift", {"model": "nope"}, "model=nope"),
        ("/ml/recommendations", {"date": "2025-01-01"}, "date=2025-01-01"),
        ("/ml/data", {"date": "2025-01-01"}, "2025-01-01"),
    ],
)
def test_a_filter_that_empties_a_page_says_so_and_how_to_clear_it(client, tokens, path, params, named):
    html = get(client, tokens, path, **params).text
    assert 'data-state="filtered"' in html, html
    assert named in html
    assert "make demo" not in html and "yet" not in html.split('data-state="filtered"')[1][:300]
    assert f'<a href="{path}">clear them</a> to see all ' in html  # not "every model versions"
    # The form keeps what was asked.
    name, value = next(iter(params.items()))
    assert f'name="{name}" value="{value}"' in html


def test_the_models_page_labels_the_data_date_and_the_creation_time_as_such(client, tokens):
    html = get(client, tokens, "/ml/models").text
    assert "<th>data as of</th>" in html and "<th>created (run time)</th>" in html
    assert "<th>trained</th>" not in html
    row = re.search(r'<tr id="recsys-v3".*?</tr>', html, re.S).group(0)
    assert '<td data-col="data-date">2026-03-17</td>' in row and "2026-03-11 to 2026-03-17" in row
    version = get(client, tokens, "/ml/models/recsys/v3").text
    assert "Data as of 2026-03-17; created 2026-04-03" in version and "Trained 2026" not in version


def test_data_date_reads_the_version_name_before_the_test_window():
    from airflow_ml_provider.plugins.data import data_date

    assert str(data_date("20260331-1a2b3c4d", {"test_dates": ["2026-03-11", "2026-03-17"]})) == "2026-03-31"
    assert str(data_date("v3", {"test_dates": ["2026-03-11", "2026-03-17"]})) == "2026-03-17"
    assert data_date("20261399-x", {}) is None and data_date("v1", {}) is None


def test_recommendations_date_filters_the_runs_and_coverage_too(client, tokens):
    body = get(client, tokens, "/ml/api/recommendations", date="2026-03-30").json()
    assert {r["prediction_date"][:10] for r in body["runs"]} == {"2026-03-29", "2026-03-30"}
    assert [c["prediction_date"][:10] for c in body["coverage"]] == ["2026-03-29", "2026-03-30"]
    assert body["latest_date"] == "2026-03-30"


def test_recommendation_runs_are_in_prediction_date_order(client, tokens):
    # The failed try of 03-31 started before every other run: by start time it would come last.
    runs = get(client, tokens, "/ml/api/recommendations").json()["runs"]
    dates = [r["prediction_date"][:10] for r in runs]
    assert dates == sorted(dates, reverse=True)
    assert runs[0]["prediction_date"][:10] == "2026-03-31"


def test_an_outcomes_panel_emptied_by_filters_names_them():
    import datetime as dt

    from airflow_ml_provider.plugins import data_outcomes

    text = data_outcomes.no_outcomes_message(dt.date(2025, 1, 1), "recsys", None)
    assert "served on or before 2025-01-01" in text and "model=recsys" in text and "clear" in text
    assert data_outcomes.no_outcomes_message() == data_outcomes.NO_OUTCOMES


# --- drift: a date with no check is not given another date's verdict -------------------------------


def test_a_drift_date_with_no_check_says_not_checked(client, tokens):
    html = get(client, tokens, "/ml/drift", date="2027-01-01").text
    assert 'id="not-checked"' in html and "not checked" in html
    assert "Verdict on 2026-03-31" not in html and 'id="verdict"' not in html
    assert 'href="?date=2026-03-31"' in html  # the newest check before it, as a link
    body = get(client, tokens, "/ml/api/drift", date="2027-01-01").json()
    assert body["verdict"] is None and body["checked_before"] == "2026-03-31"


def test_a_checked_drift_date_shows_its_own_verdict(client, tokens):
    html = get(client, tokens, "/ml/drift", date="2026-03-30").text
    verdict = re.search(r'<div class="stat" id="verdict">.*?</div></div>', html, re.S).group(0)
    assert "verdict on 2026-03-30" in verdict and 'badge warn">warn<' in verdict


# --- bad parameters are refused, the form kept -----------------------------------------------------


def test_an_unknown_status_is_refused_naming_the_parameter_with_the_form_kept(client, tokens):
    response = get(client, tokens, "/ml/data", status="bogus", table="events")
    assert response.status_code == 400
    html = response.text
    assert "status=&#39;bogus&#39;" in html or "status='bogus'" in html
    assert "pass, warn, fail, skipped" in html
    assert 'id="filters"' in html and 'name="table" value="events"' in html
    assert re.search(r'<label class="invalid">status<input name="status" value="bogus"', html)
    api = get(client, tokens, "/ml/api/data", status="bogus")
    assert api.status_code == 400 and "status='bogus'" in api.json()["detail"]


@pytest.mark.parametrize("path", ["/ml/models", "/ml/drift", "/ml/recommendations", "/ml/data"])
def test_a_bad_date_keeps_the_form(client, tokens, path):
    response = get(client, tokens, path, date="31/03/2026", model="recsys")
    assert response.status_code == 400
    assert "date=&#39;31/03/2026&#39;" in response.text
    assert 'name="date" value="31/03/2026" placeholder' in response.text and 'aria-invalid="true"' in response.text
    assert f'action="{path}"' in response.text


# --- unknown paths and no login get Airflow's pages ------------------------------------------------


@pytest.mark.parametrize("headers", [{}, None])
def test_an_unknown_page_gets_airflows_404(client, tokens, headers):
    response = client.get("/ml/nosuchpage", headers=auth(tokens["viewer"]) if headers is None else headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    # Airflow's UI shell with its base at Airflow's root (not /ml): its router shows "page not found".
    assert '<base href="/" />' in response.text and 'id="root"' in response.text


def test_an_unknown_api_path_keeps_json(client, tokens):
    response = client.get("/ml/api/nosuch", headers=auth(tokens["viewer"]))
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def test_a_page_without_dag_read_access_is_a_403_page_not_json(client, tokens):
    response = client.get("/ml/models", headers=auth(tokens["none"]))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html") and "DAG read access" in response.text
    api = client.get("/ml/api/models", headers=auth(tokens["none"]))
    assert api.status_code == 403 and "detail" in api.json()


# --- drift: per-column levels in the legend, thresholds as lines ---------------------------------


def _psi_row(feature: str, day: str, value: float, warn: float, drift: float, kind: str = "numeric") -> dict:
    severity = "drift" if value >= drift else "warn" if value >= warn else "ok"
    return {
        "logical_date": day,
        "table_name": "features",
        "feature": feature,
        "value": value,
        "warn_threshold": warn,
        "threshold": drift,
        "severity": severity,
        "status": "evaluated",
        "skip_reason": None,
        "kind": kind,
    }


def test_the_heatmap_legend_gives_categorical_columns_their_own_levels():
    from airflow_ml_provider.plugins import figures
    from tests.unit.plugins.world import SVG, svgs

    psi = [
        _psi_row("item_price", "2026-03-31", 0.12, 0.1, 0.25),
        _psi_row("user_events", "2026-03-31", 0.02, 0.1, 0.25),
        _psi_row("item_category", "2026-03-31", 0.138, 0.05, 0.1, kind="categorical"),
    ]
    svg = svgs(figures.drift_heatmap(psi))[0]
    texts = [t.text or "" for t in svg.iter(f"{SVG}text")]
    # 0.138 is red under its own 0.05 / 0.1: the legend must not say "drift: PSI ≥ 0.25" for every row.
    assert "item_category (warn 0.05 / drift 0.1)" in texts and "item_price (warn 0.1 / drift 0.25)" in texts
    assert not any("≥ 0.25" in t for t in texts)
    assert "drift: PSI ≥ its drift level (levels beside each column)" in texts
    cell = next(g for g in svg.iter(f"{SVG}g") if "item_category" in (g.find(f"{SVG}title").text or ""))
    assert cell.get("data-severity") == "drift"


def test_the_heatmap_legend_of_shared_levels_names_them_once():
    from airflow_ml_provider.plugins import figures
    from tests.unit.plugins.world import SVG, svgs

    psi = [_psi_row("a", "2026-03-31", 0.12, 0.1, 0.25), _psi_row("b", "2026-03-31", 0.3, 0.1, 0.25)]
    texts = [t.text or "" for t in svgs(figures.drift_heatmap(psi))[0].iter(f"{SVG}text")]
    assert "drift: PSI ≥ 0.25" in texts and "a" in texts and "b" in texts


def test_the_trend_chart_draws_thresholds_as_lines_not_dots(client, tokens):
    from tests.unit.plugins.world import SVG, svgs

    html = get(client, tokens, "/ml/drift", feature="item_price").text
    trend = next(s for s in svgs(html) if "PSI of item_price by checked date" in (s.get("aria-label") or ""))
    series = {g.get("data-series"): g for g in trend.iter(f"{SVG}g") if g.get("data-series")}
    for level, value in (("warn at", "0.1"), ("drift at", "0.25")):
        g = series[level]
        assert list(g.iter(f"{SVG}circle")) == [], level  # no dots that read as data
        lines = list(g.iter(f"{SVG}polyline"))
        assert len(lines) == 1 and len(lines[0].get("points").split()) == 3  # one line over the three dates
        assert g.find(f"{SVG}title").text == f"{level}: {value}"
    assert len(list(series["item_price PSI"].iter(f"{SVG}circle"))) == 3


def test_a_threshold_with_one_checked_date_still_draws_a_line():
    from airflow_ml_provider.plugins import figures
    from tests.unit.plugins.world import SVG, svgs

    trend = [{**_psi_row("x", "2026-03-31", 0.2, 0.1, 0.25), "n_ref": 1, "n_cur": 1}]
    svg = svgs(figures.psi_trend_chart(trend, "x"))[0]
    warn = next(g for g in svg.iter(f"{SVG}g") if g.get("data-series") == "warn at")
    assert len(list(warn.iter(f"{SVG}polyline"))) == 1 and not list(warn.iter(f"{SVG}circle"))


# --- recommendations: the headline and the concentration flag ----------------------------------------


def test_the_headline_answers_whether_the_newest_judged_lists_beat_popularity(client, tokens):
    # 03-31: the served lists hit 3 of 4 active users (ndcg 0.42), the popularity list 1 of 4 (0.10).
    body = get(client, tokens, "/ml/api/recommendations").json()
    h = body["headline"]
    assert h["judged_date"] == "2026-03-31" and h["versions"] == ["v2"]
    assert h["model"]["hit_rate"] == 0.75 and h["popularity"]["hit_rate"] == 0.25
    assert h["hit_rate_delta"] == pytest.approx(0.5) and h["ndcg_delta"] == pytest.approx(0.32)
    assert h["ci"]["low"] < 0.5 < h["ci"]["high"] and h["verdict"] in ("better", "unclear")
    assert h["pending_date"] is None  # the newest served date is judged
    html = get(client, tokens, "/ml/recommendations").text
    card = re.search(r'<div class="card" id="headline".*?</div>', html, re.S).group(0)
    assert "Lists served 2026-03-31" in card and "75.0%" in card and "25.0%" in card and "+50.0 pts" in card
    assert "0.4200" in card and "+0.3200" in card and "95% CI" in card


def test_the_headline_says_when_the_newest_served_date_becomes_judgeable(client, tokens):
    # Up to 03-30: lists of 03-30 are served but not judged; the newest judged date is 03-29.
    h = get(client, tokens, "/ml/api/recommendations", date="2026-03-30").json()["headline"]
    assert h["judged_date"] == "2026-03-29"
    # served date + the contract's 7-day label horizon + 1.
    assert h["pending_date"] == "2026-03-30" and h["judgeable_on"] == "2026-04-07" and h["horizon_days"] == 7
    html = get(client, tokens, "/ml/recommendations", date="2026-03-30").text
    assert re.search(
        r'id="judgeable-on">Lists served 2026-03-30 are not judged yet: .*<strong>2026-04-07</strong>', html
    )


def test_headline_verdict_and_interval():
    from airflow_ml_provider.plugins.data_outcomes import headline

    def row(source, hits, users, ndcg, day="2026-03-31"):
        return {
            "prediction_date": day,
            "list_source": source,
            "model_version": "v2",
            "k": 10,
            "hits": hits,
            "active_users": users,
            "hit_rate": hits / users,
            "ndcg_at_k": ndcg,
        }

    better = headline([row("model", 600, 1000, 0.3), row("global_popularity", 400, 1000, 0.2)], None, 7, "t")
    assert better["verdict"] == "better" and better["ci"]["low"] > 0
    worse = headline([row("model", 300, 1000, 0.1), row("global_popularity", 400, 1000, 0.2)], None, 7, "t")
    assert worse["verdict"] == "worse" and worse["ci"]["high"] < 0
    none = headline([], "2026-03-31", 7, "t")
    assert none["judged_date"] is None and none["judgeable_on"] == "2026-04-08"


def test_a_date_whose_lists_all_hold_one_item_is_flagged_as_concentrated(client, tokens):
    # Every list of 03-31 holds i2, i3 and i4 (the catalog has 5 items).
    c = get(client, tokens, "/ml/api/recommendations").json()["concentration"]
    assert c["top_share"] == 1.0 and c["flagged"] is True and c["gini_over"] == "catalog"
    assert c["gini"] == pytest.approx(0.4)  # exposure 4, 4, 4, 0, 0
    html = get(client, tokens, "/ml/recommendations").text
    assert 'id="concentration" data-flagged="yes"' in html and "concentrated" in html
    assert 'id="concentration-note"' in html


def test_gini_of_exposure():
    from airflow_ml_provider.plugins.data_outcomes import gini

    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert gini([]) is None and gini([0, 0]) is None


# --- smaller things the issue names ---------------------------------------------------------------


def test_the_coverage_chart_leaves_a_gap_for_a_date_without_a_run():
    from airflow_ml_provider.plugins import figures
    from tests.unit.plugins.world import SVG, svgs

    svg = svgs(
        figures.coverage_chart(
            [
                {"prediction_date": "2026-03-29", "coverage": 0.5},
                {"prediction_date": "2026-03-31", "coverage": 0.6},
            ]
        )
    )[0]
    labels = [t.text for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("2026-")]
    assert labels == ["2026-03-29", "2026-03-30", "2026-03-31"]
    assert not list(svg.iter(f"{SVG}polyline"))  # two points, no line across the missing date


def test_a_long_chart_title_is_fitted_not_cut():
    from airflow_ml_provider.plugins import charts
    from tests.unit.plugins.world import SVG, svgs

    title = "recsys champion 20260331-1c660967: ranking metrics (end-to-end) vs the global popularity baseline " * 2
    svg = svgs(charts.bar_chart(["ndcg"], [charts.Series("m", [0.5])], title=title))[0]
    heading = next(t for t in svg.iter(f"{SVG}text") if t.text == title)
    assert float(heading.get("textLength")) <= 1040 - 64 and heading.get("lengthAdjust") == "spacingAndGlyphs"
    short = svgs(charts.bar_chart(["ndcg"], [charts.Series("m", [0.5])], title="short"))[0]
    assert next(t for t in short.iter(f"{SVG}text") if t.text == "short").get("textLength") is None


def test_the_version_page_lists_the_objective_once(tmp_path, tokens):
    # The trainer records the objective on the envelope and in its LightGBM params: show it once.
    import json

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.training.envelope import ENVELOPE_FILE
    from tests.unit.plugins.world import make_client, seed, seed_pages

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=10)
    seed(warehouse)
    seed_pages(warehouse, tmp_path / "artifacts")
    path = tmp_path / "artifacts" / "recsys" / "v3" / ENVELOPE_FILE
    envelope = json.loads(path.read_text())
    envelope["params"]["objective"] = envelope["objective"]
    path.write_text(json.dumps(envelope))
    html = make_client(warehouse).get("/ml/models/recsys/v3", headers=auth(tokens["viewer"])).text
    assert html.count("<dt>objective</dt>") == 1 and "<dt>num_leaves</dt>" in html


def test_a_bad_date_on_a_version_page_keeps_its_form(client, tokens):
    response = get(client, tokens, "/ml/models/recsys/v3", date="yesterday")
    assert response.status_code == 400
    assert 'action="/ml/models/recsys/v3"' in response.text
    assert 'name="date" value="yesterday" placeholder' in response.text


def test_the_user_lookup_shows_category_and_price(client, tokens):
    html = get(client, tokens, "/ml/recommendations", user="u0").text
    listed = html[html.index('id="user-list"') : html.index("</table>", html.index('id="user-list"'))]
    assert "<th>category</th>" in listed and '<th class="num">price (EUR)</th>' in listed
    # 03-31: u0's list is i2, i3, i4 (bags 30.00, hats 5.25, no category or price).
    assert "<td>bags</td>" in listed and "30.00" in listed and "5.25" in listed


def test_the_user_lookup_says_when_the_events_are_not_loaded_yet(tmp_path, tokens):
    import datetime as dt

    import pyarrow as pa

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.warehouse import ddl
    from tests.unit.plugins.world import make_client

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout=10)
    ddl.ensure_tables(warehouse, "recommendations")
    served = pa.table(
        {
            "user_id": ["u9"],
            "item_id": ["i1"],
            "rank": pa.array([1], pa.int64()),
            "score": [0.5],
            "model_name": ["recsys"],
            "model_version": ["v2"],
            "run_id": ["r"],
            "generated_at": pa.array([dt.datetime(2026, 4, 1, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")),
            "source": ["model"],
        }
    )
    warehouse.replace_partition("recommendations", "prediction_date", dt.date(2026, 3, 31), served)
    # Events of someone else reach 2026-04-01 only: the horizon of 03-31 runs to 04-07.
    warehouse.replace_table(
        "events",
        pa.table(
            {
                "event_ts": pa.array([dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")),
                "user_id": ["u1"],
                "item_id": ["i1"],
                "event_type": ["view"],
            }
        ),
    )
    html = make_client(warehouse).get("/ml/recommendations", params={"user": "u9"}, headers=auth(tokens["viewer"])).text
    assert 'id="events-not-loaded"' in html and "reaches only 2026-04-01" in html and "2026-04-07" in html
    assert 'id="no-events"' not in html


def test_the_version_page_has_a_table_of_contents_whose_links_resolve(client, tokens):
    html = get(client, tokens, "/ml/models/recsys/v3").text
    toc = re.search(r'<nav class="note toc" id="toc">.*?</nav>', html, re.S).group(0)
    targets = re.findall(r'href="#([^"]+)"', toc)
    assert len(targets) == 7
    for target in targets:
        assert f'id="{target}"' in html, target


def test_the_models_chart_names_the_gates_baseline_and_orders_versions_by_data_date():
    # The demo's gate compares with the candidate order (the strongest simple ranker), not popularity;
    # a version retrained later for an older date sits at its data date, not at its creation time.
    from airflow_ml_provider.plugins import figures
    from tests.unit.plugins.world import SVG, svgs

    def row(version, data_date, created, baseline="candidate order"):
        return {
            "model_name": "recsys",
            "version": version,
            "data_date": data_date,
            "created_at": created,
            "k": 10,
            "model_score": 0.33,
            "baseline_score": 0.28,
            "baseline_name": baseline,
        }

    models = [
        row("20260324-aaaa", "2026-03-24", "2026-12-07T13:00:00"),
        row("20260331-bbbb", "2026-03-31", "2026-12-01T09:00:00"),
    ]
    svg = svgs(figures.models_chart(models, "recsys"))[0]
    series = [g.get("data-series") for g in svg.iter(f"{SVG}g") if g.get("data-series")]
    assert series == ["model ndcg@10", "candidate order baseline ndcg@10"]
    assert "popularity" not in (svg.get("aria-label") or "")
    ticks = [t.text for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("2026")]
    assert ticks == ["20260324-aaaa", "20260331-bbbb"]
    mixed = svgs(figures.models_chart([*models, row("v9", None, "2026-11-01T00:00:00", "global popularity")], "recsys"))
    assert "the gate's baseline (per version) ndcg@10" in [g.get("data-series") for g in mixed[0].iter(f"{SVG}g")]


def test_the_version_page_names_every_scope_it_shows(client, tokens):
    # The trainer scores all active users, end-to-end and candidate-restricted: "both scopes" named two of three.
    html = get(client, tokens, "/ml/models/recsys/v3").text
    section = html[html.index('id="sec-metrics"') : html.index('id="metrics"')]
    assert "both scopes" not in html and "Metrics at k in each scope" in section
    for label in ("All active users", "End-to-end", "Candidate-restricted"):
        assert label in section, label
