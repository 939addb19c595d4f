"""Scale-out of batch inference: user shards by a stable hash, staged per shard, published as one partition.

A user's shard is ``ABS(MOD(FARM_FINGERPRINT(CAST(user AS STRING)), shards))``, computed in the
warehouse. BigQuery has FARM_FINGERPRINT; DuckDB has none (sqlglot passes the name through
unchanged), so the embedded warehouse registers :func:`fingerprint64` under that name: FarmHash
Fingerprint64 as a signed INT64, the value BigQuery documents for the same string, so both
backends put a user in the same shard.

Each shard task scores its users and stages its lists in a table of its own (one per date, DAG
run and shard), which a retry replaces whole, so it never duplicates rows. One publish step
checks that every shard is staged exactly once, then replaces the date's partition from the
union of the staged tables with the warehouse's partition-write primitive: readers see the old
lists or the new ones, never a mix of shards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.exceptions import ContractError, ShardError

if TYPE_CHECKING:
    from airflow_ml_provider.core.warehouse.interface import Warehouse, WriteResult

#: The column a staged row carries its shard in (dropped when published).
SHARD_COLUMN = "_shard"
#: Staging tables start with this (BigQuery's listing hides it; both backends name them alike).
STAGING_PREFIX = "_staging_"


def fingerprint64(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """FarmHash Fingerprint64 of each string as a signed INT64, BigQuery's ``FARM_FINGERPRINT`` (NULL stays NULL).

    Hashes each distinct value once, so a column of candidate rows costs one call per user.
    """
    import farmhash
    import pyarrow.compute as pc  # here, not at module level: the DuckDB backend imports this module on every command

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    words = np.fromiter(map(farmhash.fingerprint64, encoded.dictionary.to_pylist()), dtype=np.uint64)
    # DuckDB calls this once per 2048 rows, holding the GIL: the uint64 -> int64 view (two's
    # complement, as BigQuery's INT64) is one numpy call, not a Python expression per value.
    return pc.take(pa.array(words.view(np.int64), type=pa.int64()), encoded.indices)


def shard_of(user_id: str, shards: int) -> int:
    """The shard of one user id, as the warehouse computes it (for tests and tools)."""
    value = fingerprint64(pa.array([user_id])).to_pylist()[0]
    return abs(int(np.fmod(value, shards)))


def check_shard_count(shards: int, where: str) -> int:
    """A shard count is a whole number from 1 to 256."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 256:
        raise ContractError(f"{where}: shards must be a whole number from 1 to 256, got {shards!r}.")
    return shards


def shard_sql(sql: str, user_column: str) -> str:
    """``sql``'s rows of one user shard: ``@shard_index`` of ``@shard_count`` (GoogleSQL)."""
    user = validate_identifier(user_column, kind="user column")
    return (
        f"SELECT * FROM (\n{sql}\n) AS shard_rows\n"
        f"WHERE ABS(MOD(FARM_FINGERPRINT(CAST(shard_rows.{user} AS STRING)), @shard_count)) = @shard_index"
    )


@dataclass(frozen=True)
class ShardPlan:
    """One run's shards: the date, how many, and the one model version every shard scores with."""

    prediction_date: dt.date
    shards: int
    model_name: str
    model_version: str

    def tasks(self) -> list[dict[str, Any]]:
        """One keyword set per mapped shard task (for ``.expand_kwargs``); the last item carries the plan."""
        base = {
            "prediction_date": self.prediction_date.isoformat(),
            "shards": self.shards,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }
        return [{**base, "shard": i} for i in range(self.shards)]

    @classmethod
    def from_tasks(cls, tasks: Sequence[Mapping[str, Any]]) -> ShardPlan:
        """The plan back from the planning task's output; a plan whose items disagree is refused."""
        items = list(tasks)
        if not items:
            raise ShardError("the shard plan is empty; rerun the plan task.")
        first = items[0]
        plan = cls(
            dt.date.fromisoformat(str(first["prediction_date"])),
            int(first["shards"]),
            str(first["model_name"]),
            str(first["model_version"]),
        )
        if sorted(int(t["shard"]) for t in items) != list(range(plan.shards)) or any(
            (t["prediction_date"], t["shards"], t["model_version"])
            != (first["prediction_date"], first["shards"], first["model_version"])
            for t in items
        ):
            raise ShardError(f"the shard plan is inconsistent ({items!r}); rerun the plan task.")
        return plan


def staging_table(table: str, day: dt.date, run_id: str, shard: int, shards: int) -> str:
    """The staging table of one shard: per table, date, DAG run and shard, so a retry replaces its own."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    name = f"{STAGING_PREFIX}{validate_identifier(table)}_{day:%Y%m%d}_{digest}_s{shard}_of_{shards}"
    return validate_identifier(name)


def staging_tables(table: str, plan: ShardPlan, run_id: str) -> list[str]:
    """Every shard's staging table, in shard order."""
    return [staging_table(table, plan.prediction_date, run_id, i, plan.shards) for i in range(plan.shards)]


def with_shard(data: pa.Table, shard: int) -> pa.Table:
    """The shard's rows tagged with their shard, so publish can tell a misplaced table."""
    return data.append_column(SHARD_COLUMN, pa.repeat(pa.scalar(shard, pa.int64()), data.num_rows))


def _union(names: Sequence[str], columns: str) -> str:
    return "\nUNION ALL\n".join(f"SELECT {columns} FROM {validate_identifier(n)}" for n in names)


def check_staged(warehouse: Warehouse, names: Sequence[str], user_column: str = "user_id") -> dict[str, int]:
    """Every shard staged, each exactly once; return rows, users and items of the union.

    Raises ``ShardError`` naming the shard: a missing staging table (its task has not
    succeeded), a table holding another shard's rows, or a user staged by two shards.
    """
    missing = [i for i, n in enumerate(names) if not warehouse.table_exists(n)]
    if missing:
        raise ShardError(
            f"shard(s) {', '.join(map(str, missing))} of {len(names)} are not staged ({names[missing[0]]} does "
            "not exist); the partition was left as it was. Rerun the failed shard task(s), then the publish task."
        )
    user = validate_identifier(user_column, kind="user column")
    tagged = "\nUNION ALL\n".join(
        f"SELECT {i} AS staged_as, {SHARD_COLUMN} AS shard, {user} AS user_id, item_id FROM {validate_identifier(n)}"
        for i, n in enumerate(names)
    )
    # One scan on the happy path; the queries that name the culprit run only when it finds one.
    totals = warehouse.query(
        "SELECT COUNT(*) AS rows_written, COUNT(DISTINCT user_id) AS users, COUNT(DISTINCT item_id) AS items, "
        "COUNTIF(shard != staged_as) AS misplaced, "
        "COUNT(DISTINCT CONCAT(CAST(staged_as AS STRING), ':', user_id)) AS user_tables "
        f"FROM (\n{tagged}\n) AS s",
        source="shard publish check",
    ).to_pylist()[0]
    counts = {k: int(v or 0) for k, v in totals.items()}
    if not counts.pop("misplaced") and counts.pop("user_tables") == counts["users"]:
        return counts
    misplaced = warehouse.query(
        f"SELECT staged_as, MIN(shard) AS shard FROM (\n{tagged}\n) AS s WHERE shard != staged_as "
        "GROUP BY staged_as ORDER BY staged_as LIMIT 1",
        source="shard publish check",
    ).to_pylist()
    if misplaced:
        row = misplaced[0]
        raise ShardError(
            f"shard {row['shard']} is staged twice: {names[row['staged_as']]} (shard {row['staged_as']}'s table) "
            f"holds shard {row['shard']}'s rows; the partition was left as it was. Rerun shard "
            f"{row['staged_as']}'s task, then the publish task."
        )
    twice = warehouse.query(
        f"SELECT user_id, MIN(staged_as) AS a, MAX(staged_as) AS b FROM (\n{tagged}\n) AS s "
        "GROUP BY user_id HAVING COUNT(DISTINCT staged_as) > 1 ORDER BY user_id LIMIT 1",
        source="shard publish check",
    ).to_pylist()
    if twice:
        row = twice[0]
        raise ShardError(
            f"user {row['user_id']!r} is in shard {row['a']} and shard {row['b']}: shard {row['b']} duplicates "
            "users of another shard (scored with another shard count or hash?); the partition was left as it "
            "was. Rerun both shard tasks, then the publish task."
        )
    raise AssertionError("unreachable: the check found a misplaced or repeated shard that neither query names")


def publish_staged(
    warehouse: Warehouse,
    table: str,
    partition_column: str,
    day: dt.date,
    names: Sequence[str],
    columns: Sequence[str],
) -> WriteResult:
    """Replace ``table``'s ``day`` partition with the union of the staged shards, in one atomic write."""
    cols = ", ".join(validate_identifier(c, kind="column") for c in columns)
    return warehouse.replace_partition(
        table, partition_column, day, _union(names, cols), sql_source=f"publish of {len(names)} shard(s)"
    )


def drop_staged(warehouse: Warehouse, names: Sequence[str]) -> None:
    """Remove the staging tables after a publish (they also expire on BigQuery)."""
    for name in names:
        warehouse.drop_table(name)


@contextlib.contextmanager
def unlocked_batches(
    warehouse: Warehouse, sql: str, params: Mapping[str, Any], *, batch_rows: int, source: str
) -> Iterator[Iterator[pa.RecordBatch]]:
    """The query's batches, read so that no warehouse lock is held while the caller scores them.

    A warehouse that holds a lock for as long as a stream is open (DuckDB's file lock) would
    make the shards score one after the other; there the rows are spooled to a local Arrow file
    first (a sequential scan, bounded memory), the lock is released, and the file is streamed.
    """
    if not warehouse.locks_while_reading:
        with warehouse.query_batches(sql, params, batch_rows=batch_rows, source=source) as batches:
            yield batches
        return
    with tempfile.TemporaryDirectory(prefix="aml-shard-") as tmp:
        path = Path(tmp) / "rows.arrow"
        writer: pa.ipc.RecordBatchFileWriter | None = None
        with warehouse.query_batches(sql, params, batch_rows=batch_rows, source=source) as batches:
            for batch in batches:
                if writer is None:
                    writer = pa.ipc.new_file(str(path), batch.schema)
                writer.write_batch(batch)
        if writer is None:
            yield iter(())
            return
        writer.close()
        with pa.memory_map(str(path)) as source_file:
            reader = pa.ipc.open_file(source_file)
            yield (reader.get_batch(i) for i in range(reader.num_record_batches))
