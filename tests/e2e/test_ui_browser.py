"""The ML pages in a real browser: headless Chromium against a real Airflow with the plugin.

The recsys world (tests/e2e/conftest.py) runs the reference DAGs on the embedded default
through a real Airflow (api-server, scheduler, dag-processor, triggerer). This test logs in
through Airflow's own login page (SimpleAuthManager, the harness's user and password), opens
each page from the Browse menu (an iframe in the Airflow UI, authenticated by the session
cookie) and on its own, asserts the charts and tables are there and saves screenshots.

Screenshots go to ``$TEST_ARTIFACTS_DIR/screenshots`` (default ``test-artifacts/screenshots``
in the repository root).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from tests.e2e.cluster import ADMIN
from tests.e2e.conftest import RUN_DATE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
DAYS = [RUN_DATE - dt.timedelta(days=2), RUN_DATE - dt.timedelta(days=1), RUN_DATE]
SCREENSHOTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / "test-artifacts") / "screenshots"
#: Page -> (nav entry, the chart's CSS class or None, the tables that must be there).
PAGES = {
    "models": ("Models", "line-chart", ("#versions",)),
    "drift": ("Drift", "heatmap", ("#verdicts", "#flagged")),
    "recommendations": ("Recommendations", "line-chart", ("#top-items", "#runs")),
    "data": ("Data", None, ("#checks", "#check-dates")),
}

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (make system-deps) to run the UI browser test",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def world(recsys):
    """The recsys world with a champion, three days of recommendations and their drift checks.

    Two days before RUN_DATE get features and recommendations too, so the coverage chart and
    the PSI heatmap have a history to show, as they would after a few days in production.
    """
    recsys.trained()
    for day in DAYS:
        if day != RUN_DATE:
            recsys.run("recsys_features", day)
        recsys.run("recsys_batch_inference", day)
    # Each day's recommendations asset event starts recsys_drift for that day; wait for the checks.
    deadline = time.monotonic() + 600
    while len(checked := recsys.query("SELECT DISTINCT logical_date FROM drift_results")) < len(DAYS):
        assert time.monotonic() < deadline, f"recsys_drift checked only {checked} of {DAYS}"
        time.sleep(3)
    return recsys


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(world, browser):
    """A browser page logged in through Airflow's login form."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.goto(f"{world.cluster.url}/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", world.cluster.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)
    assert any(c["name"] == "_token" for c in context.cookies()), "login set no _token cookie"
    yield page
    context.close()


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"screenshot {path} looks blank"
    return path


def test_pages_are_refused_without_a_login(world, browser):
    """A browser without a login is sent to Airflow's login page and back to the page after it; the API stays 401."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page = context.new_page()
        response = page.goto(f"{world.cluster.url}/ml/models?model=recsys")
        assert "/auth/login" in response.url and "ml%2Fmodels" in response.url, response.url
        shot(page, "airflow-ml-login-redirect")
        api = context.request.get(f"{world.cluster.url}/ml/api/models")
        assert api.status == 401 and api.headers["content-type"].startswith("application/json")
        # Logging in there lands on the page that was asked for, its filter kept.
        page.fill("input[name=username]", ADMIN)
        page.fill("input[name=password]", world.cluster.password)
        page.click("button[type=submit]")
        page.wait_for_url("**/ml/models?model=recsys", timeout=30_000)
        assert page.locator("#versions tbody tr").count() > 0
    finally:
        context.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_from_the_browse_menu_shows_its_charts_and_tables(page, world, name):
    label, chart_class, tables = PAGES[name]
    page.goto(f"{world.cluster.url}/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name=label).click()
    page.wait_for_url(f"**/plugin/ml-{name}**")
    frame_el = page.wait_for_selector("iframe")
    frame = frame_el.content_frame()
    frame.wait_for_selector(f"svg.{chart_class}" if chart_class else tables[0], timeout=30_000)
    for table in tables:
        rows = frame.locator(f"{table} tbody tr")
        assert rows.count() > 0, f"{name}: table {table} has no rows"
    assert frame.locator("[data-state=empty]").count() == 0, f"{name}: the page shows the empty state"
    # The chart has drawn data: points on the line charts, coloured cells on the heatmap.
    if chart_class:
        marks = frame.locator(f"svg.{chart_class} circle, svg.{chart_class} g.cell")
        assert marks.count() > 0, f"{name}: the chart has no data points"
    shot(page, f"airflow-{name}")


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_on_its_own(page, world, name):
    _, chart_class, tables = PAGES[name]
    response = page.goto(f"{world.cluster.url}/ml/{name}")
    assert response.status == 200
    if chart_class:
        assert page.locator(f"svg.{chart_class}").count() >= 1
    for table in tables:
        assert page.locator(f"{table} tbody tr").count() > 0
    shot(page, f"ml-{name}")


def test_the_model_page_link_of_the_publish_task_opens_the_champion_row(page, world):
    client = world.client
    run_id = world.run("recsys_batch_inference", RUN_DATE)
    links = client.get(f"/api/v2/dags/recsys_batch_inference/dagRuns/{run_id}/taskInstances/publish/links")
    extra = links["extra_links"]
    champion = world.query("SELECT version FROM ml_models WHERE model_name = 'recsys' AND status = 'champion'")
    version = champion[0]["version"]
    assert extra["Model page"] == f"{world.cluster.url}/ml/models#recsys-{version}"
    assert extra["BigQuery table"] is None  # the embedded default has no console
    page.goto(extra["Model page"])
    row = page.locator(f"tr[id='recsys-{version}']")
    assert row.count() == 1
    assert "champion" in row.inner_text()
    shot(page, "model-page-link")


def test_the_charts_show_every_day_the_pipeline_ran(page, world):
    page.goto(f"{world.cluster.url}/ml/recommendations")
    points = page.locator("svg.line-chart circle title").evaluate_all("els => els.map(e => e.textContent)")
    # Other e2e tests (the backfill) share this warehouse, so other days may be there too.
    charted = [p.split(":")[0].removeprefix("catalog coverage @ ") for p in points]
    assert set(map(str, DAYS)) <= set(charted), charted
    assert charted == sorted(charted)
    page.goto(f"{world.cluster.url}/ml/drift")
    heat = page.locator("svg.heatmap").inner_html()
    for day in DAYS:
        assert f">{day}</text>" in heat
    verdicts = page.locator("#verdicts tbody tr").all_inner_texts()
    for day in DAYS:
        assert any(str(day) in row for row in verdicts), verdicts


def test_the_champions_version_page_shows_importance_scopes_and_the_gate(page, world):
    version = world.query("SELECT version FROM ml_models WHERE model_name = 'recsys' AND status = 'champion'")[0]
    page.goto(f"{world.cluster.url}/ml/models")
    page.locator(f"tr[id='recsys-{version['version']}'] a").first.click()
    page.wait_for_url(f"**/ml/models/recsys/{version['version']}")
    # The trainer recorded gain importance: one bar per model feature.
    assert page.locator("#importance svg.hbar-chart rect title").count() >= 10
    assert page.locator("#metrics tbody tr").count() >= 4  # model and baselines in both scopes
    assert "champion" in page.locator("#gate").inner_text()
    assert page.locator("#profile tbody tr").count() > 0
    # No outcomes in this world unless recsys_outcomes ran: either the chart or the honest empty state.
    realized = page.locator("[data-state=no-outcomes], svg[aria-label^='Realized hit rate']")
    assert realized.count() >= 1
    shot(page, "ml-model-version")


def test_the_drift_feature_and_user_lookup_and_date_filter(page, world):
    page.goto(f"{world.cluster.url}/ml/drift?date={DAYS[0]}")
    assert f"verdict on {DAYS[0]}" in page.locator(".stats").inner_text().lower()
    assert page.locator("#feature svg.line-chart").count() == 1  # the PSI trend
    assert page.locator("#feature svg.hbar-chart, #bins-reason").count() == 1  # the bins, or why not
    shot(page, "ml-drift-feature")
    user = world.query("SELECT user_id FROM recommendations WHERE prediction_date = @d LIMIT 1", d=RUN_DATE)
    page.goto(f"{world.cluster.url}/ml/recommendations")
    page.fill("#user-lookup input[name=user]", user[0]["user_id"])
    page.click("#user-lookup button[type=submit]")
    page.wait_for_selector("#user-list")
    assert page.locator("#user-list tbody tr").count() > 0
    shot(page, "ml-user-lookup")


@pytest.mark.parametrize(
    ("path", "asked"),
    [
        ("models?version=nope", "version=nope"),
        ("recommendations?date=2000-01-01", "date=2000-01-01"),
        ("drift?date=2000-01-01", "date=2000-01-01"),
    ],
)
def test_a_filter_that_empties_a_page_says_what_was_filtered_and_clears(page, world, path, asked):
    """Not "no data yet, run make demo": the page names the filter, and its link brings every row back."""
    name = path.split("?")[0]
    response = page.goto(f"{world.cluster.url}/ml/{path}")
    assert response.status == 200
    empty = page.locator("[data-state=filtered]")
    assert empty.count() == 1 and page.locator("[data-state=empty]").count() == 0
    text = empty.inner_text().lower()
    assert asked in text and "make demo" not in text, text
    # The form keeps what was asked.
    field, value = asked.split("=")
    assert page.locator(f"#filters input[name={field}]").input_value() == value
    shot(page, f"ml-{name}-filtered-empty")
    empty.get_by_role("link", name="clear them").click()
    page.wait_for_url(f"**/ml/{name}")
    assert page.locator("[data-state=filtered], [data-state=empty]").count() == 0
    _, _, tables = PAGES[name]
    assert page.locator(f"{tables[0]} tbody tr").count() > 0


def test_a_drift_date_without_a_check_says_so_and_links_the_newest_before_it(page, world):
    later = RUN_DATE + dt.timedelta(days=30)
    page.goto(f"{world.cluster.url}/ml/drift?date={later}")
    state = page.locator("#not-checked")
    assert "not checked" in state.inner_text().lower() and page.locator("#verdict").count() == 0
    newest = state.get_by_role("link")
    checked = newest.inner_text().strip()
    assert dt.date.fromisoformat(checked) >= RUN_DATE
    newest.click()
    page.wait_for_url(f"**/ml/drift?date={checked}")
    assert f"verdict on {checked}" in page.locator("#verdict").inner_text().lower()


def test_the_recommendations_headline_answers_from_the_outcomes_or_says_when(page, world):
    """The headline: the newest judged lists vs the popularity list, or the day the newest served lists are judged."""
    page.goto(f"{world.cluster.url}/ml/recommendations")
    card = page.locator("#headline")
    assert card.count() == 1
    text = " ".join(card.inner_text().split()).lower()
    # The page and its JSON endpoint (read with the same session cookie) tell the same story.
    h = page.request.get(f"{world.cluster.url}/ml/api/recommendations").json()["headline"]
    assert card.get_attribute("data-verdict") == (h.get("verdict") or "none")
    assert h["judged_date"] or h["pending_date"], h
    if h["judged_date"]:
        assert f"lists served {h['judged_date']}" in text and "global popularity list" in text, text
    if h["pending_date"]:
        # The newest served lists (this world runs no recsys_outcomes for them) become judgeable
        # on the served date + the label horizon + 1, and the page says which day that is.
        served = dt.date.fromisoformat(h["pending_date"])
        assert h["pending_date"] == h["newest_served"][:10]
        assert h["judgeable_on"] == str(served + dt.timedelta(days=h["horizon_days"] + 1))
        judgeable = " ".join(page.locator("#judgeable-on").inner_text().split()).lower()
        assert f"lists served {served} are not judged yet" in judgeable and h["judgeable_on"] in judgeable
    # The concentration of the newest lists: the share of lists holding the top item, with its flag.
    assert page.locator("#concentration").get_attribute("data-flagged") in ("yes", "no")
    shot(page, "ml-recommendations-headline")
