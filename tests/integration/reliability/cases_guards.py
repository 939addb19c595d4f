"""Bad-input cases of the guards (issue 25): seed-demo on a seeded warehouse, the contract's bounds on
``top_k`` at run time, model.py against its checksum, and storage failures that name their cause.

Storage failures run for real where the test can make them: a Parquet, text, empty or corrupt
file, a folder, a read-only file or folder (``chattr +i`` as root, who ignores permission bits;
``chmod`` otherwise). A full disk during a write is injected at the real statement (the COMMIT
of the partition write fails as DuckDB's does on a full disk, after DuckDB has already aborted
the transaction), because a tmpfs small enough to fill needs root; ``test_disk_full.py`` fills a
real tmpfs where it can mount one.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb

from airflow_ml_provider.core.training.envelope import ModelLoadError
from airflow_ml_provider.exceptions import ContractError, SQLTemplateError, WarehouseError
from tests.integration.reliability.bad_input import (
    Case,
    CLIFailed,
    cli,
    cli_case,
    contract,
    features,
    fresh_events,
    model_file,
    nothing,
    op_case,
    recommend,
    setdeep,
    sql,
)
from tests.integration.reliability.conftest import DAY, World, context

# --- entry points this table needs ---------------------------------------------------------


def cli_argv(w: World, *argv: str) -> Any:
    """``airflow-ml`` with ``--warehouse`` on the copy, where argparse's own refusals (exit 2) count as failures."""
    from airflow_ml_provider.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([*argv, "--warehouse", str(w.warehouse), "-q"])
        except SystemExit as exit_:
            code = exit_.code
    if code != 0:
        raise CLIFailed(err.getvalue().strip())
    return code


def cli_recorded(w: World, *argv: str) -> Any:
    """``cli`` for a command that records its failed attempt in recommendation_runs.

    The row holds the error without the CLI's ``airflow-ml recommend: error:`` prefix, so the
    raised message drops it too (the test compares the message with the row).
    """
    prefix = f"airflow-ml {argv[0]}: error: "
    try:
        return cli(w, *argv)
    except CLIFailed as err:
        text = str(err)
        assert text.startswith(prefix), text
        raise CLIFailed(text[len(prefix) :]) from err


def cli_on(path: Callable[[World], Path], *argv: str) -> Callable[[World], Any]:
    """``airflow-ml ARGV --warehouse PATH``; afterwards no lock file may sit beside PATH that was not there before."""
    from airflow_ml_provider.cli import main

    def run(w: World) -> Any:
        target = path(w)
        lock = Path(f"{target}.lock")
        had_lock = lock.exists()
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main([*(a.format(pipeline=w.pipeline, day=DAY) for a in argv), "--warehouse", str(target), "-q"])
        finally:
            assert had_lock or not lock.exists(), f"stray lock file {lock}"
        if code != 0:
            raise CLIFailed(err.getvalue().strip())
        return code

    return run


def op_on(path: Callable[[World], Path], run: Callable[[World], Any]) -> Callable[[World], Any]:
    """An operator on a connection whose warehouse_path is PATH; no stray lock file beside PATH afterwards."""

    def go(w: World) -> Any:
        target = path(w)
        lock = Path(f"{target}.lock")
        had_lock = lock.exists()
        saved = os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"]
        os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = w.connection(warehouse_path=str(target))
        try:
            return run(w)
        finally:
            os.environ["AIRFLOW_CONN_ML_PLATFORM_DEFAULT"] = saved
            assert had_lock or not lock.exists(), f"stray lock file {lock}"

    return go


def score_shard_op(w: World, **kwargs: Any) -> Any:
    """ScoreRecommendShardOperator for shard 0 of 2."""
    from airflow.sdk import DAG

    from airflow_ml_provider.operators.inference import ScoreRecommendShardOperator

    with DAG("reliability_inference_shards", schedule=None):
        op = ScoreRecommendShardOperator(
            task_id="score_shard", pipeline=str(w.pipeline), prediction_date=str(DAY), shard=0, shards=2, **kwargs
        )
    return op.execute(context("score_shard", run_id="bad-input"))


# --- ways to break the storage -------------------------------------------------------------


def other_file(name: str, write: Callable[[Path], None]) -> Callable[[World], Path]:
    """A file NAME in the copy's folder, written by ``write`` (once); returns its path."""

    def make(w: World) -> Path:
        path = w.root / "bad" / name
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            write(path)
        return path

    return make


def _parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"]}), path)


def _corrupt_copy(w: World) -> Callable[[Path], None]:
    """The copy's warehouse with one data block overwritten: the header is intact, a checksum fails."""

    def write(path: Path) -> None:
        shutil.copy(w.warehouse, path)
        with path.open("r+b") as f:
            f.seek(3 * 4096)  # past the three headers: the first block (the catalog), read on open
            f.write(b"\xab" * 4096)

    return write


PARQUET = other_file("events.parquet", _parquet)
TEXT = other_file("warehouse.csv", lambda p: p.write_text("user_id,item_id\nu1,i1\n" * 50))
EMPTY = other_file("empty.duckdb", lambda p: p.write_bytes(b""))
FOLDER = other_file("folder.duckdb", lambda p: p.mkdir())
SQLITE = other_file("shop.db", lambda p: sqlite3.connect(p).execute("CREATE TABLE t (a)").connection.commit())


def corrupt(w: World) -> Path:
    return other_file("corrupt.duckdb", _corrupt_copy(w))(w)


def _freeze(path: Path, on: bool) -> None:
    """Make PATH read-only for this process: immutable as root (permission bits do not bind root), else chmod."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)
    else:
        path.chmod((0o555 if path.is_dir() else 0o444) if on else (0o755 if path.is_dir() else 0o644))


def read_only(target: Callable[[World], Path], run: Callable[[World], Any]) -> Callable[[World], Any]:
    """Run with TARGET (the copy's warehouse file or its folder) read-only; restored afterwards."""

    def go(w: World) -> Any:
        path = target(w)
        _freeze(path, True)
        try:
            return run(w)
        finally:
            _freeze(path, False)

    return go


def warehouse_file(w: World) -> Path:
    return w.warehouse


def warehouse_folder(w: World) -> Path:
    return w.warehouse.parent


# --- a full disk at the write ----------------------------------------------------------------


class _FullDiskConnection:
    """A real DuckDB connection whose COMMIT of a partition write fails as on a full disk.

    DuckDB aborts the transaction itself when the commit cannot be written (a later ROLLBACK then
    says "no transaction is active"), so the injected failure rolls back first, then raises the
    text DuckDB raises (seen on a full tmpfs): only what happens at the disk is simulated.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, state: dict[str, bool], path: str) -> None:
        self._con, self._table, self._state, self._path = con, table, state, path

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        text = query.strip()
        if text.upper().startswith("INSERT INTO") and f'"{self._table}"' in text:
            self._state["armed"] = True
        if text.upper() == "COMMIT" and self._state.get("armed") and not self._state.get("fired"):
            self._state["fired"] = True
            self._con.execute("ROLLBACK")
            raise duckdb.TransactionException(
                f'TransactionContext Error: Failed to commit: Could not write file "{self._path}.wal": '
                "No space left on device"
            )
        return self._con.execute(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@contextlib.contextmanager
def disk_full_at(table: str) -> Iterator[None]:
    real = duckdb.connect
    state: dict[str, bool] = {}

    def connect(database: str = ":memory:", *args: Any, **kwargs: Any) -> Any:
        con = real(database, *args, **kwargs)
        if database == ":memory:" or kwargs.get("read_only"):
            return con
        return _FullDiskConnection(con, table, state, str(database))

    with mock.patch("airflow_ml_provider.backends.duckdb.duckdb.connect", connect):
        yield
    assert state.get("fired"), f"no write of {table} reached COMMIT"


def full_disk(table: str, run: Callable[[World], Any]) -> Callable[[World], Any]:
    def go(w: World) -> Any:
        with disk_full_at(table):
            return run(w)

    return go


# --- the cases -----------------------------------------------------------------------------

_PIPE = ["--pipeline", "{pipeline}"]
_REC = ["recommend", *_PIPE, "--date", "{day}"]
_FEAT = ["features", *_PIPE, "--date", "{day}"]


def _rec_argv(*extra: str) -> Callable[[World], list[str]]:
    return lambda w: ["recommend", "--pipeline", str(w.pipeline), "--date", str(DAY), *extra]


def _feat_argv(w: World) -> list[str]:
    return ["features", "--pipeline", str(w.pipeline), "--date", str(DAY)]


_TOPK_FIX = r"Pass a top_k in 1\.\.30, or leave it out for inference\.top_k \(10\)"
_TOPK_CLI_FIX = r"Pass a --top-k in 1\.\.30, or leave it out for inference\.top_k \(10\)"
_NOT_DB_FIX = r"Pass the \.duckdb file of your warehouse as --warehouse \(or warehouse_path\)"
_HOOKS = (
    r"model\.py does not match hooks_sha256 in its envelope: the file's sha256 is [0-9a-f]{64}, "
    r"the envelope records [0-9a-f]{64}"
)
_HOOKS_FIX = r"Restore the model\.py the model was trained with, or retrain the model"
_FULL = (
    r"write of recommendations: the disk is full \(Failed to commit: Could not write file .*No space left on device\)"
)
_FULL_FIX = r"The write was rolled back.*Free space on that disk.*or move the warehouse to a larger disk"
_READ_ONLY_FIX = r"Make both writable .*or copy the warehouse to a writable folder"


def _flip_digit(text: str) -> str:
    """One digit of model.py changed (10.0 -> 19.0): the file still imports and still runs."""
    assert "_MAX_PRICE_RATIO = 10.0" in text
    return text.replace("_MAX_PRICE_RATIO = 10.0", "_MAX_PRICE_RATIO = 19.0")


def _seed(w: World) -> Any:
    return cli_argv(w, "seed-demo", "--users", "60", "--items", "24", "--days", "30")


CASES: dict[str, Case] = {
    # --- seed-demo never replaces a warehouse's sources unasked ---------------------------------
    "seed-demo-on-seeded-warehouse-cli": Case(
        "cli",
        nothing,
        _seed,
        CLIFailed,
        r"airflow-ml seed-demo: error: --warehouse .*warehouse\.duckdb already has source tables: "
        r"users \([\d,]+ rows\), items \([\d,]+ rows\), events \([\d,]+ rows\)",
        r"Pass --force to replace them",
        raised=CLIFailed,
    ),
    "seed-demo-on-warehouse-with-events-only-cli": Case(
        "cli",
        sql("DROP TABLE users", "DROP TABLE items"),
        _seed,
        CLIFailed,
        r"already has source tables: events \([\d,]+ rows\)\.",
        r"Pass --force to replace them, or choose another --warehouse",
        raised=CLIFailed,
    ),
    "seed-demo-on-warehouse-with-empty-events-cli": Case(
        "cli",
        sql("DELETE FROM events"),
        _seed,
        CLIFailed,
        r"events \(0 rows\)",
        r"Pass --force",
        raised=CLIFailed,
    ),
    # --- top_k within the contract's bounds at run time ------------------------------------------
    "topk-zero-cli": Case(
        "contract",
        nothing,
        lambda w: cli_argv(w, "recommend", "--pipeline", str(w.pipeline), "--date", str(DAY), "--top-k", "0"),
        CLIFailed,
        r"airflow-ml recommend: error: argument --top-k: expected a whole number of at least 1, got '0'",
        r"at least 1",
        raised=CLIFailed,
    ),
    "topk-negative-cli": Case(
        "contract",
        nothing,
        lambda w: cli_argv(w, "recommend", "--pipeline", str(w.pipeline), "--date", str(DAY), "--top-k", "-3"),
        CLIFailed,
        r"argument --top-k: expected a whole number of at least 1, got '-3'",
        r"at least 1",
        raised=CLIFailed,
    ),
    "topk-not-a-number-cli": Case(
        "contract",
        nothing,
        lambda w: cli_argv(w, "recommend", "--pipeline", str(w.pipeline), "--date", str(DAY), "--top-k", "ten"),
        CLIFailed,
        r"argument --top-k: expected a whole number of at least 1, got 'ten'",
        r"at least 1",
        raised=CLIFailed,
    ),
    "topk-above-candidates-cli": cli_case(
        "contract",
        nothing,
        _rec_argv("--top-k", "31"),
        r"airflow-ml recommend: error: --top-k=31: a list holds 1 to 30 items \(candidates_per_user \(30\)",
        _TOPK_CLI_FIX + r", or raise candidates_per_user",
    ),
    "topk-above-candidates-sharded-cli": cli_case(
        "contract",
        nothing,
        _rec_argv("--top-k", "500", "--shards", "2"),
        r"--top-k=500: a list holds 1 to 30 items",
        _TOPK_CLI_FIX,
    ),
    "topk-zero-operator": op_case(
        "contract",
        nothing,
        lambda w: recommend(w, top_k=0),
        ContractError,
        r"top_k=0: a list holds 1 to 30 items",
        _TOPK_FIX,
        logs_failed_run=True,
    ),
    "topk-negative-operator": op_case(
        "contract",
        nothing,
        lambda w: recommend(w, top_k=-3),
        ContractError,
        r"top_k=-3: a list holds 1 to 30 items",
        _TOPK_FIX,
        logs_failed_run=True,
    ),
    "topk-above-candidates-operator": op_case(
        "contract",
        nothing,
        lambda w: recommend(w, top_k=31),
        ContractError,
        r"top_k=31: a list holds 1 to 30 items \(candidates_per_user \(30\) in pipeline\.yaml\)",
        _TOPK_FIX + r", or raise candidates_per_user",
        logs_failed_run=True,
    ),
    "topk-above-candidates-shard-operator": op_case(
        "contract",
        nothing,
        lambda w: score_shard_op(w, top_k=1000),
        ContractError,
        r"top_k=1000: a list holds 1 to 30 items",
        _TOPK_FIX,
    ),
    "contract-top-k-above-candidates-operator": op_case(
        "contract",
        contract(setdeep("inference.top_k", 40)),
        recommend,
        ContractError,
        r"pipeline\.yaml: inference\.top_k \(40\) exceeds candidates_per_user \(30\): at least 10 items",
        r"Raise candidates_per_user or lower inference\.top_k",
        logs_failed_run=True,
    ),
    "contract-top-k-above-candidates-cli": cli_case(
        "contract",
        contract(setdeep("inference.top_k", 31)),
        _rec_argv(),
        r"airflow-ml recommend: error: pipeline\.yaml: inference\.top_k \(31\) exceeds candidates_per_user \(30\)",
        r"Raise candidates_per_user or lower inference\.top_k",
    ),
    # --- model.py is the file the model was trained with --------------------------------------
    "model-py-edited-after-training-operator": op_case(
        "models",
        model_file("model.py", lambda s: s + "\n# tuned by hand after training\n"),
        recommend,
        ModelLoadError,
        _HOOKS,
        _HOOKS_FIX,
        logs_failed_run=True,
    ),
    "model-py-digit-flipped-operator": op_case(
        "models",
        model_file("model.py", _flip_digit),
        recommend,
        ModelLoadError,
        _HOOKS,
        _HOOKS_FIX,
        logs_failed_run=True,
    ),
    "model-py-digit-flipped-cli": Case(
        "models",
        model_file("model.py", _flip_digit),
        lambda w: cli_recorded(w, *_rec_argv("--run-id", "bad-input")(w)),
        CLIFailed,
        _HOOKS,
        _HOOKS_FIX,
        logs_failed_run=True,
        raised=CLIFailed,
    ),
    "model-py-made-harmless-looking-shard-operator": op_case(
        "models",
        model_file("model.py", lambda s: s.replace("clip(upper=_MAX_PRICE_RATIO)", "clip(upper=None)")),
        score_shard_op,
        ModelLoadError,
        _HOOKS,
        _HOOKS_FIX,
    ),
    # --- the warehouse file is not a (healthy) DuckDB database --------------------------------
    "warehouse-is-parquet-cli": Case(
        "configuration",
        nothing,
        cli_on(PARQUET, "tables"),
        CLIFailed,
        r"airflow-ml tables: error: warehouse .*events\.parquet is a Parquet file, not a DuckDB database",
        _NOT_DB_FIX + r".*Load it into a table instead",
        raised=CLIFailed,
    ),
    "warehouse-is-parquet-features-cli": Case(
        "configuration",
        nothing,
        cli_on(PARQUET, *_FEAT),
        CLIFailed,
        r"airflow-ml features: error: warehouse .*events\.parquet is a Parquet file",
        _NOT_DB_FIX,
        raised=CLIFailed,
    ),
    "warehouse-is-parquet-operator": op_case(
        "configuration",
        nothing,
        op_on(PARQUET, features),
        WarehouseError,
        r"warehouse .*events\.parquet is a Parquet file, not a DuckDB database",
        _NOT_DB_FIX,
    ),
    "warehouse-is-text-cli": Case(
        "configuration",
        nothing,
        cli_on(TEXT, *_REC),
        CLIFailed,
        r"warehouse .*warehouse\.csv is a file of another format, not a DuckDB database: the file was left as it is",
        _NOT_DB_FIX,
        raised=CLIFailed,
    ),
    "warehouse-is-empty-file-cli": Case(
        "configuration",
        nothing,
        cli_on(EMPTY, "tables"),
        CLIFailed,
        r"warehouse .*empty\.duckdb is an empty file, not a DuckDB database",
        _NOT_DB_FIX,
        raised=CLIFailed,
    ),
    "warehouse-is-a-folder-operator": op_case(
        "configuration",
        nothing,
        op_on(FOLDER, recommend),
        WarehouseError,
        r"warehouse .*folder\.duckdb is a folder, not a DuckDB database file",
        r"Pass the database file inside it",
    ),
    "warehouse-corrupt-block-cli": Case(
        "configuration",
        nothing,
        cli_on(corrupt, "tables"),
        CLIFailed,
        r"airflow-ml tables: error: warehouse .*corrupt\.duckdb is corrupt: Corrupt database file",
        r"Restore the file from a backup .*or rebuild it",
        raised=CLIFailed,
    ),
    "warehouse-corrupt-block-operator": op_case(
        "configuration",
        nothing,
        op_on(corrupt, recommend),
        WarehouseError,
        r"warehouse .*corrupt\.duckdb is corrupt",
        r"Restore the file from a backup",
    ),
    # --- read-only storage ----------------------------------------------------------------------
    "warehouse-file-read-only-cli": Case(
        "configuration",
        nothing,
        read_only(warehouse_file, lambda w: cli(w, *_feat_argv(w))),
        CLIFailed,
        r"airflow-ml features: error: warehouse .*warehouse\.duckdb cannot be written: Cannot open file",
        _READ_ONLY_FIX,
        raised=CLIFailed,
    ),
    "warehouse-file-read-only-operator": op_case(
        "configuration",
        nothing,
        read_only(warehouse_file, recommend),
        WarehouseError,
        r"warehouse .*warehouse\.duckdb cannot be written",
        _READ_ONLY_FIX,
    ),
    "warehouse-folder-read-only-cli": Case(
        "configuration",
        nothing,
        read_only(warehouse_folder, lambda w: cli(w, *_feat_argv(w))),
        CLIFailed,
        r"airflow-ml features: error: warehouse .*warehouse\.duckdb cannot be written",
        _READ_ONLY_FIX,
        raised=CLIFailed,
    ),
    "warehouse-folder-read-only-operator": op_case(
        "configuration",
        nothing,
        read_only(warehouse_folder, features),
        WarehouseError,
        r"warehouse .*warehouse\.duckdb cannot be written",
        _READ_ONLY_FIX,
    ),
    # --- a full disk at the write: the cause is raised and recorded, nothing changes -------------
    "disk-full-at-recommendations-commit-operator": op_case(
        "configuration",
        nothing,
        full_disk("recommendations", recommend),
        WarehouseError,
        _FULL,
        _FULL_FIX,
        logs_failed_run=True,
    ),
    "disk-full-at-recommendations-commit-cli": Case(
        "configuration",
        nothing,
        full_disk(
            "recommendations",
            lambda w: cli_recorded(w, *_rec_argv("--run-id", "bad-input")(w)),
        ),
        CLIFailed,
        _FULL,
        _FULL_FIX,
        logs_failed_run=True,
        raised=CLIFailed,
    ),
    "disk-full-at-feature-steps-commit-operator": op_case(
        "configuration",
        fresh_events,
        full_disk("user_features", features),
        WarehouseError,
        r"the disk is full \(Failed to commit: Could not write file .*No space left on device\)",
        _FULL_FIX,
    ),
    "disk-full-at-feature-steps-commit-cli": Case(
        "configuration",
        fresh_events,
        full_disk("user_features", lambda w: cli(w, *_feat_argv(w))),
        CLIFailed,
        r"airflow-ml features: error: .*the disk is full \(Failed to commit: .*No space left on device\)",
        _FULL_FIX,
        raised=CLIFailed,
    ),
    "warehouse-is-sqlite-cli": Case(
        "configuration",
        nothing,
        cli_on(SQLITE, *_REC),
        CLIFailed,
        r"airflow-ml recommend: error: warehouse .*shop\.db is a SQLite database, not a DuckDB database",
        _NOT_DB_FIX,
        raised=CLIFailed,
    ),
    "warehouse-is-text-operator": op_case(
        "configuration",
        nothing,
        op_on(TEXT, features),
        WarehouseError,
        r"warehouse .*warehouse\.csv is a file of another format, not a DuckDB database",
        _NOT_DB_FIX,
    ),
    "warehouse-corrupt-block-features-operator": op_case(
        "configuration",
        nothing,
        op_on(corrupt, features),
        WarehouseError,
        r"warehouse .*corrupt\.duckdb is corrupt: Corrupt database file",
        r"Restore the file from a backup",
    ),
    "warehouse-file-read-only-recommend-cli": Case(
        "configuration",
        nothing,
        read_only(warehouse_file, lambda w: cli(w, *_rec_argv()(w))),
        CLIFailed,
        r"airflow-ml recommend: error: warehouse .*warehouse\.duckdb cannot be written",
        _READ_ONLY_FIX,
        raised=CLIFailed,
    ),
    # --- a source table without a column the SQL reads ------------------------------------------
    "source-events-without-event-ts-operator": op_case(
        "data",
        sql("ALTER TABLE events DROP COLUMN event_ts"),
        features,
        SQLTemplateError,
        r"table events has no column event_ts \(it has [a-z_, ]+\), and the query reads event_ts from it",
        r"map it in pipeline\.yaml under source_columns \(`source_columns: \{events: \{event_ts: your_column\}\}`",
    ),
    "source-events-without-event-ts-cli": cli_case(
        "data",
        sql("ALTER TABLE events DROP COLUMN event_ts"),
        _feat_argv,
        # The events checks may find it first (checks.events.timestamp_column); either names source_columns.
        r"airflow-ml features: error: .*(table events|events:) has no column event_ts",
        r"source_columns",
    ),
    "source-events-without-item-id-operator": op_case(
        "data",
        sql("ALTER TABLE events DROP COLUMN item_id"),
        features,
        SQLTemplateError,
        r"table events has no column item_id",
        r"map it in pipeline\.yaml under source_columns",
    ),
    "source-events-column-renamed-cli": cli_case(
        "data",
        sql("ALTER TABLE events RENAME COLUMN user_id TO customer_id"),
        _feat_argv,
        r"table events has no column user_id \(it has [a-z_, ]*customer_id",
        r"`source_columns: \{events: \{user_id: your_column\}\}`",
    ),
}
