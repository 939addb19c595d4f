"""The horizon guard: labels and realized outcomes of a date exist only once its label horizon has passed.

A date D is judged on what users did in (D, D + horizon]. Before that day is over, and before
the events source holds events through it, the judgement would count missing events as
"nothing happened" (labels of all zeros, a hit rate that rises later). So both the label step
and the outcome evaluation refuse such a date, name the day it becomes ready, and write nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from airflow_ml_provider.exceptions import HorizonNotPassedError

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.warehouse.interface import Warehouse


def horizon_end(as_of: dt.date, horizon_days: int) -> dt.date:
    """The last day (inclusive) of the horizon that judges ``as_of``: ``as_of + horizon_days``."""
    return as_of + dt.timedelta(days=horizon_days)


def ready_on(as_of: dt.date, horizon_days: int) -> dt.date:
    """The first day ``as_of`` may be judged: the day after its horizon ends."""
    return horizon_end(as_of, horizon_days) + dt.timedelta(days=1)


def check_horizon_passed(
    what: str, as_of: dt.date, horizon_days: int, newest_event: dt.date | None, today: dt.date
) -> None:
    """Raise ``HorizonNotPassedError`` unless the horizon's last day is over (``today``) and events reach it."""
    end, ready = horizon_end(as_of, horizon_days), ready_on(as_of, horizon_days)
    window = f"its {horizon_days}-day horizon ({as_of}, {end}]"
    if today <= end:
        raise HorizonNotPassedError(
            f"{what} for {as_of}: {window} has not passed yet (today is {today}). It becomes ready on "
            f"{ready}; run it then. Nothing was written."
        )
    if newest_event is None or newest_event < end:
        reach = f"only to {newest_event}" if newest_event else f"to no day after {as_of}"
        raise HorizonNotPassedError(
            f"{what} for {as_of}: the events source reaches {reach}, before the end of {window}. It becomes "
            f"ready on {ready} once events through {end} are loaded; load them, then rerun. Nothing was written."
        )


def newest_event_after(warehouse: Warehouse, spec: PipelineSpec, as_of: dt.date) -> dt.date | None:
    """The newest event date after ``as_of`` in the contract's events source (None when there is none)."""
    from airflow_ml_provider.core.contract.references import render_source

    sql = f"SELECT MAX(DATE(event_ts)) AS newest FROM {render_source(spec, 'events')} WHERE DATE(event_ts) > @as_of"
    newest = warehouse.query(sql, {"as_of": as_of}, source="horizon guard").to_pylist()[0]["newest"]
    return newest if isinstance(newest, dt.date) or newest is None else dt.date.fromisoformat(str(newest)[:10])


def require_horizon_passed(
    warehouse: Warehouse, spec: PipelineSpec, as_of: dt.date, what: str, today: dt.date | None = None
) -> dt.date:
    """Refuse ``as_of`` (``HorizonNotPassedError``) before its label horizon has passed; return the horizon's end.

    ``today`` is the as-of clock (default: today in UTC).
    """
    horizon = spec.windows.label_horizon_days
    clock = today or dt.datetime.now(dt.UTC).date()
    check_horizon_passed(what, as_of, horizon, newest_event_after(warehouse, spec, as_of), clock)
    return horizon_end(as_of, horizon)


def newest_ready_date(today: dt.date, horizon_days: int) -> dt.date:
    """The newest date whose horizon has passed by ``today`` (the inverse of ``ready_on``)."""
    return today - dt.timedelta(days=horizon_days + 1)
