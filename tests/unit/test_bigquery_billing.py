"""The local BigQuery's billing model follows BigQuery's documented on-demand rules.

Each test encodes one rule of the pages cited in tests/fakes/bigquery_billing.py, so a change that
makes the model contradict the documentation fails here. The last tests run the real
``google-cloud-bigquery`` client's dry run against the endpoint with the model switched on.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from tests.fakes.bigquery_billing import (
    MB,
    PRICE_PER_TIB_USD,
    TableStats,
    bytes_billed,
    cost_usd,
    estimate,
    field_bytes,
    is_free,
    stats_from_rows,
    value_bytes,
)
from tests.fakes.bigquery_rules import Field, TableMeta
from tests.fakes.gcp import LocalGcp

P, D = "p", "d"
DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(31)]


def _events() -> TableMeta:
    meta = TableMeta(
        P,
        D,
        "events",
        [
            Field("event_ts", "TIMESTAMP"),
            Field("user_id", "STRING"),
            Field("item_id", "STRING"),
            Field("event_type", "STRING"),
            Field("qty", "INTEGER"),
        ],
    )
    meta.set_partitioning({"type": "DAY", "field": "event_ts"})
    return meta


def _items() -> TableMeta:
    return TableMeta(P, D, "items", [Field("item_id", "STRING"), Field("price", "FLOAT"), Field("flag", "BOOLEAN")])


TABLES = {(P, D, "events"): _events(), (P, D, "items"): _items()}
#: 1000 rows a day; bytes per row: ts 8, user 10, item 10, type 6, qty 8 (42 in all).
STATS = {
    "events": TableStats(
        {d: 1000 for d in DAYS}, {"event_ts": 8, "user_id": 10, "item_id": 10, "event_type": 6, "qty": 8}
    ),
    "items": TableStats({None: 100}, {"item_id": 10, "price": 8, "flag": 1}),
}


def _bytes(sql: str, **params: object) -> dict[str, int]:
    found = estimate(sql, params, TABLES, lambda m: STATS[m.table], project=P, dataset=D)
    return {key[2]: n for key, n in found.tables.items()}


# https://cloud.google.com/bigquery/pricing#data_size_calculation ("Data size calculation")
def test_type_sizes_are_the_documented_logical_bytes() -> None:
    for kind in ("INT64", "INTEGER", "FLOAT64", "FLOAT", "DATE", "DATETIME", "TIME", "TIMESTAMP"):
        assert value_bytes(kind, 1) == 8, kind
    assert value_bytes("NUMERIC", 1) == 16
    assert value_bytes("BIGNUMERIC", 1) == 32
    assert value_bytes("BOOL", True) == value_bytes("BOOLEAN", False) == 1
    assert value_bytes("STRING", "abc") == 2 + 3
    assert value_bytes("STRING", "é") == 2 + 2  # UTF-8 encoded size, not characters
    assert value_bytes("BYTES", b"\x00\x01") == 2 + 2
    assert value_bytes("STRING", None) == value_bytes("INT64", None) == 0  # NULL is 0 bytes
    repeated = Field("xs", "INTEGER", "REPEATED")
    assert field_bytes(repeated, [1, 2, 3]) == 24  # the sum of the elements
    record = Field("r", "RECORD", "NULLABLE", [Field("a", "INTEGER"), Field("b", "STRING")])
    assert field_bytes(record, {"a": 1, "b": "xy"}) == 8 + 4  # the sum of the fields


def test_stats_measured_from_rows_use_the_type_sizes() -> None:
    rows = [{"item_id": "i1", "price": 1.0, "flag": True}, {"item_id": "item2", "price": None, "flag": False}]
    stats = stats_from_rows(_items(), rows)
    assert stats.rows == {None: 2}
    assert stats.bytes_per_row == {"item_id": (4 + 7) / 2, "price": 8 / 2, "flag": 1.0}


# https://cloud.google.com/bigquery/pricing#on_demand_pricing: "charged according to the total data
# processed in the columns you select"
def test_only_the_referenced_columns_are_billed() -> None:
    assert _bytes("SELECT user_id FROM events") == {"events": 31 * 1000 * 10}
    assert _bytes("SELECT user_id, qty FROM events WHERE event_type = 'view'") == {"events": 31 * 1000 * (10 + 8 + 6)}
    assert _bytes("SELECT * FROM items") == {"items": 100 * 19}
    assert _bytes("SELECT COUNT(*) AS n FROM items") == {"items": 0}  # no column read
    joined = _bytes("SELECT e.user_id, i.price FROM events AS e JOIN items AS i ON i.item_id = e.item_id")
    assert joined == {"events": 31 * 1000 * 20, "items": 100 * 18}


def test_columns_are_traced_through_ctes_and_subqueries() -> None:
    sql = """
        WITH w AS (SELECT user_id, item_id FROM events)
        SELECT user_id FROM (SELECT * FROM w) AS s
    """
    assert _bytes(sql) == {"events": 31 * 1000 * 20}


# https://cloud.google.com/bigquery/docs/querying-partitioned-tables ("partition pruning")
def test_a_filter_on_the_partitioning_column_prunes_partitions() -> None:
    day = dt.date(2026, 3, 31)
    width = 10 + 8  # user_id and event_ts
    assert _bytes("SELECT user_id FROM events WHERE DATE(event_ts) = @d", d=day) == {"events": 1000 * width}
    assert _bytes("SELECT user_id FROM events WHERE CAST(event_ts AS DATE) = @d", d=day) == {"events": 1000 * width}
    assert _bytes("SELECT user_id FROM events WHERE DATE(event_ts) IN (@d, DATE '2026-03-01')", d=day) == {
        "events": 2 * 1000 * width
    }
    window = "SELECT user_id FROM events WHERE DATE(event_ts) <= @d AND DATE(event_ts) > DATE_SUB(@d, INTERVAL @n DAY)"
    assert _bytes(window, d=day, n=7) == {"events": 7 * 1000 * width}
    assert _bytes("SELECT user_id FROM events WHERE event_ts >= TIMESTAMP('2026-03-30')") == {
        "events": 2 * 1000 * width
    }
    assert _bytes("SELECT user_id FROM events WHERE event_ts < TIMESTAMP('2026-03-03')") == {"events": 2 * 1000 * width}
    between = "SELECT user_id FROM events WHERE DATE(event_ts) BETWEEN '2026-03-01' AND '2026-03-03'"
    assert _bytes(between) == {"events": 3 * 1000 * width}


def test_filters_that_cannot_prune_bill_every_partition() -> None:
    everything = 31 * 1000 * (10 + 8)
    assert _bytes("SELECT user_id FROM events WHERE DATE(event_ts) = @d OR qty > 1", d=DAYS[0]) == {
        "events": 31 * 1000 * (10 + 8 + 8)
    }
    assert _bytes("SELECT user_id FROM events WHERE DATE(event_ts) > DATE(user_id)") == {"events": everything}


# https://cloud.google.com/bigquery/pricing#on_demand_pricing: "a minimum 10 MB data processed per
# table referenced by the query, and with a minimum 10 MB data processed per query"
def test_at_least_10_mb_per_table_and_per_query_rounded_to_the_mb() -> None:
    assert bytes_billed(0, 0) == 10 * MB
    assert bytes_billed(1, 1) == 10 * MB
    assert bytes_billed(1, 3) == 30 * MB
    assert bytes_billed(25 * MB + 1, 2) == 26 * MB
    found = estimate("SELECT e.user_id, i.price FROM events e JOIN items i USING (item_id)", {}, TABLES,
                     lambda m: STATS[m.table], project=P, dataset=D)  # fmt: skip
    assert found.billed == 20 * MB


# https://cloud.google.com/bigquery/pricing#ddl_pricing and #dml_pricing
def test_ddl_without_a_query_is_free_and_insert_does_not_read_its_target() -> None:
    assert is_free("CREATE TABLE IF NOT EXISTS t (a INT64)") and is_free("CREATE OR REPLACE VIEW v AS SELECT 1 AS a")
    assert not is_free("CREATE OR REPLACE TABLE t AS SELECT user_id FROM events")
    assert estimate("CREATE OR REPLACE VIEW v AS SELECT * FROM events", {}, TABLES, lambda m: STATS[m.table],
                    project=P, dataset=D).billed == 0  # fmt: skip
    assert _bytes("INSERT INTO items (item_id) SELECT item_id FROM events WHERE DATE(event_ts) = @d", d=DAYS[0]) == {
        "events": 1000 * (10 + 8)
    }


def test_the_price_is_the_documented_on_demand_rate_per_tib() -> None:
    assert PRICE_PER_TIB_USD == 6.25  # US multi-region, https://cloud.google.com/bigquery/pricing#on_demand_pricing
    assert cost_usd(2**40) == pytest.approx(6.25)


def test_clustering_does_not_lower_a_dry_run_estimate() -> None:
    """https://cloud.google.com/bigquery/docs/clustered-tables: clustering prunes blocks only at run time."""
    clustered = _events()
    clustered.clustering = ["user_id"]
    tables = {**TABLES, (P, D, "events"): clustered}
    found = estimate("SELECT qty FROM events WHERE user_id = 'u1'", {}, tables, lambda m: STATS[m.table], project=P,
                     dataset=D)  # fmt: skip
    assert found.processed == 31 * 1000 * (8 + 10)


# --- the endpoint: the real client's dry run, billed by the model -------------------------


def test_the_product_dry_run_reports_the_documented_estimate(gcp: LocalGcp) -> None:
    """``BigQueryWarehouse.dry_run_bytes`` (the real client) gets the model's bytes from the endpoint."""
    from airflow_ml_provider.backends.bigquery import BigQueryWarehouse
    from airflow_ml_provider.core.contract.config import PlatformConfig

    fake = gcp.bigquery
    fake.documented_billing = True
    meta = TableMeta(
        gcp.project, gcp.dataset, "t", [Field("user_id", "STRING"), Field("score", "FLOAT"), Field("day", "DATE")]
    )
    meta.set_partitioning({"type": "DAY", "field": "day"})
    rows = pa.table(
        {"user_id": ["u1", "user22"], "score": [1.5, None], "day": [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]}
    )
    with fake.lock:
        fake._create(meta)
        fake._insert_rows(meta, rows)
    wh = BigQueryWarehouse(PlatformConfig(backend="gcp", project=gcp.project, dataset=gcp.dataset, location="US"))
    sql = "SELECT user_id, score FROM t WHERE day = @d"
    # One partition of one row, at the table's mean bytes per row (the model keeps one width per
    # column): user_id (4 + 8) / 2, score (8 + NULL 0) / 2, and day, read by the filter, 8.
    assert wh.dry_run_bytes(sql, {"d": dt.date(2026, 3, 2)}) == 6 + 4 + 8
    assert wh.dry_run_bytes("SELECT COUNT(*) AS n FROM t", {}) == 0

    # A declared size stands in for rows never materialised (bench/cost.py prices a 1M-user world so).
    fake.declared_stats[(gcp.project, gcp.dataset, "t")] = TableStats(
        {dt.date(2026, 3, d): 1_000_000 for d in range(1, 32)}, {"user_id": 12.0, "score": 8.0, "day": 8.0}
    )
    assert wh.dry_run_bytes(sql, {"d": dt.date(2026, 3, 2)}) == 1_000_000 * (12 + 8 + 8)
