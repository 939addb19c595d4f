"""Batch scoring: stream candidate feature batches, score them with LightGBM, keep top-k per user.

Memory depends on the output (users x k), never on the candidate count: each Arrow record
batch is encoded, scored and reduced to its own top-k, with at most two batches in flight
(one is predicted and one reduced on helper threads while the next is read and encoded), and the
running top-k is compacted as it grows. Ties are broken by item id, so a rerun gives the
same lists. NaN/inf handling is the encoding policy of ``core/training/encoding.py`` (inf and nulls
are missing values; nulls in a non-nullable feature fail the run).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.contract.model_hooks import ModelHooks
from airflow_ml_provider.core.contract.spec import PipelineSpec
from airflow_ml_provider.core.training.encoding import FeatureDataError, encode
from airflow_ml_provider.core.training.envelope import Envelope
from airflow_ml_provider.exceptions import EmptyResultError, SchemaMismatchError

log = logging.getLogger(__name__)

#: Arrow types each declared GoogleSQL type may arrive as.
_ARROW_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "STRING": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t),
    "INT64": pa.types.is_integer,
    "FLOAT64": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t),
    "BOOL": pa.types.is_boolean,
    "DATE": pa.types.is_date,
    "TIMESTAMP": pa.types.is_timestamp,
}


def candidate_features_sql(spec: PipelineSpec, features: Sequence[str] | None = None) -> str:
    """GoogleSQL reading the serving rows: keys then ``features`` (the model's, in its order), for @as_of.

    ``features`` defaults to the contract's ``model_features``: a feature built from a source
    column declared absent stays in the table but is read neither by training nor here.
    """
    names = [f.name for f in spec.model_features] if features is None else list(features)
    user, item = spec.entities.user, spec.entities.item
    cols = ",\n  ".join([f"f.{user}", f"f.{item}", *(validate_identifier(n, kind="feature") for n in names)])
    sql = f"SELECT\n  {cols}\nFROM {validate_identifier(spec.feature_table)} AS f\nWHERE f.as_of_date = @as_of"
    return sql + _exclude_seen(spec)


def _exclude_seen(spec: PipelineSpec) -> str:
    """The anti-join ``inference.exclude_seen`` asks for, against every event up to @as_of ('' for none)."""
    if spec.inference.exclude_seen == "none":
        return ""
    from airflow_ml_provider.core.contract.references import render_source

    user, item = spec.entities.user, spec.entities.item
    purchased = " AND e.event_type = 'purchase'" if spec.inference.exclude_seen == "purchased" else ""
    return (
        f"\n  AND NOT EXISTS (\n    SELECT 1 FROM {render_source(spec, 'events')} AS e\n"
        f"    WHERE e.{user} = f.{user} AND e.{item} = f.{item} AND DATE(e.event_ts) <= @as_of{purchased}\n  )"
    )


def check_feature_table(columns: Iterable[str], envelope: Envelope, keys: tuple[str, str], table: str) -> None:
    """The feature table must have the keys and every feature the model was trained on (checked before the scan)."""
    have = set(columns)
    missing = [c for c in (*keys, *envelope.feature_names()) if c not in have]
    if missing:
        raise SchemaMismatchError(
            f"serving columns do not match model {envelope.name} {envelope.version}: table {table} has no "
            f"{', '.join(missing)}. Retrain the model on the current features, or restore the feature SQL it "
            "was trained on."
        )


def check_unique_pairs(best: pa.Table, keys: tuple[str, str], source: str) -> None:
    """A (user, item) pair listed twice means the candidates were not unique; never write such lists.

    The pairs become one int64 each (dictionary codes of user and item) and are sorted: several
    times cheaper than hashing two string columns in a group-by on millions of listed rows.
    """
    if best.num_rows < 2:
        return
    users = pc.dictionary_encode(best["user_id"]).combine_chunks()
    items = pc.dictionary_encode(best["item_id"]).combine_chunks()
    pairs = users.indices.to_numpy().astype(np.int64) * len(items.dictionary) + items.indices.to_numpy()
    order = np.argsort(pairs, kind="stable")
    ordered = pairs[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeated.size:
        first = int(order[repeated[0]])
        user, item = best["user_id"][first].as_py(), best["item_id"][first].as_py()
        pairs_listed_twice = len(np.unique(ordered[repeated]))
        raise FeatureDataError(
            f"{source}: {pairs_listed_twice} duplicate ({keys[0]}, {keys[1]}) candidate pair(s) reached the top-k "
            f"lists (e.g. {user!r}, {item!r}); the recommendations partition was left as "
            f"it was. Make the candidate and feature SQL return one row per ({keys[0]}, {keys[1]}) and date."
        )


def check_serving_schema(schema: pa.Schema, envelope: Envelope, keys: tuple[str, str], source: str) -> None:
    """Serving columns must be the model's: same names, same order, compatible types."""
    expected = [*keys, *envelope.feature_names()]
    got = list(schema.names)
    if got != expected:
        missing = [c for c in expected if c not in got]
        extra = [c for c in got if c not in expected]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"unexpected {', '.join(extra)}")
        if not detail:
            first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            detail.append(f"out of order from position {first}: got {got[first]}, model expects {expected[first]}")
        raise SchemaMismatchError(
            f"{source}: serving columns do not match model {envelope.name} {envelope.version}: "
            f"{'; '.join(detail)}. Retrain the model on the current features, or restore the "
            "feature SQL it was trained on."
        )
    wrong = [
        f"{f.name} is {schema.field(f.name).type}, model expects {f.type}"
        for f in envelope.features
        if not _ARROW_TYPES[f.type](schema.field(f.name).type)
    ]
    if wrong:
        raise SchemaMismatchError(
            f"{source}: serving column types do not match model {envelope.name} {envelope.version}: "
            f"{'; '.join(wrong)}. Fix the feature SQL or retrain."
        )


def top_k(users: pa.Array, items: pa.Array, scores: np.ndarray, k: int) -> pa.Table:
    """The k best (score desc, then item asc) rows per user, with 1-based ranks."""
    table = pa.table({"user_id": users, "item_id": items, "score": pa.array(scores, pa.float64())})
    if table.num_rows == 0:
        return table.append_column("rank", pa.array([], pa.int64()))
    rows, rank = _best_rows(table, k)
    return table.take(pa.array(rows)).append_column("rank", pa.array(rank, pa.int64()))


def batch_best(users: pa.Array, items: pa.Array, scores: np.ndarray, k: int) -> pa.Table:
    """The rows of ``top_k(users, items, scores, k)`` (user_id, item_id, score; no rank), in no particular order.

    For a batch whose lists ``TopK`` merges (and sorts) later: the users are sorted by their
    dictionary codes instead of their strings, about twice as cheap (0.2 s of CPU per 2M rows of
    the reference contract, issue 26), and the rows kept are the same, each user's k best by
    score, then item. With a null user the rows go through ``top_k``, whose grouping of the
    null users (sorted last, after the greatest user) this order would not reproduce.
    """
    scored = pa.array(scores, pa.float64())
    if isinstance(users, pa.ChunkedArray):
        users = users.combine_chunks()
    if users.null_count or len(users) == 0:
        return top_k(users, items, scores, k).drop_columns(["rank"])
    codes = pc.dictionary_encode(users).indices
    order = pc.sort_indices(
        pa.table({"user": codes, "score": scored, "item_id": items}),
        sort_keys=[("user", "ascending"), ("score", "descending"), ("item_id", "ascending")],
    ).to_numpy()
    ordered = codes.to_numpy()[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    positions = np.arange(len(order))
    rank = positions - np.maximum.accumulate(np.where(starts, positions, 0)) + 1
    return pa.table({"user_id": users, "item_id": items, "score": scored}).take(pa.array(order[rank <= k]))


def _best_rows(table: pa.Table, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k best rows per user of ``table`` (user_id, item_id, score), in output order, and their ranks.

    Ranks come from the sorted user ids alone, so only the rows kept are ever copied.
    """
    order = pc.sort_indices(
        table, sort_keys=[("user_id", "ascending"), ("score", "descending"), ("item_id", "ascending")]
    )
    user_col = pc.take(table.column("user_id"), order).combine_chunks()
    n = table.num_rows
    starts = np.ones(n, dtype=bool)
    if n > 1:
        starts[1:] = pc.not_equal(user_col.slice(1), user_col.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    del user_col
    positions = np.arange(n)
    group_start = np.maximum.accumulate(np.where(starts, positions, 0))
    rank = positions - group_start + 1
    keep = rank <= k
    return order.to_numpy()[keep], rank[keep]


@dataclass
class TopK:
    """A running top-k per user over many batches, compacted when it doubles."""

    k: int
    _parts: list[pa.Table] = field(default_factory=list)
    _rows: int = 0
    _compacted: int = 0

    def add(self, users: pa.Array, items: pa.Array, scores: np.ndarray) -> None:
        """Fold one scored batch in."""
        self.add_best(top_k(users, items, scores, self.k))

    def add_best(self, part: pa.Table) -> None:
        """Fold in one batch already reduced by ``top_k`` or ``batch_best`` (as the scoring thread does)."""
        self._parts.append(part.drop_columns(["rank"]) if "rank" in part.column_names else part)
        self._rows += part.num_rows
        if self._rows > max(2 * self._compacted, 1_000_000):
            self._merge()

    def _merge(self) -> pa.Table:
        """Reduce the parts to one sorted top-k table with ranks, which becomes the only part.

        With candidates clustered by user the parts hardly shrink, so the merge copies one
        column at a time and lets the parts' copy of it go: the peak is about one copy of
        the lists plus a column, not two copies.
        """
        table = pa.concat_tables(self._parts)
        self._parts = []
        rows, rank = _best_rows(table, self.k)
        picked = pa.array(rows)
        columns = {}
        for name in table.column_names:
            columns[name] = table.column(name).take(picked)
            table = table.drop_columns([name])
        best = pa.table(columns).append_column("rank", pa.array(rank, pa.int64()))
        self._parts = [best.drop_columns(["rank"])]
        self._rows = self._compacted = best.num_rows
        return best

    def result(self) -> pa.Table:
        """user_id, item_id, score, rank for every user seen."""
        if not self._parts:
            return top_k(pa.array([], pa.string()), pa.array([], pa.string()), np.array([]), self.k)
        return self._merge()


@dataclass
class DistinctValues:
    """The distinct values of a column over many batches (the day's candidate items), merged as they grow."""

    _parts: list[pa.Array] = field(default_factory=list)
    _size: int = 0
    _merged: int = 0

    def add(self, values: pa.Array) -> None:
        """Fold in one batch's distinct values."""
        self._parts.append(values)
        self._size += len(values)
        if self._size > max(2 * self._merged, 100_000):
            self._merge()

    def _merge(self) -> pa.Array:
        merged = pc.unique(pa.chunked_array(self._parts)) if self._parts else pa.array([], pa.string())
        self._parts, self._size = [merged], len(merged)
        self._merged = self._size
        return merged

    def count(self) -> int:
        """How many distinct non-null values were seen."""
        return int(pc.count(self._merge(), mode="only_valid").as_py())


@dataclass
class ScoringStats:
    """What a scoring pass did, for the runs table and the task log."""

    rows: int = 0
    batches: int = 0
    candidate_items: int = 0  # distinct items among the scored candidates
    seconds_read: float = 0.0
    seconds_score: float = 0.0
    inf_replaced: dict[str, int] = field(default_factory=dict)
    filled_users: int = 0  # served users short of k candidates, filled from the global popularity list
    filled_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "rows": self.rows,
            "batches": self.batches,
            "candidate_items": self.candidate_items,
            "seconds_read": round(self.seconds_read, 3),
            "seconds_score": round(self.seconds_score, 3),
            "filled_users": self.filled_users,
            "filled_rows": self.filled_rows,
            "inf_replaced": self.inf_replaced,
        }


def score_batches(
    batches: Iterable[pa.RecordBatch],
    booster: Any,
    envelope: Envelope,
    hooks: ModelHooks,
    k: int,
    *,
    keys: tuple[str, str] = ("user_id", "item_id"),
    source: str = "candidates",
    log_every_seconds: float = 10.0,
) -> tuple[pa.Table, ScoringStats]:
    """Score every batch and return the top-k table and the stats; no rows is an error.

    Three stages overlap (LightGBM, the compiled trees and Arrow's sort release the GIL): this
    thread reads, transforms and encodes batch i+1 and folds finished lists into the running
    top-k, one helper thread predicts batch i, another reduces batch i-1 to its own top-k. So
    whichever stage is slowest (LightGBM's predict; reading and encoding when the trees are
    compiled) sets the pace. At most two encoded batches wait or are predicted at a time, so
    memory stays bounded, and lists are folded in reading order, so the result is the same
    as scoring one batch after the other. The reducing thread also collects the distinct
    candidate items (``stats.candidate_items``), so counting them needs no second scan.
    """
    stats, best, items_seen = ScoringStats(), TopK(k), DistinctValues()
    started = last_log = time.monotonic()
    iterator = iter(batches)
    pending: Future[tuple[pa.Table, pa.Array]] | None = None

    def reduce(scores: Future[np.ndarray], users: pa.Array, items: pa.Array) -> tuple[pa.Table, pa.Array]:
        return batch_best(users, items, np.asarray(scores.result(), dtype=np.float64), k), pc.unique(items)

    def fold(reduced: tuple[pa.Table, pa.Array]) -> None:
        best.add_best(reduced[0])
        items_seen.add(reduced[1])

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict") as predicting,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="top-k") as reducing,
    ):
        while True:
            t0 = time.monotonic()
            batch = next(iterator, None)
            stats.seconds_read += time.monotonic() - t0
            if batch is None:
                break
            if stats.batches == 0:
                check_serving_schema(batch.schema, envelope, keys, source)
            if batch.num_rows == 0:
                continue
            t0 = time.monotonic()
            frame = hooks.transform(batch.to_pandas())
            encoded = encode(frame, envelope.features, envelope.categories, source=source)
            del frame  # the pandas frame of the batch: the next one is converted while this one is predicted
            for name, count in encoded.inf_replaced.items():
                stats.inf_replaced[name] = stats.inf_replaced.get(name, 0) + count
            scores = predicting.submit(booster.predict, encoded.matrix, num_iteration=envelope.best_iteration)
            future = reducing.submit(reduce, scores, batch.column(keys[0]), batch.column(keys[1]))
            if pending is not None:
                fold(pending.result())
            pending = future
            stats.seconds_score += time.monotonic() - t0
            stats.rows += batch.num_rows
            stats.batches += 1
            now = time.monotonic()
            if now - last_log >= log_every_seconds:
                log.info("Scored %d rows (%.0f rows/s)", stats.rows, stats.rows / max(now - started, 1e-9))
                last_log = now
        if pending is not None:
            t0 = time.monotonic()
            fold(pending.result())
            stats.seconds_score += time.monotonic() - t0
    if stats.rows == 0:
        raise EmptyResultError(
            f"{source}: no candidate rows to score; the recommendations partition was left as it was. "
            "Run the features DAG for this date first."
        )
    if stats.inf_replaced:
        log.warning("Treated +/-inf as missing in %s", stats.inf_replaced)
    result = best.result()
    check_unique_pairs(result, keys, source)
    stats.candidate_items = items_seen.count()
    return result, stats
