"""A deterministic synthetic e-commerce world for the demo and the tests.

Users have category preferences (Dirichlet) and a small wishlist they keep coming back
to; item popularity is long-tailed (Zipf within a category); weekends are busier; new
items launch during the window. From ``drift_from`` on, tastes shift towards one
category and activity rises, so drift checks have something to find.
The same arguments always give the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from airflow_ml_provider.core.warehouse.interface import Warehouse

log = logging.getLogger(__name__)

#: The demo's source tables, in the order they are loaded.
SOURCE_TABLES = ("users", "items", "events")

CATEGORIES = (
    "books",
    "electronics",
    "fashion",
    "garden",
    "grocery",
    "health",
    "home",
    "kids",
    "music",
    "outdoor",
    "pets",
    "sports",
)
# Relative traffic by weekday, Monday first: weekends are busier.
WEEKLY = np.array([0.9, 0.85, 0.9, 0.95, 1.05, 1.2, 1.15])
# Share of events by hour of day (UTC): quiet nights, evening peak.
HOURLY = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 4, 4, 4.5, 5, 6, 7, 7, 6, 4, 2])
HOURLY = HOURLY / HOURLY.sum()


@dataclass(frozen=True)
class DemoConfig:
    """Size and shape of the synthetic world."""

    users: int = 3000
    items: int = 600
    days: int = 60
    end_date: dt.date = dt.date(2026, 3, 31)
    events_per_user_day: float = 0.35
    seed: int = 7
    drift_from: dt.date | None = None
    drift_category: str = "electronics"
    wishlist_size: int = 6

    def __post_init__(self) -> None:
        if self.users < 1 or self.items < len(CATEGORIES) or self.days < 1:
            raise ValueError(
                f"demo size too small: need users >= 1, items >= {len(CATEGORIES)}, days >= 1 "
                f"(got users={self.users}, items={self.items}, days={self.days})."
            )
        if self.drift_category not in CATEGORIES:
            raise ValueError(f"drift_category {self.drift_category!r} is not one of {', '.join(CATEGORIES)}.")

    @property
    def start_date(self) -> dt.date:
        """First day with events."""
        return self.end_date - dt.timedelta(days=self.days - 1)


@dataclass(frozen=True)
class DemoWorld:
    """The generated tables, as Arrow."""

    users: pa.Table
    items: pa.Table
    events: pa.Table


def refuse_existing_sources(warehouse: Warehouse, where: str) -> None:
    """Raise when ``warehouse`` already holds any of the demo's source tables (seeding would replace them).

    A seeded warehouse's events may be real history by now (or a user's own data under the same
    names); ``--force`` is the one way to replace them. The error names each table and its rows.
    """
    from airflow_ml_provider.exceptions import WarehouseError

    present = [t for t in SOURCE_TABLES if t in set(warehouse.list_tables())]
    if not present:
        return
    counts = {
        t: int(warehouse.query(f"SELECT COUNT(*) AS n FROM {t}", source=f"{t} rows").column("n")[0].as_py())
        for t in present
    }
    tables = ", ".join(f"{t} ({n:,} rows)" for t, n in counts.items())
    raise WarehouseError(
        f"{where} already has source tables: {tables}. Seeding would replace them with synthetic data. "
        "Pass --force to replace them, or choose another --warehouse for the demo."
    )


def generate(cfg: DemoConfig, progress: Callable[[int, int, int], None] | None = None) -> DemoWorld:
    """Generate users, items and events; ``progress(day, days, events)`` is called as days finish."""
    rng = np.random.default_rng(cfg.seed)
    n_cat = len(CATEGORIES)

    # Items: a category each, a long-tailed popularity within it, a price and a launch date.
    item_cat = rng.integers(0, n_cat, cfg.items)
    item_pop = 1.0 / (1 + rng.permutation(cfg.items)) ** 1.1
    price_base = np.exp(rng.normal(3.0, 0.3, n_cat))
    item_price = np.round(price_base[item_cat] * np.exp(rng.normal(0, 0.5, cfg.items)), 2)
    # 85% of items exist before the window; the rest launch during it.
    launch_offset = np.where(
        rng.random(cfg.items) < 0.85,
        -rng.integers(1, 720, cfg.items),
        rng.integers(0, cfg.days, cfg.items),
    )
    item_launch = np.array([cfg.start_date + dt.timedelta(days=int(o)) for o in launch_offset])

    # Users: category tastes, activity level, a wishlist of items they return to.
    prefs = rng.dirichlet(np.full(n_cat, 0.3), cfg.users)
    activity = rng.lognormal(0.0, 0.8, cfg.users)
    activity /= activity.mean()
    wishlist = _wishlists(rng, prefs, item_cat, item_pop, cfg.wishlist_size)
    signup = np.array([cfg.start_date - dt.timedelta(days=int(d)) for d in rng.integers(0, 1000, cfg.users)])
    country = rng.choice(["DE", "FR", "GB", "JP", "US"], cfg.users, p=[0.15, 0.1, 0.15, 0.2, 0.4])
    drift_cat = CATEGORIES.index(cfg.drift_category)

    chunks: list[dict[str, np.ndarray]] = []
    total = 0
    for day_idx in range(cfg.days):
        day = cfg.start_date + dt.timedelta(days=day_idx)
        drifted = cfg.drift_from is not None and day >= cfg.drift_from
        chunk = _day_events(
            rng, cfg, day, drifted, drift_cat, prefs, activity, wishlist, item_cat, item_pop, item_launch
        )
        chunks.append(chunk)
        total += len(chunk["user"])
        if progress and ((day_idx + 1) % 10 == 0 or day_idx + 1 == cfg.days):
            progress(day_idx + 1, cfg.days, total)

    ev = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    order = np.lexsort((ev["user"], ev["ts"]))
    user_ids = np.array([f"u{i:06d}" for i in range(cfg.users)], dtype=object)
    item_ids = np.array([f"i{i:05d}" for i in range(cfg.items)], dtype=object)
    events = pa.table(
        {
            "event_ts": pa.array(ev["ts"][order], type=pa.timestamp("us", tz="UTC")),
            "user_id": pa.array(user_ids[ev["user"][order]], type=pa.string()),
            "item_id": pa.array(item_ids[ev["item"][order]], type=pa.string()),
            "event_type": pa.array(np.array(["view", "add_to_cart", "purchase"], dtype=object)[ev["type"][order]]),
        }
    )
    users = pa.table(
        {
            "user_id": pa.array(user_ids, type=pa.string()),
            "signup_date": pa.array(signup, type=pa.date32()),
            "country": pa.array(country),
        }
    )
    items = pa.table(
        {
            "item_id": pa.array(item_ids, type=pa.string()),
            "category": pa.array(np.array(CATEGORIES, dtype=object)[item_cat], type=pa.string()),
            "price": pa.array(item_price, type=pa.float64()),
            "launch_date": pa.array(item_launch, type=pa.date32()),
        }
    )
    return DemoWorld(users=users, items=items, events=events)


def _wishlists(
    rng: np.random.Generator, prefs: np.ndarray, item_cat: np.ndarray, item_pop: np.ndarray, k: int
) -> np.ndarray:
    """Per user, ``k`` items drawn from their preferred categories, popularity-weighted."""
    n_users = prefs.shape[0]
    cats = _sample_rows(rng, prefs, k)  # users x k categories
    out = np.empty((n_users, k), dtype=np.int64)
    for c in range(prefs.shape[1]):
        mask = cats == c
        if mask.any():
            members = _members(item_cat == c)
            w = item_pop[members] / item_pop[members].sum()
            out[mask] = rng.choice(members, mask.sum(), p=w)
    return out


def _members(in_category: np.ndarray, live: np.ndarray | None = None) -> np.ndarray:
    """Indices of the (live) items of a category; all (live) items when it has none."""
    eligible = in_category & live if live is not None else in_category
    if not eligible.any():
        eligible = live if live is not None else np.ones_like(in_category)
    return np.flatnonzero(eligible)


def _sample_rows(rng: np.random.Generator, probs: np.ndarray, k: int) -> np.ndarray:
    """For each row of a probability matrix draw ``k`` column indices."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], k)) * cdf[:, -1:]
    return (u[:, :, None] > cdf[:, None, :]).sum(axis=2)


def _day_events(
    rng: np.random.Generator,
    cfg: DemoConfig,
    day: dt.date,
    drifted: bool,
    drift_cat: int,
    prefs: np.ndarray,
    activity: np.ndarray,
    wishlist: np.ndarray,
    item_cat: np.ndarray,
    item_pop: np.ndarray,
    item_launch: np.ndarray,
) -> dict[str, np.ndarray]:
    """One day of views, carts and purchases as index arrays plus timestamps."""
    rate = cfg.events_per_user_day * WEEKLY[day.weekday()] * (1.5 if drifted else 1.0)
    n = int(rng.poisson(rate * cfg.users))
    users = rng.choice(cfg.users, n, p=activity / activity.sum())
    user_prefs = prefs[users]
    if drifted:
        shift = np.zeros(prefs.shape[1])
        shift[drift_cat] = 1.0
        user_prefs = 0.4 * user_prefs + 0.6 * shift
    cats = _sample_rows(rng, user_prefs, 1)[:, 0]

    live = np.array([launch <= day for launch in item_launch])
    # New items get a launch boost for their first two weeks: a trend to learn.
    age = np.array([(day - launch).days for launch in item_launch])
    boost = np.where((age >= 0) & (age < 14), 4.0, 1.0)
    items = np.empty(n, dtype=np.int64)
    for c in np.unique(cats):
        members = _members(item_cat == c, live)
        mask = cats == c
        w = item_pop[members] * boost[members]
        items[mask] = rng.choice(members, mask.sum(), p=w / w.sum())
    # A third of the traffic returns to a wishlist item (once it has launched).
    picks = wishlist[users, rng.integers(0, wishlist.shape[1], n)]
    back = (rng.random(n) < 0.33) & live[picks]
    items[back] = picks[back]

    base = np.datetime64(day.isoformat(), "us")
    seconds = rng.choice(24, n, p=HOURLY) * 3600 + rng.integers(0, 3600, n)
    ts = base + seconds.astype("timedelta64[s]")

    # Funnel: a view may lead to a cart add, which may lead to a purchase minutes later.
    on_wishlist = back.astype(float)
    cart = rng.random(n) < 0.08 + 0.17 * on_wishlist
    buy = cart & (rng.random(n) < 0.45)
    end_of_day = base + np.timedelta64(86_399_999_999, "us")
    cart_delay = rng.integers(30, 900, n).astype("timedelta64[s]")
    buy_delay = cart_delay + rng.integers(60, 1800, n).astype("timedelta64[s]")
    return {
        "user": np.concatenate([users, users[cart], users[buy]]),
        "item": np.concatenate([items, items[cart], items[buy]]),
        "type": np.concatenate([np.zeros(n, np.int8), np.ones(cart.sum(), np.int8), np.full(buy.sum(), 2, np.int8)]),
        # A late evening's purchase stays on its day: days are the unit of every window.
        "ts": np.minimum(np.concatenate([ts, ts[cart] + cart_delay[cart], ts[buy] + buy_delay[buy]]), end_of_day),
    }
