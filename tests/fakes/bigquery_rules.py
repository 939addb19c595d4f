"""The documented BigQuery rules the fake enforces, as small pure functions.

Each rule links the page that states it. A rule raises ``HTTPError`` with BigQuery's own
reason and (where known) its message, so the real client raises the exception it raises in
production. Rules the code relies on that the fake does NOT enforce are listed in
``NOT_ENFORCED``, so nobody mistakes a green test for proof of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tests.fakes.http import HTTPError

NOT_ENFORCED = (
    "quotas and rate limits (e.g. 1,500 table operations per table per day; partition modifications per table)",
    "IAM: every authenticated caller may do everything (bigquery.readsessions.create only when switched off)",
    "locations: a job in another location than its datasets is not refused (EXPORT DATA to a bucket is checked)",
    "require_partition_filter is stored and compared, but a query without a partition filter is not refused",
    "SQL semantics: queries run on DuckDB through the product's own sqlglot transpiler",
    "partition pruning in byte estimates: a query is charged for every referenced table in full",
    "streaming buffer, time travel, table snapshots, row-level security",
)

# https://cloud.google.com/bigquery/pricing#on_demand_pricing: "a minimum of 10 MB data processed
# per table referenced by the query".
MIN_BYTES_BILLED_PER_TABLE = 10 * 2**20

_TYPE_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


@dataclass
class Field:
    """A schema field as the REST API spells it (legacy type names, explicit mode)."""

    name: str
    type: str
    mode: str = "NULLABLE"
    fields: list[Field] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode}
        if self.fields:
            out["fields"] = [f.api() for f in self.fields]
        return out

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Field:
        kind = data.get("type", "STRING").upper()
        return cls(
            data["name"],
            _TYPE_ALIASES.get(kind, kind),
            (data.get("mode") or "NULLABLE").upper(),
            [cls.from_api(f) for f in data.get("fields", [])],
        )


def field_from_arrow(name: str, kind: pa.DataType, nullable: bool = True) -> Field:
    """The BigQuery field a column of Arrow type ``kind`` becomes (query results: always NULLABLE)."""
    mode = "NULLABLE" if nullable else "REQUIRED"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = field_from_arrow(name, kind.value_type)
        return Field(name, inner.type, "REPEATED", inner.fields)
    if pa.types.is_struct(kind):
        return Field(name, "RECORD", mode, [field_from_arrow(f.name, f.type) for f in kind])
    if pa.types.is_integer(kind):
        return Field(name, "INTEGER", mode)
    if pa.types.is_floating(kind):
        return Field(name, "FLOAT", mode)
    if pa.types.is_boolean(kind):
        return Field(name, "BOOLEAN", mode)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return Field(name, "STRING", mode)
    if pa.types.is_date(kind):
        return Field(name, "DATE", mode)
    if pa.types.is_timestamp(kind):
        return Field(name, "TIMESTAMP" if kind.tz else "DATETIME", mode)
    if pa.types.is_decimal(kind):
        return Field(name, "NUMERIC", mode)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return Field(name, "BYTES", mode)
    if pa.types.is_null(kind):
        return Field(name, "STRING", mode)
    raise HTTPError(400, "invalid", f"the fake cannot store Arrow type {kind} (column {name})")


def duckdb_type(f: Field) -> str:
    """The DuckDB column type that stores ``f``."""
    base = {
        "STRING": "VARCHAR",
        "INTEGER": "BIGINT",
        "FLOAT": "DOUBLE",
        "BOOLEAN": "BOOLEAN",
        "DATE": "DATE",
        "TIMESTAMP": "TIMESTAMPTZ",
        "DATETIME": "TIMESTAMP",
        "NUMERIC": "DECIMAL(38, 9)",
        "BYTES": "BLOB",
        "JSON": "JSON",
    }.get(f.type)
    if f.type == "RECORD":
        base = "STRUCT(" + ", ".join(f'"{s.name}" {duckdb_type(s)}' for s in f.fields) + ")"
    if base is None:
        raise HTTPError(400, "invalid", f"the fake has no storage for type {f.type} (column {f.name})")
    return base + "[]" if f.mode == "REPEATED" else base


@dataclass
class TableMeta:
    """What BigQuery knows about a table besides its rows."""

    project: str
    dataset: str
    table: str
    schema: list[Field]
    kind: str = "TABLE"  # or VIEW
    partition_field: str | None = None
    clustering: list[str] = field(default_factory=list)
    expires_ms: str | None = None
    description: str | None = None
    created_ms: int = 0
    partition_type: str = "DAY"
    partition_expiration_ms: str | None = None
    require_partition_filter: bool = False
    #: The expiry the table had when it came into existence (what a killed writer leaves behind).
    expires_at_creation: str | None = None

    @property
    def table_id(self) -> str:
        return f"{self.project}:{self.dataset}.{self.table}"

    def set_partitioning(self, spec: dict[str, Any] | None, require_filter: bool | None = None) -> None:
        """Take a REST ``timePartitioning`` (and the table-level ``requirePartitionFilter``)."""
        spec = spec or {}
        self.partition_field = spec.get("field") if spec else None
        self.partition_type = spec.get("type") or "DAY"
        self.partition_expiration_ms = str(spec["expirationMs"]) if spec.get("expirationMs") else None
        self.require_partition_filter = bool(require_filter or spec.get("requirePartitionFilter"))

    def partitioning(self) -> dict[str, Any]:
        """The table's ``timePartitioning`` as ``tables.get`` returns it."""
        out: dict[str, Any] = {"type": self.partition_type, "field": self.partition_field}
        if self.partition_expiration_ms:
            out["expirationMs"] = self.partition_expiration_ms
        return out


def parse_decorator(table_id: str) -> tuple[str, dt.date | None]:
    """``t$20240501`` -> (``t``, 2024-05-01); a plain name has no partition."""
    if "$" not in table_id:
        return table_id, None
    name, suffix = table_id.split("$", 1)
    try:
        return name, dt.datetime.strptime(suffix, "%Y%m%d").date()
    except ValueError as err:
        raise HTTPError(400, "invalid", f"Invalid partition decorator {suffix!r} in {table_id}") from err


def check_partition_rows(meta: TableMeta, partition: dt.date, data: pa.Table) -> None:
    """Rows written to ``table$YYYYMMDD`` of a column-partitioned table must all be in that partition.

    https://cloud.google.com/bigquery/docs/load-data-partitioned-tables, "Write data to a specific
    partition" ("the partition ID specified in the decorator must match the data being written";
    the page moved there from managing-partitioned-table-data).
    """
    if meta.partition_field is None or data.num_rows == 0:
        return
    if meta.partition_field not in data.column_names:
        raise HTTPError(400, "invalid", f"Partitioning column {meta.partition_field} is missing from the rows")
    values = set(pc.unique(data.column(meta.partition_field)).to_pylist())
    if values != {partition}:
        raise HTTPError(
            400,
            "invalid",
            f"Some rows belong to different partitions rather than destination partition {partition:%Y%m%d}",
        )


def check_schema_compatible(meta: TableMeta, new: list[Field], *, by_position: bool) -> None:
    """Appending (or overwriting one partition) needs the table's columns, types and compatible modes.

    https://cloud.google.com/bigquery/docs/managing-table-schemas ("you cannot change a column's
    mode from NULLABLE to REQUIRED"; a write whose field is NULLABLE where the table's is REQUIRED
    is refused with "Field x has changed mode from REQUIRED to NULLABLE"). Query results are
    matched by position (we insist on equal names too); Parquet loads by name.
    """
    prefix = f"Provided Schema does not match Table {meta.table_id}."
    table = {f.name: f for f in meta.schema}
    names = [f.name for f in new]
    if sorted(names) != sorted(table) or (by_position and names != [f.name for f in meta.schema]):
        missing = [n for n in table if n not in names]
        extra = [n for n in names if n not in table]
        detail = (
            (f" Cannot add fields (field: {extra[0]})" if extra else f" Field {missing[0]} is missing in new schema")
            if (missing or extra)
            else " Fields are in a different order."
        )
        raise HTTPError(400, "invalid", prefix + detail)
    for f in new:
        old = table[f.name]
        if old.type != f.type:
            raise HTTPError(400, "invalid", f"{prefix} Field {f.name} has changed type from {old.type} to {f.type}")
        if old.mode != f.mode and not (old.mode == "NULLABLE" and f.mode == "REQUIRED"):
            raise HTTPError(400, "invalid", f"{prefix} Field {f.name} has changed mode from {old.mode} to {f.mode}")


def check_required_values(meta: TableMeta, data: pa.Table) -> None:
    """A REQUIRED column never holds NULL (the write fails, nothing is written)."""
    for f in meta.schema:
        if f.mode == "REQUIRED" and f.name in data.column_names and data.column(f.name).null_count:
            raise HTTPError(400, "invalid", f"Required field {f.name} cannot be null")


def check_copy(source: TableMeta, dest: TableMeta | None) -> None:
    """Copy jobs keep partitioning and clustering: incompatible specs are refused.

    https://cloud.google.com/bigquery/docs/managing-partitioned-tables#copy_partitions and
    https://cloud.google.com/bigquery/docs/managing-tables#copy-table ("You cannot copy a
    non-partitioned table into a column-partitioned table"; the clustering must match).
    """
    if dest is None:
        return
    if dest.partition_field and not source.partition_field:
        raise HTTPError(
            400, "invalid", "Failed to copy Non partitioned table to Column partitioned table: not supported."
        )
    if dest.partition_field != source.partition_field:
        raise HTTPError(400, "invalid", "Incompatible table partitioning specification.")
    if dest.clustering != source.clustering:
        raise HTTPError(
            400,
            "invalid",
            f"Incompatible table clustering specification. Expects clustering fields {dest.clustering}, "
            f"but the source has {source.clustering or 'none'}.",
        )


def _spec_text(kind: str | None, column: str | None, expiration_ms: Any) -> str:
    text = f"interval(type:{(kind or 'DAY').lower()},field:{column})"
    return f"{text} expiration_ms: {expiration_ms}" if expiration_ms else text


def check_destination_spec(meta: TableMeta, config: dict[str, Any]) -> None:
    """A job that names partitioning or clustering for an existing table must name the table's own, all of it.

    https://cloud.google.com/bigquery/docs/creating-partitioned-tables#create_a_partitioned_table_from_a_query_result
    ("Incompatible table partitioning specification" otherwise). The whole specification is
    compared: type, field and partition expiration
    (https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#TimePartitioning), and the
    clustering fields in order.
    """
    partitioning = config.get("timePartitioning")
    if partitioning is not None:
        given = (
            (partitioning.get("type") or "DAY").upper(),
            partitioning.get("field"),
            str(partitioning["expirationMs"]) if partitioning.get("expirationMs") else None,
        )
        if given != (meta.partition_type, meta.partition_field, meta.partition_expiration_ms):
            raise HTTPError(
                400,
                "invalid",
                "Incompatible table partitioning specification. Expects partitioning specification "
                f"{_spec_text(meta.partition_type, meta.partition_field, meta.partition_expiration_ms)}, but input "
                f"partitioning specification is {_spec_text(*given)}",
            )
    clustering = config.get("clustering")
    if clustering is not None and list(clustering.get("fields", [])) != meta.clustering:
        raise HTTPError(
            400,
            "invalid",
            f"Incompatible table clustering specification. Expects clustering fields {meta.clustering}, "
            f"but input clustering fields is {clustering.get('fields')}",
        )


def bytes_billed(processed: int, tables_referenced: int) -> int:
    """On-demand billing: processed bytes, at least 10 MB per referenced table."""
    return max(processed, MIN_BYTES_BILLED_PER_TABLE * tables_referenced)


def check_bytes_billed(limit: str | None, billed: int) -> None:
    """``maximumBytesBilled``: the job fails (nothing is charged, nothing written) above the limit.

    https://cloud.google.com/bigquery/docs/best-practices-costs#limit_query_costs_by_restricting_the_number_of_bytes_billed
    """
    if limit is not None and billed > int(limit):
        raise HTTPError(
            400,
            "bytesBilledLimitExceeded",
            f"Query exceeded limit for bytes billed: {int(limit)}. {billed} or higher required.",
        )
