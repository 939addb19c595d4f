"""The preflight gate checks every feature step's would-be rows in one query (issue 26).

A step read by a later one (candidates, read by features) is one common table expression of
that query, which DuckDB computes once; the old form, a query per step with the steps it reads
inlined, computed it once for its own checks and again inside each reader. Both forms must give
the same verdicts, and an error must still name the step's SQL file.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import yaml

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from airflow_ml_provider.core.features.build import build_features
from airflow_ml_provider.core.features.preflight import _one_query, check_steps_before_publish, step_by_step
from airflow_ml_provider.exceptions import EmptyResultError, SQLTemplateError, WarehouseLockedError
from tests.paths import PIPELINE, SQL_DIR

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 3, 24)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("preflight") / "w.duckdb"
    wh = DuckDBWarehouse(path)
    world = generate(DemoConfig(users=150, items=60, days=40))
    for name in ("users", "items", "events"):
        wh.replace_table(name, getattr(world, name))
    build_features(wh, load_spec(PIPELINE), SQL_DIR, [DAY])  # published: what a selection reads
    return wh


def _contract(tmp_path, edit) -> object:
    raw = yaml.safe_load(PIPELINE.read_text())
    edit(raw)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copy(PIPELINE.parent / raw["model"]["hooks"], tmp_path / raw["model"]["hooks"])
    return load_spec(path)


def test_one_query_gives_the_verdicts_of_a_query_per_step(warehouse, tmp_path):
    def strict(raw):  # checks with parameters of the same names on two steps, one read by the other
        raw["checks"]["tables"]["features"] += [
            {"check": "range", "column": "candidate_rank", "max": 2, "severity": "warn"},
            {"check": "range", "column": "candidate_rank", "min": 0, "severity": "warn"},
        ]
        raw["checks"]["tables"]["candidates"] = [
            {"check": "range", "column": "candidate_rank", "min": 1, "max": 1000},
            {"check": "accepted_values", "column": "candidate_source", "values": ["repeat"], "severity": "warn"},
        ]

    spec = _contract(tmp_path, strict)
    one = check_steps_before_publish(warehouse, spec, [SQL_DIR], DAY)
    assert one == step_by_step(warehouse, spec, [SQL_DIR], DAY)
    assert [(r.table, r.status) for r in one if r.table == "candidates"] == [
        ("candidates", "pass"),
        ("candidates", "warn"),
    ]
    assert [r.status for r in one if r.table == "features"][-2:] == ["warn", "pass"]
    # A selection checks only the steps named, reading the others' published partitions.
    some = check_steps_before_publish(warehouse, spec, [SQL_DIR], DAY, steps={"features"})
    assert some == step_by_step(warehouse, spec, [SQL_DIR], DAY, steps={"features"})
    assert {r.table for r in some} == {"features"}


def test_a_step_read_by_a_later_one_is_computed_once(warehouse):
    """DuckDB materialises a common table expression read twice: the candidates are computed once.

    This is DuckDB's planner (2.0: a CTE referenced more than once is materialised), which the
    one query relies on for its speed; if a DuckDB upgrade inlines it again, the gate costs what
    it did before issue 26 and this fails.
    """
    spec = load_spec(PIPELINE)
    sql, params, queries = _one_query(spec, [SQL_DIR], DAY, None)
    assert list(queries) == ["user_features", "item_features", "candidates", "features"]
    assert sql.count("aml_preflight_candidates AS (") == 1
    text, bound = warehouse._compile(sql, params, "preflight plan")  # the DuckDB SQL the gate runs
    with warehouse.connect(read_only=True) as con:
        plan = "\n".join(str(v) for row in con.execute(f"EXPLAIN {text}", bound).fetchall() for v in row)
    assert "CTE Name: aml_preflight_candidates" in plan


def test_an_error_or_an_empty_step_names_the_step_file(warehouse, tmp_path):
    folder = tmp_path / "sql"
    shutil.copytree(SQL_DIR, folder)
    spec = load_spec(PIPELINE)
    (folder / "recsys" / "features.sql").write_text("SELECT user_id, no_such_column FROM {{ ref('candidates') }}\n")
    with pytest.raises(SQLTemplateError, match=r"features\.sql \(checked before publishing\): .*no_such_column"):
        check_steps_before_publish(warehouse, spec, [folder], DAY)
    shutil.copy(SQL_DIR / "recsys" / "features.sql", folder / "recsys" / "features.sql")
    text = (SQL_DIR / "recsys" / "candidates.sql").read_text()
    (folder / "recsys" / "candidates.sql").write_text(f"SELECT * FROM (\n{text}\n) AS c WHERE FALSE\n")
    with pytest.raises(EmptyResultError, match=r"candidates\.sql: produced no rows for candidates partition"):
        check_steps_before_publish(warehouse, spec, [folder], DAY)


def test_a_lock_is_raised_at_once_without_a_query_per_step(warehouse):
    """Only an error in the SQL sends the query per step (to name the step): a lock would meet it again."""

    class Locked(DuckDBWarehouse):  # a lock timeout on every query: a real one would need a second process
        sources: list[str] = []

        def query(self, sql, params=None, *, source="<sql>"):
            self.sources.append(source)
            raise WarehouseLockedError(f"{source}: the warehouse is locked by another writer")

    locked = Locked(warehouse.path)
    with pytest.raises(WarehouseLockedError, match="feature steps of 2026-03-24"):
        check_steps_before_publish(locked, load_spec(PIPELINE), [SQL_DIR], DAY)
    assert locked.sources == ["feature steps of 2026-03-24 (checked before publishing)"]
