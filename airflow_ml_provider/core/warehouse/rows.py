"""Query results as Python rows without importing pandas.

pyarrow's scalar conversion imports pandas (a quarter of a second) as soon as it meets a
time-zone-aware timestamp, which every registry and run table has; a read-only CLI command
would pay it for a handful of rows. The timestamps are converted here instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "+00:00", "Z"})


def to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, with time-zone-aware timestamps read as aware datetimes without pandas."""
    zoned = {f.name: f.type for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz}
    if not zoned:
        return table.to_pylist()
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in zoned:
            naive = pa.timestamp(zoned[name].unit)  # the stored values are UTC instants
            column = pa.chunked_array([chunk.view(naive) for chunk in column.chunks], naive)
        columns.append(column)
    rows = pa.Table.from_arrays(columns, names=table.column_names).to_pylist()
    for name, kind in zoned.items():
        tz = dt.UTC if kind.tz in _UTC_NAMES else _zone(kind.tz)
        for row in rows:
            value = row[name]
            if value is not None:
                utc = value.replace(tzinfo=dt.UTC)
                row[name] = utc if tz is dt.UTC else utc.astimezone(tz)
    return rows


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
