"""Load the UCI Online Retail transactions into a warehouse as your own tables would be.

    python examples/online_retail/load.py --data ../shared/data/online_retail.parquet

The data is not in this repository (CC BY 4.0, UCI Machine Learning Repository; see
docs/bring-your-own-data.md). The loader keeps the shop's own column names, so the contract
(`examples/online_retail/pipeline.yaml`) maps them, not the SQL:

- ``retail_events``: one row per invoice line of a known customer: InvoiceNo, StockCode,
  CustomerID (as a string), InvoiceDate (TIMESTAMP), Quantity, UnitPrice, Country, and
  ``kind``: ``transaction``, or ``cancellation`` for an InvoiceNo starting with C (the
  contract does not map cancellations, so they count as ``unknown`` and weigh nothing).
- ``retail_items``: item_id (StockCode), price (median UnitPrice), launch_date (first sale).
  The data set has no item categories, and none is invented: the contract declares the
  column absent (``source_columns: {items: {category: null}}``).
- ``retail_customers``: user_id, signup_date (first invoice), country.

Guest lines (no CustomerID) are dropped: a recommendation needs someone to recommend to.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pyarrow as pa

log = logging.getLogger("online_retail")

EVENTS_SQL = """
SELECT
  InvoiceNo,
  StockCode,
  CAST(CAST(CustomerID AS BIGINT) AS VARCHAR) AS CustomerID,
  CAST(InvoiceDate AS TIMESTAMP) AS InvoiceDate,
  Quantity,
  UnitPrice,
  Country,
  CASE WHEN InvoiceNo LIKE 'C%' THEN 'cancellation' ELSE 'transaction' END AS kind
FROM read_parquet($path)
WHERE CustomerID IS NOT NULL AND StockCode IS NOT NULL
"""
ITEMS_SQL = """
SELECT
  StockCode AS item_id,
  CAST(MEDIAN(UnitPrice) AS DOUBLE) AS price,
  CAST(MIN(InvoiceDate) AS DATE) AS launch_date
FROM events
WHERE kind = 'transaction'
GROUP BY StockCode
"""
CUSTOMERS_SQL = """
SELECT CustomerID AS user_id, CAST(MIN(InvoiceDate) AS DATE) AS signup_date, ANY_VALUE(Country) AS country
FROM events
GROUP BY CustomerID
"""


def read_tables(data: Path) -> dict[str, pa.Table]:
    """The three tables, computed with an in-memory DuckDB from the Parquet file."""
    import duckdb

    con = duckdb.connect()
    events = con.sql(EVENTS_SQL, params={"path": str(data)}).to_arrow_table()
    con.register("events", events)
    return {
        "retail_events": events,
        "retail_items": con.sql(ITEMS_SQL).to_arrow_table(),
        "retail_customers": con.sql(CUSTOMERS_SQL).to_arrow_table(),
    }


def main() -> None:
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/online_retail.parquet"))
    home = Path(os.environ.get("AIRFLOW_ML_HOME", Path(os.environ.get("AIRFLOW_HOME", "~/airflow")) / "ml"))
    p.add_argument("--warehouse", type=Path, default=home.expanduser() / "warehouse.duckdb")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found. Download the UCI Online Retail data set and pass --data.")
    args.warehouse.parent.mkdir(parents=True, exist_ok=True)
    warehouse = DuckDBWarehouse(args.warehouse)
    for name, table in read_tables(args.data).items():
        warehouse.replace_table(name, table)
        log.info("Loaded %-17s %7d rows into %s", name, table.num_rows, args.warehouse)


if __name__ == "__main__":
    main()
