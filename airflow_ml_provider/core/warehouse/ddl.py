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


#: Columns added to a table after its first release (table -> column -> GoogleSQL type), in DDL order.
#: ``ensure_tables`` adds the ones a table created earlier lacks, so an existing warehouse keeps working.
ADDED_COLUMNS: dict[str, dict[str, str]] = {"recommendations": {"source": "STRING"}}


def ensure_tables(warehouse: Warehouse, *names: str) -> None:
    """Create the named tables and views unless they exist; add the columns a table created earlier lacks."""
    for name in names:
        warehouse.ensure_table(render_ddl(name, warehouse), source=str(DDL_DIR / f"{name}.sql"))
        added = ADDED_COLUMNS.get(name)
        if added:
            have = set(warehouse.table_columns(name))
            for column, sql_type in added.items():
                if column not in have:
                    # ADD COLUMN appends at the end, where the DDL declares it: old and new tables match.
                    warehouse.execute(f"ALTER TABLE {name} ADD COLUMN {column} {sql_type}", source=f"{name} upgrade")
