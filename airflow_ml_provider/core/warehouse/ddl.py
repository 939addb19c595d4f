"""The table DDL in ``sql/ddl/``: GoogleSQL, with ``{{ dataset }}`` for views that need qualified names."""

from __future__ import annotations

from pathlib import Path

import jinja2

from airflow_ml_provider.core.warehouse.interface import Warehouse
from airflow_ml_provider.core.warehouse.sql import read_sql_file

DDL_DIR = Path(__file__).resolve().parents[3] / "sql" / "ddl"


def render_ddl(name: str, warehouse: Warehouse) -> str:
    """The DDL of ``name`` (e.g. ``recommendations``) for this warehouse's dataset."""
    text = read_sql_file(DDL_DIR / f"{name}.sql")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(text).render(dataset=warehouse.dataset_ref)


def ensure_tables(warehouse: Warehouse, *names: str) -> None:
    """Create the named tables and views unless they exist."""
    for name in names:
        warehouse.ensure_table(render_ddl(name, warehouse), source=str(DDL_DIR / f"{name}.sql"))
