"""The pipeline's dates: its start date (the first logical date its DAGs run for) and date ranges.

A contract's ``start_date`` may be any date a user's history starts on (none: every date is
valid). The reference DAGs therefore set no Airflow ``start_date`` of their own (Airflow 3
allows that; with ``catchup=False`` the scheduler only runs the newest interval), so Airflow
creates their tasks for any logical date, and each task refuses a date before the contract's
``start_date``. Were the DAG's own ``start_date`` later than a date, ``airflow dags test`` of
that date would create no task and report success with nothing run. ``airflow-ml`` commands
refuse such a ``--date`` the same way.
"""

from __future__ import annotations

import datetime as dt

from airflow_ml_provider.exceptions import ContractError


def check_run_date(
    run_date: dt.date | None, start_date: dt.date | None, contract: str, what: str = "logical date"
) -> None:
    """Refuse a run whose date is before the contract's ``start_date`` (no date or no start_date: allowed).

    ``what`` names the date in the message: ``logical date`` for a task, ``--date`` for a command.
    """
    if run_date is not None and start_date is not None and run_date < start_date:
        raise ContractError(
            f"{what} {run_date} is before the pipeline's start_date {start_date} ({contract}: start_date). "
            f"Run a date on or after {start_date}, or set start_date earlier in the contract "
            "(any date your data begins on) if your data begins before it."
        )


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
