"""The recsys template's SQL is the reference SQL with name-prefixed tables.

``airflow-ml init NAME --pattern recsys`` ships a copy of ``sql/recsys/`` inside the package
(the reference SQL is not in the wheel). This keeps the two from drifting apart: a fix to
the reference SQL fails here until the template gets it too.
"""

from __future__ import annotations

import pytest

from airflow_ml_provider.core.scaffold import PLACEHOLDER, TEMPLATES
from tests.paths import SQL_DIR

TEMPLATE_SQL = TEMPLATES / "recsys" / "sql" / PLACEHOLDER
REFERENCE_SQL = SQL_DIR / "recsys"


def test_the_template_ships_every_reference_sql_file():
    assert sorted(p.name for p in TEMPLATE_SQL.glob("*.sql")) == sorted(p.name for p in REFERENCE_SQL.glob("*.sql"))


@pytest.mark.parametrize("name", sorted(p.name for p in REFERENCE_SQL.glob("*.sql")))
def test_template_sql_is_the_reference_sql_with_prefixed_tables(name):
    template = (TEMPLATE_SQL / name).read_text()
    # The template names its own tables `<name>_<table>`; unprefixed it must be the reference.
    as_reference = template.replace(f"{PLACEHOLDER}_", "").replace(PLACEHOLDER, "recsys")
    assert as_reference == (REFERENCE_SQL / name).read_text(), (
        f"{TEMPLATE_SQL / name} differs from {REFERENCE_SQL / name}: apply the same change to both "
        "(the template is the reference with `__NAME___` before each table name)."
    )
