"""The analyst queries in sql/analytics/ run on DuckDB and give the right numbers.

Two worlds: a realistic one (the demo world, features for three consecutive days, top-k
lists written through ``replace_partition`` as inference writes them) checked for sensible
ranges and against the same metrics computed in Python; and a tiny hand-made one whose
every value is worked out in the comments.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.inference.scoring import top_k
from airflow_ml_provider.core.warehouse.ddl import ensure_tables
from airflow_ml_provider.core.warehouse.sql import parse, read_sql_file
from tests.paths import PIPELINE, SQL_DIR

ANALYTICS_DIR = SQL_DIR / "analytics"
ANALYTICS_FILES = sorted(ANALYTICS_DIR.glob("*.sql"))
EXPECTED = {"daily_coverage", "popularity_concentration", "diversity_by_category", "day_over_day_overlap", "hit_rate"}
SPEC = load_spec(PIPELINE)
DAYS = [dt.date(2026, 3, 20), dt.date(2026, 3, 21), dt.date(2026, 3, 22)]
HORIZON = 7
K = 10
#: What an analyst passes; test_sql_files.py merges the same names into the pipeline's params.
PARAMS = {"start_date": DAYS[0], "end_date": DAYS[-1], "horizon_days": HORIZON}
TS = pa.timestamp("us", tz="UTC")


def run(wh: DuckDBWarehouse, name: str, params: dict | None = None) -> list[dict]:
    path = ANALYTICS_DIR / f"{name}.sql"
    return wh.query(read_sql_file(path), params or PARAMS, source=str(path)).to_pylist()


def write_lists(wh: DuckDBWarehouse, day: dt.date, users: list, items: list, scores: np.ndarray) -> None:
    """Keep the top K per user and replace the day's partition, as BatchRecommendOperator does."""
    best = top_k(pa.array(users, pa.string()), pa.array(items, pa.string()), scores, K)
    n = best.num_rows
    table = pa.table(
        {
            "user_id": best["user_id"],
            "item_id": best["item_id"],
            "rank": best["rank"],
            "score": best["score"],
            "model_name": pa.array(["recsys"] * n, pa.string()),
            "model_version": pa.array(["test"] * n, pa.string()),
            "run_id": pa.array([f"manual__{day}"] * n, pa.string()),
            "generated_at": pa.array([dt.datetime(2026, 4, 1, tzinfo=dt.UTC)] * n, TS),
            "source": pa.array(["model"] * n, pa.string()),
        }
    )
    wh.replace_partition("recommendations", "prediction_date", day, table, sql_source="test lists")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> DuckDBWarehouse:
    """The demo world with features for DAYS and lists scored from them (candidate rank plus noise)."""
    wh = DuckDBWarehouse(tmp_path_factory.mktemp("analytics") / "w.duckdb")
    demo = generate(DemoConfig(users=400, items=90, days=45))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(demo, name))
    build_features(wh, SPEC, SQL_DIR, DAYS)
    ensure_tables(wh, "recommendations", "recommendations_latest", "recommendation_runs")
    rng = np.random.default_rng(7)
    for day in DAYS:
        rows = wh.query(
            "SELECT user_id, item_id, candidate_rank FROM features WHERE as_of_date = @d", {"d": day}
        ).to_pydict()
        scores = -np.asarray(rows["candidate_rank"], dtype=np.float64) + rng.normal(0, 4, len(rows["user_id"]))
        write_lists(wh, day, rows["user_id"], rows["item_id"], scores)
    return wh


def lists_by_day(wh: DuckDBWarehouse) -> dict[dt.date, dict[str, set[str]]]:
    rows = wh.query("SELECT prediction_date, user_id, item_id FROM recommendations").to_pylist()
    out: dict[dt.date, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        out[r["prediction_date"]][r["user_id"]].add(r["item_id"])
    return out


# --- every file ---------------------------------------------------------------------------


def test_every_starter_query_is_here():
    assert {p.stem for p in ANALYTICS_FILES} >= EXPECTED


@pytest.mark.parametrize("path", ANALYTICS_FILES, ids=lambda p: p.stem)
def test_query_is_documented_googlesql_and_runs(path, world):
    sql = read_sql_file(path)
    assert sql.startswith("-- "), f"{path.name} must open with a header comment saying what it answers"
    parse(sql, str(path))
    # The pipeline's parameters may come along (test_sql_files.py passes them): unused ones are ignored.
    rows = world.query(sql, {**SPEC.query_params(DAYS[-1]), **PARAMS}, source=str(path)).to_pylist()
    assert {r["prediction_date"] for r in rows} == set(DAYS)


# --- the realistic world: ranges and cross-checks ----------------------------------------------


def test_daily_coverage_is_within_bounds(world):
    rows = run(world, "daily_coverage")
    assert [r["prediction_date"] for r in rows] == DAYS
    for r in rows:
        assert 0 < r["users_with_lists"] <= r["active_users"]
        assert 0 < r["user_coverage"] <= 1
        assert 0 < r["catalog_coverage"] <= 1
        assert r["items_recommended"] <= r["catalog_items"] <= 90
        assert 1 <= r["avg_list_length"] <= K


def test_daily_coverage_shows_missing_days(world):
    rows = run(world, "daily_coverage", {**PARAMS, "end_date": DAYS[-1] + dt.timedelta(days=2)})
    gap = rows[-1]
    assert gap["prediction_date"] == DAYS[-1] + dt.timedelta(days=2)
    assert gap["users_with_lists"] == 0
    assert gap["user_coverage"] == 0
    assert gap["avg_list_length"] is None


def test_popularity_concentration_matches_python(world):
    rows = run(world, "popularity_concentration")
    lists = lists_by_day(world)
    launches = world.query("SELECT item_id, launch_date FROM items").to_pylist()
    for r in rows:
        assert 0 < r["top_1pct_share"] <= r["top_10pct_share"] <= 1
        assert 0 <= r["gini_exposure"] < 1
        catalog = [i["item_id"] for i in launches if i["launch_date"] <= r["prediction_date"]]
        counts = Counter(item for items in lists[r["prediction_date"]].values() for item in items)
        x = np.sort(np.array([counts.get(i, 0) for i in catalog], dtype=np.float64))
        n = len(x)
        gini = 2 * np.sum(np.arange(1, n + 1) * x) / (n * x.sum()) - (n + 1) / n
        assert r["catalog_items"] == n
        assert r["slots"] == int(x.sum())
        assert r["gini_exposure"] == pytest.approx(gini)
        top10 = int(np.ceil(0.10 * n))
        assert r["top_10pct_share"] == pytest.approx(x[::-1][:top10].sum() / x.sum())


def test_diversity_shares_sum_to_one(world):
    rows = run(world, "diversity_by_category")
    for day in DAYS:
        part = [r for r in rows if r["prediction_date"] == day]
        assert sum(r["rec_share"] for r in part) == pytest.approx(1)
        assert sum(r["event_share"] for r in part) == pytest.approx(1)
        assert len({r["avg_categories_per_list"] for r in part}) == 1
        assert 1 <= part[0]["avg_categories_per_list"] <= K
        assert all(r["rec_to_event_ratio"] is None or r["rec_to_event_ratio"] >= 0 for r in part)


def test_day_over_day_overlap_matches_python(world):
    rows = {r["prediction_date"]: r for r in run(world, "day_over_day_overlap")}
    lists = lists_by_day(world)
    assert rows[DAYS[0]]["users_compared"] == 0  # no partition the day before the range
    assert rows[DAYS[0]]["avg_jaccard"] is None
    for prev, day in itertools.pairwise(DAYS):
        both = set(lists[day]) & set(lists[prev])
        expected = np.mean([len(lists[day][u] & lists[prev][u]) / len(lists[day][u] | lists[prev][u]) for u in both])
        r = rows[day]
        assert r["users_compared"] == len(both) > 0
        assert r["new_users"] == len(lists[day]) - len(both)
        assert 0 <= r["avg_jaccard"] <= 1
        assert r["avg_jaccard"] == pytest.approx(expected)
        for key in ("share_unchanged", "share_all_new", "share_same_top1"):
            assert 0 <= r[key] <= 1


def test_hit_rates_are_rates(world):
    rows = run(world, "hit_rate")
    assert {r["rank"] for r in rows} == set(range(1, K + 1))
    for r in rows:
        assert r["horizon_complete"] is True  # the demo's events run to 2026-03-31
        assert 0 <= r["purchase_rate"] <= r["interaction_rate"] <= 1
        assert 0 <= r["user_purchase_hit_rate"] <= r["user_interaction_hit_rate"] <= 1
    assert max(r["user_interaction_hit_rate"] for r in rows) > 0
    shorter = run(world, "hit_rate", {**PARAMS, "horizon_days": 1})
    for long, short in zip(rows, shorter, strict=True):
        assert short["interaction_rate"] <= long["interaction_rate"]  # a longer horizon only adds hits


# --- the tiny world: known values -----------------------------------------------------------
#
# Items i1, i2 (books), i3, i4 (music) launched long ago; i5 (music) launches 2026-03-10.
# D1 = 2026-03-01 lists: u1 [i1, i2], u2 [i1, i3].
# D2 = 2026-03-02 lists: u1 [i1, i3], u2 [i1, i3], u3 [i2, i4].
# Events:
#   2026-01-01 u4 views i2        (outside every 28-day window: u4 is not active)
#   2026-02-27 u1 views i1; 2026-02-28 u2 views i3, u3 views i4; 2026-03-01 u2 views i3
#   2026-03-02 u1 views i2, u2 buys i1, u1 buys i4
#   2026-03-03 u3 buys i4

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
TINY = {"start_date": D1, "end_date": D2, "horizon_days": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path_factory.mktemp("tiny") / "w.duckdb")
    old = dt.date(2020, 1, 1)
    wh.replace_table(
        "items",
        pa.table(
            {
                "item_id": ["i1", "i2", "i3", "i4", "i5"],
                "category": ["books", "books", "music", "music", "music"],
                "price": [10.0, 12.0, 8.0, 9.0, 20.0],
                "launch_date": pa.array([old, old, old, old, dt.date(2026, 3, 10)], pa.date32()),
            }
        ),
    )
    events = [
        ("2026-01-01T10:00", "u4", "i2", "view"),
        ("2026-02-27T10:00", "u1", "i1", "view"),
        ("2026-02-28T10:00", "u2", "i3", "view"),
        ("2026-02-28T11:00", "u3", "i4", "view"),
        ("2026-03-01T23:00", "u2", "i3", "view"),
        ("2026-03-02T09:00", "u1", "i2", "view"),
        ("2026-03-02T10:00", "u2", "i1", "purchase"),
        ("2026-03-02T11:00", "u1", "i4", "purchase"),
        ("2026-03-03T00:30", "u3", "i4", "purchase"),
    ]
    wh.replace_table(
        "events",
        pa.table(
            {
                "event_ts": pa.array([dt.datetime.fromisoformat(e[0]).replace(tzinfo=dt.UTC) for e in events], TS),
                "user_id": [e[1] for e in events],
                "item_id": [e[2] for e in events],
                "event_type": [e[3] for e in events],
            }
        ),
    )
    ensure_tables(wh, "recommendations")
    lists = {
        D1: {"u1": ["i1", "i2"], "u2": ["i1", "i3"]},
        D2: {"u1": ["i1", "i3"], "u2": ["i1", "i3"], "u3": ["i2", "i4"]},
    }
    for day, per_user in lists.items():
        users = [u for u, items in per_user.items() for _ in items]
        items = [i for its in per_user.values() for i in its]
        scores = np.array([2.0 - j for its in per_user.values() for j in range(len(its))])  # list order = rank
        write_lists(wh, day, users, items, scores)
    return wh


def test_tiny_daily_coverage(tiny):
    rows = run(tiny, "daily_coverage", TINY)
    # D1: u1, u2 of the active u1, u2, u3; items i1, i2, i3 of the 4 launched (i5 is not yet).
    # D2: all three users; all four items.
    got = [
        (r["users_with_lists"], r["active_users"], r["user_coverage"], r["items_recommended"], r["catalog_items"])
        for r in rows
    ]
    assert got == [(2, 3, pytest.approx(2 / 3), 3, 4), (3, 3, 1.0, 4, 4)]
    assert [r["catalog_coverage"] for r in rows] == [0.75, 1.0]
    assert [r["avg_list_length"] for r in rows] == [2.0, 2.0]


def test_tiny_popularity_concentration(tiny):
    d1, d2 = run(tiny, "popularity_concentration", TINY)
    # D1 exposure over the catalog: i1 2, i2 1, i3 1, i4 0 of 4 slots. Top 1% and top 10% of
    # 4 items round up to one item: i1, 2 of 4 slots. Gini of [0, 1, 1, 2]: 0.375.
    assert (d1["slots"], d1["catalog_items"], d1["items_recommended"]) == (4, 4, 3)
    assert (d1["top_1pct_share"], d1["top_10pct_share"]) == (0.5, 0.5)
    assert d1["gini_exposure"] == pytest.approx(0.375)
    # D2: i1 2, i3 2, i2 1, i4 1 of 6 slots; top item 2 of 6; Gini of [1, 1, 2, 2]: 1/6.
    assert d2["top_1pct_share"] == pytest.approx(1 / 3)
    assert d2["gini_exposure"] == pytest.approx(1 / 6)


def test_tiny_diversity_by_category(tiny):
    rows = {(r["prediction_date"], r["category"]): r for r in run(tiny, "diversity_by_category", TINY)}
    # D1: u1's list is all books (1 category), u2's spans 2: 1.5. Slots: 3 books, 1 music.
    # Events in the 28 days to D1: books 1 (u1 i1), music 3 (u2 i3 twice, u3 i4).
    books, music = rows[(D1, "books")], rows[(D1, "music")]
    assert books["avg_categories_per_list"] == 1.5
    assert (books["rec_share"], music["rec_share"]) == (0.75, 0.25)
    assert (books["event_share"], music["event_share"]) == (0.25, 0.75)
    assert books["rec_to_event_ratio"] == 3.0
    # D2: every list spans both categories; slots 3 and 3; events add u1 i2, u2 i1 (books), u1 i4 (music).
    assert rows[(D2, "books")]["avg_categories_per_list"] == 2.0
    assert rows[(D2, "books")]["rec_share"] == 0.5
    assert rows[(D2, "books")]["event_share"] == pytest.approx(3 / 7)


def test_tiny_day_over_day_overlap(tiny):
    d1, d2 = run(tiny, "day_over_day_overlap", TINY)
    assert (d1["users_with_lists"], d1["users_compared"], d1["avg_jaccard"]) == (2, 0, None)
    # D2: u1 {i1, i3} vs {i1, i2}: 1/3; u2 unchanged: 1; u3 had no list on D1.
    assert (d2["users_with_lists"], d2["users_compared"], d2["new_users"]) == (3, 2, 1)
    assert d2["avg_jaccard"] == pytest.approx(2 / 3)
    assert (d2["share_unchanged"], d2["share_all_new"], d2["share_same_top1"]) == (0.5, 0.0, 1.0)


def test_tiny_hit_rate(tiny):
    rows = {(r["prediction_date"], r["rank"]): r for r in run(tiny, "hit_rate", TINY)}
    # D1, horizon 2026-03-02: u1 viewed i2 (rank 2), u2 bought i1 (rank 1). u2's view of i3 on
    # D1 itself is not a hit. Users: both interacted, one bought.
    r1, r2 = rows[(D1, 1)], rows[(D1, 2)]
    assert (r1["users_with_lists"], r1["user_interaction_hit_rate"], r1["user_purchase_hit_rate"]) == (2, 1.0, 0.5)
    assert (r1["slots"], r1["interaction_rate"], r1["purchase_rate"]) == (2, 0.5, 0.5)
    assert (r2["slots"], r2["interaction_rate"], r2["purchase_rate"]) == (2, 0.5, 0.0)
    # D2, horizon 2026-03-03: only u3 bought i4 (rank 2). u1's purchase of i4 on D2 is not later.
    r1, r2 = rows[(D2, 1)], rows[(D2, 2)]
    assert r1["user_interaction_hit_rate"] == pytest.approx(1 / 3)
    assert r1["user_purchase_hit_rate"] == pytest.approx(1 / 3)
    assert (r1["interaction_rate"], r2["interaction_rate"], r2["purchase_rate"]) == (
        0.0,
        pytest.approx(1 / 3),
        pytest.approx(1 / 3),
    )
    assert all(r["horizon_complete"] for r in rows.values())
    # With a 2-day horizon D2's window ends after the newest event: still open.
    wider = run(tiny, "hit_rate", {**TINY, "horizon_days": 2})
    assert [r["horizon_complete"] for r in wider if r["prediction_date"] == D2] == [False, False]
