"""Every ``airflow-ml`` command and ML page works on your own tables: other names, mapped columns and types.

The small demo world is loaded, then every source table, its columns and the event types are
renamed (``shop_events.customer_ref``, ``catalogue.dept``, ``buy``...), the step tables take a
``shop_`` prefix, and a contract maps them all (``sources:``, ``source_columns:``,
``event_types:``, ``feature_table:``). Nothing may read ``events``, ``items``, ``users`` or
``features`` by those names, nor suggest ``seed-demo``: the warehouse holds none of them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.core.contract.spec import load_spec
from airflow_ml_provider.core.demo import DemoConfig, generate
from tests.integration.byod_world import rename_sources, small_contract
from tests.paths import SQL_DIR

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 3, 24)  # the world ends on 2026-03-31: this day's label horizon has passed
STEPS = ("user_features", "item_features", "candidates", "features")


class World:
    def __init__(self, root: Path) -> None:
        self.warehouse = root / "warehouse.duckdb"
        self.artifacts = root / "artifacts"
        self.dags = root / "dags"
        wh = DuckDBWarehouse(self.warehouse)
        world = generate(DemoConfig(users=150, items=60, days=60))
        for name in ("users", "items", "events"):
            wh.replace_table(name, getattr(world, name))
        with wh.connect() as con:
            mapped = rename_sources(con)
        checks = {
            "events": {"source": "events", "timestamp_column": "happened_at"},
            "tables": {"shop_features": [{"check": "range", "column": "item_price", "min": 0}]},
        }
        self.pipeline = small_contract(
            self.dags / "shop",
            name="shop",
            steps=[
                {
                    "table": f"shop_{s}",
                    "sql": f"recsys/{s}.sql",
                    "cluster_by": ["item_id" if s == "item_features" else "user_id"],
                }
                for s in STEPS
            ],
            feature_table="shop_features",
            label={"step": {"table": "shop_labels", "sql": "recsys/labels.sql"}, "column": "relevance"},
            checks=checks,
            **mapped,
        )
        self.spec = load_spec(self.pipeline)

    def cli(self, *args: str) -> int:
        return main([*args, "--warehouse", str(self.warehouse), "--pipeline", str(self.pipeline)])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("own-tables"))


def test_the_warehouse_holds_none_of_the_demo_names(world: World):
    tables = set(DuckDBWarehouse(world.warehouse).list_tables())
    assert {"shop_events", "catalogue", "customers"} <= tables
    assert not tables & {"events", "items", "users", "features"}


def test_every_command_runs_on_the_renamed_tables(world: World, capsys):
    train, valid = world.spec.training_dates(DAY)
    first, last = min([*train, *valid]), max([*train, *valid])
    sql = ("--sql-dir", str(SQL_DIR))
    assert main(["validate", "--pipeline", str(world.pipeline), *sql]) == 0
    assert world.cli("features", "--date", str(first), "--to", str(last), "--labels", "--no-preflight", *sql) == 0
    assert world.cli("features", "--date", str(DAY), *sql) == 0
    assert world.cli("check", "--date", str(DAY), "--sql-dir", str(SQL_DIR), "--scope", "preflight") == 0
    assert world.cli("check", "--date", str(DAY), "--record") == 0
    assert main(["tables", "--warehouse", str(world.warehouse)]) == 0
    capsys.readouterr()
    assert world.cli("train", "--date", str(DAY), "--artifacts", str(world.artifacts), *sql) == 0
    capsys.readouterr()
    assert world.cli("models", "list", "--json") == 0
    (model,) = json.loads(capsys.readouterr().out)
    assert model["status"] == "champion", model
    assert world.cli("recommend", "--date", str(DAY)) == 0
    assert f"--pipeline {world.pipeline}" in capsys.readouterr().out  # the advice names the contract

    assert world.cli("recommendations", "--date", str(DAY), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["list"] and all(row["category"] and row["price"] is not None for row in shown["list"]), shown
    assert world.cli("recommendations", "--date", str(DAY)) == 0
    assert world.cli("drift", "--date", str(DAY), "--fail-on", "never") == 0
    capsys.readouterr()
    assert world.cli("outcomes", "--date", str(DAY), *sql, "--json") == 0
    judged = json.loads(capsys.readouterr().out)
    assert judged["rows"] and judged["summary"], judged
    assert world.cli("features", "--date", str(DAY), "--steps", "user_features", *sql) == 0
    err = capsys.readouterr().err
    assert "seed-demo" not in err


def test_every_page_reads_the_renamed_tables(world: World, airflow_db, monkeypatch):
    """The Recommendations page shows the items' attributes and a user's events through the contract."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from tests.unit.plugins.world import auth, make_client

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(world.dags))
    token = create_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer-user", role="viewer"))
    client = make_client(DuckDBWarehouse(world.warehouse, lock_timeout=10))
    headers = auth(token)
    recs = client.get("/ml/api/recommendations", params={"date": str(DAY)}, headers=headers)
    assert recs.status_code == 200, recs.text
    body = recs.json()
    assert body["top_items"]["attributes"] == ["category", "price"]
    assert all(item["category"] for item in body["top_items"]["items"])
    user = (
        DuckDBWarehouse(world.warehouse)
        .query("SELECT MIN(user_id) AS u FROM recommendations WHERE prediction_date = @d", {"d": DAY})
        .to_pylist()[0]["u"]
    )
    lookup = client.get("/ml/api/recommendations", params={"date": str(DAY), "user": user}, headers=headers).json()
    assert lookup["user"]["served"] and lookup["user"]["did"], lookup["user"]
    assert {e["event_type"] for e in lookup["user"]["did"]} <= {"view", "add_to_cart", "purchase"}
    (version,) = [m["version"] for m in client.get("/ml/api/models", headers=headers).json()["models"]]
    for path in (
        "/ml/models",
        f"/ml/models/shop/{version}",
        "/ml/drift",
        "/ml/recommendations",
        f"/ml/recommendations?user={user}",
        "/ml/data",
        "/ml/api/drift",
        "/ml/api/data",
        f"/ml/api/models/shop/{version}",
    ):
        page = client.get(path, headers=headers)
        assert page.status_code == 200, (path, page.text[-2000:])
        assert "seed-demo" not in page.text, path
