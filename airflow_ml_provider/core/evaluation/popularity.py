"""The one global popularity list, and who is served: defined here once, for every reader.

**Global popularity as of a date D**: the catalogue's items ranked by how many distinct users
viewed, carted or bought them in the feature lookback ending on D,
(D - ``windows.feature_lookback_days``, D], ties by item id ascending. Per user, the items
``inference.exclude_seen`` excludes for that user (bought, or any event, on or before D) are
skipped and the list is topped up from further down. Nothing after D is read, so it is the
list anyone could have served that day. The gate and the envelope (the ``global_popularity``
baseline of offline evaluation, per test date), the outcomes table (the list judged beside the
served one) and batch inference (the fallback that fills short lists) all use these queries.

**Served users on D** (``inference.serve``): ``active``, every user with an event of a known
type in the same lookback (the default: the users the features describe); or ``all_users``,
every row of the ``users`` source. Each gets ``inference.top_k`` items: the model's ranking of
their candidates first, then the popularity list (``source = 'global_popularity'`` in
``recommendations``) for a user with fewer candidates than k, or none.

The queries are GoogleSQL built from the validated contract (identifiers only) with values as
query parameters (``@lookback_days``, ``@top_k``). They work on a set of dates at once: a
``dates`` query (one ``as_of_date`` column) or a ``users`` query (``as_of_date`` and the user
column), so a training export covers its whole test window in one job.
"""

from __future__ import annotations

from airflow_ml_provider.core.contract.references import render_source
from airflow_ml_provider.core.contract.spec import PipelineSpec

#: The event types that make an item popular and a user active (the reference SQL's known types).
KNOWN_EVENT_TYPES = ("view", "add_to_cart", "purchase")
#: How far past top_k a user's list may reach down the ranking after skipping their seen items.
EXTRA_DEPTH = 200
#: ``recommendations.source`` of the rows the model ranked, and of the rows filled from popularity.
MODEL_SOURCE = "model"
POPULARITY_SOURCE = "global_popularity"

#: The one date of a single-date query (batch inference, outcomes): @as_of.
ONE_DATE = "SELECT CAST(@as_of AS DATE) AS as_of_date"


def _in_lookback(events: str, dates: str) -> str:
    """Events of a known type in the lookback ending on ``dates``.as_of_date."""
    return (
        f"DATE({events}.event_ts) <= {dates}.as_of_date"
        f" AND DATE({events}.event_ts) > DATE_SUB({dates}.as_of_date, INTERVAL @lookback_days DAY)"
        f" AND {events}.event_type IN ({', '.join(repr(t) for t in KNOWN_EVENT_TYPES)})"
    )


def popular_items_sql(spec: PipelineSpec, dates: str = ONE_DATE) -> str:
    """Per date of ``dates``: the top @top_k + EXTRA_DEPTH catalogue items, their users and ``popularity_rank``.

    With an ``items`` source only its items count (the catalogue); otherwise every item with events.
    Items without users in the window are not ranked.
    """
    user, item = spec.entities.user, spec.entities.item
    catalogue = ""
    if "items" in spec.sources:
        catalogue = f"\n  AND e.{item} IN (SELECT c.{item} FROM {render_source(spec, 'items')} AS c)"
    rank = f"ROW_NUMBER() OVER (PARTITION BY d.as_of_date ORDER BY COUNT(DISTINCT e.{user}) DESC, e.{item})"
    return (
        f"SELECT d.as_of_date, e.{item}, COUNT(DISTINCT e.{user}) AS users, {rank} AS popularity_rank\n"
        f"FROM ({dates}) AS d\nJOIN {render_source(spec, 'events')} AS e\n  ON {_in_lookback('e', 'd')}"
        f"{catalogue}\n"
        f"GROUP BY d.as_of_date, e.{item}\n"
        f"QUALIFY {rank} <= @top_k + {EXTRA_DEPTH}"
    )


def served_users_sql(spec: PipelineSpec, dates: str = ONE_DATE) -> str:
    """The users served on each date of ``dates`` (``inference.serve``): as_of_date and the user column."""
    user = spec.entities.user
    if spec.inference.serve == "all_users":
        return (
            f"SELECT DISTINCT d.as_of_date, u.{user}\nFROM ({dates}) AS d\n"
            f"CROSS JOIN {render_source(spec, 'users')} AS u\nWHERE u.{user} IS NOT NULL"
        )
    return (
        f"SELECT DISTINCT d.as_of_date, e.{user}\nFROM ({dates}) AS d\n"
        f"JOIN {render_source(spec, 'events')} AS e\n  ON {_in_lookback('e', 'd')}\nWHERE e.{user} IS NOT NULL"
    )


def popularity_lists_sql(spec: PipelineSpec, users: str) -> str:
    """The global popularity list of every (as_of_date, user) of ``users``: top @top_k, their seen items skipped.

    ``users``: a query with the columns ``as_of_date`` and the user entity, one row per list.
    Columns: as_of_date, user, item, ``popularity_rank`` (1..@top_k within the list).
    """
    user, item = spec.entities.user, spec.entities.item
    dates = "SELECT DISTINCT l.as_of_date FROM lists AS l"
    head = f"WITH lists AS (\n{users}\n),\npopular AS (\n{popular_items_sql(spec, dates)}\n)\n"
    joined = "FROM lists AS u\nJOIN popular AS p ON p.as_of_date = u.as_of_date"
    if spec.inference.exclude_seen == "none":
        # Nothing skipped: every list is the date's list itself (popularity_rank is 1, 2, ... per date), so
        # no per-user numbering (a window over users x items: about 0.1 s per 3,000 filled users on DuckDB).
        columns = f"u.as_of_date, u.{user}, p.{item}, p.popularity_rank"
        return f"{head}SELECT {columns}\n{joined}\nWHERE p.popularity_rank <= @top_k"
    purchased = " AND s.event_type = 'purchase'" if spec.inference.exclude_seen == "purchased" else ""
    unseen = (
        f"\nWHERE NOT EXISTS (\n  SELECT 1 FROM {render_source(spec, 'events')} AS s\n"
        f"  WHERE s.{user} = u.{user} AND s.{item} = p.{item} AND DATE(s.event_ts) <= u.as_of_date{purchased}\n)"
    )
    rank = f"ROW_NUMBER() OVER (PARTITION BY u.as_of_date, u.{user} ORDER BY p.popularity_rank)"
    columns = f"u.as_of_date, u.{user}, p.{item}, {rank} AS popularity_rank"
    return f"{head}SELECT {columns}\n{joined}{unseen}\nQUALIFY {rank} <= @top_k"


def short_users_sql(spec: PipelineSpec, candidate_rows: str) -> str:
    """Users served on @as_of with fewer than @top_k scoreable candidates (as_of_date, user).

    ``candidate_rows``: the day's scoreable candidate rows (at least the user column).
    """
    user = spec.entities.user
    return (
        f"SELECT s.as_of_date, s.{user}\nFROM ({served_users_sql(spec)}) AS s\n"
        f"LEFT JOIN (SELECT c.{user}, COUNT(*) AS n FROM ({candidate_rows}) AS c GROUP BY c.{user}) AS have\n"
        f"  ON have.{user} = s.{user}\n"
        f"WHERE IFNULL(have.n, 0) < @top_k"
    )
