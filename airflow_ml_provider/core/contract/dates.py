"""The pipeline's dates: its start date (the first logical date its DAGs run for) and date ranges.

The reference DAGs start on ``EARLIEST_START_DATE`` (with ``catchup=False`` the scheduler only
ever runs the newest interval), so Airflow creates their tasks for any later date, and each task
refuses a logical date before the contract's ``start_date``. Were the DAG's own ``start_date``
the contract's, ``airflow dags test`` of an earlier date would create no task and report
success with nothing run.
"""

from __future__ import annotations

import datetime as dt

from airflow_ml_provider.exceptions import ContractError

#: The reference DAGs' Airflow ``start_date``, and the contract's default ``start_date``.
EARLIEST_START_DATE = dt.date(2000, 1, 1)


def check_run_date(run_date: dt.date | None, start_date: dt.date, contract: str) -> None:
    """Refuse a run whose logical date is before the contract's ``start_date`` (no logical date: allowed)."""
    if run_date is not None and run_date < start_date:
        raise ContractError(
            f"logical date {run_date} is before the pipeline's start_date {start_date} ({contract}: start_date). "
            f"Run a date on or after {start_date}, or set start_date earlier in the contract "
            f"(no earlier than {EARLIEST_START_DATE}) if your data begins before it."
        )


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
