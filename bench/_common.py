"""Helpers every benchmark shares: peak memory, the DuckDB warehouse of a work folder, a partition digest."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any


def peak_rss_mb(*, own: bool = True, children: bool = True) -> float:
    """Peak RSS of this process and/or of the largest child it waited for, in MB."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # macOS reports bytes, Linux KiB
    peaks = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss] if own else []
    peaks += [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss] if children else []
    return round(max(peaks, default=0) * scale, 1)


def warehouse(workdir: Path) -> Any:
    """The benchmark's DuckDB warehouse in ``workdir``."""
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    return DuckDBWarehouse(workdir / "warehouse.duckdb")


def recommendations_digest(warehouse: Any, day: Any) -> str:
    """Rows and an order-free hash of (user, item, rank, score) of ``day``'s recommendations partition."""
    with warehouse.connect(read_only=True) as con:
        n, h = con.execute(
            "SELECT count(*), bit_xor(hash(user_id, item_id, rank, score)) FROM recommendations "
            "WHERE prediction_date = $d",
            {"d": day},
        ).fetchone()
    return f"{n}:{h}"
