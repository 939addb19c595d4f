"""What every ``airflow-ml`` command shares: dates, the warehouse, the contract, JSON, tables and progress lines."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("airflow_ml")

#: How long a step may stay silent before a progress line says it is still running.
PROGRESS_EVERY_SECONDS = 10.0


def parse_date(value: str) -> dt.date:
    """argparse type: a real YYYY-MM-DD date."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def positive_int(value: str) -> int:
    """argparse type: a whole number of at least 1 (0 must not mean "the default")."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def warehouse(args: argparse.Namespace, *, create: bool = False):  # type: ignore[no-untyped-def]
    """The warehouse the command works on: ``--conn-id``, ``--warehouse`` or the embedded default.

    A ``--warehouse`` file that does not exist is an error (nothing is created, not even a lock
    file) unless the command creates the warehouse (``create``).
    """
    if args.conn_id:
        return _hook(args).get_warehouse(labels={"managed-by": "airflow-ml-cli"})
    from airflow_ml_provider.backends import get_warehouse
    from airflow_ml_provider.exceptions import MLProviderError

    if args.warehouse and not create and not Path(args.warehouse).is_file():
        raise MLProviderError(
            f"--warehouse {args.warehouse}: no such warehouse file. Check the path, or create one with "
            f"`airflow-ml seed-demo --warehouse {args.warehouse}` (or leave --warehouse out for "
            "$AIRFLOW_ML_HOME/warehouse.duckdb)."
        )
    return get_warehouse(platform_config(args))


def platform_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The platform the command works on: the ``--conn-id`` connection's, else the embedded default's."""
    if getattr(args, "conn_id", None):
        return _hook(args).config
    from airflow_ml_provider.core.contract.config import PlatformConfig

    warehouse_file = getattr(args, "warehouse", None)
    extras = {"warehouse_path": str(warehouse_file)} if warehouse_file else {}
    return PlatformConfig.from_extras(extras, source="command line")


def cli_artifacts(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """How the command reads and writes artifacts: through the connection's credentials with ``--conn-id``."""
    if getattr(args, "conn_id", None):
        return _hook(args).get_artifacts()
    from airflow_ml_provider.core.storage import DEFAULT_ARTIFACTS

    return DEFAULT_ARTIFACTS


def _hook(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The ``--conn-id`` connection's hook, built once per command (its config reads the connection)."""
    hook = getattr(args, "_ml_platform_hook", None)
    if hook is None or hook.ml_conn_id != args.conn_id:
        from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

        hook = args._ml_platform_hook = MLPlatformHook(ml_conn_id=args.conn_id)
    return hook


def resolve_pipeline(args: argparse.Namespace) -> None:
    """Fill ``args.pipeline`` when not given: the current project's contract; log which file is used."""
    if "pipeline" not in args:
        return
    if args.pipeline is None:
        from airflow_ml_provider.core.contract.project import find_pipeline

        args.pipeline, where = find_pipeline(Path.cwd(), os.environ)
        log.info("Using contract %s (found in %s; pass --pipeline to choose another)", args.pipeline, where)
    else:
        log.info("Using contract %s", args.pipeline)


def pipeline_spec(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The contract ``args.pipeline``, parsed once per command (parsing the YAML costs about 0.1 s)."""
    cached = getattr(args, "_ml_spec", None)
    if cached is None or cached[0] != args.pipeline:
        from airflow_ml_provider.core.contract.spec import load_spec

        cached = args._ml_spec = (args.pipeline, load_spec(args.pipeline))
    return cached[1]


def refuse_dates_before_start(args: argparse.Namespace) -> None:
    """A ``--date`` before the contract's ``start_date`` fails naming the key, as the DAG's tasks do."""
    pipeline, day = getattr(args, "pipeline", None), getattr(args, "date", None)
    if pipeline is None or not isinstance(day, dt.date):
        return
    from airflow_ml_provider.core.contract.dates import check_run_date

    check_run_date(day, pipeline_spec(args).start_date, str(pipeline), what="--date")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str], right: Sequence[str] = ()) -> list[str]:
    """Lines of an aligned text table: each column as wide as its widest cell; ``right`` columns right-aligned."""
    cells = [[str(h) for h in header], *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, header, strict=True)]
        lines.append("  " + "  ".join(parts).rstrip())
    return lines


@contextlib.contextmanager
def progress(what: str, every: float = PROGRESS_EVERY_SECONDS) -> Iterator[None]:
    """Log ``still <what> (Ns)`` every ``every`` seconds while the block runs, so no step is silent for long."""
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            log.info("  still %s (%.0fs)", what, time.monotonic() - started)

    thread = threading.Thread(target=tick, name="airflow-ml-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def add_pipeline_argument(parser: argparse.ArgumentParser, help_text: str = "pipeline.yaml") -> None:
    parser.add_argument(
        "--pipeline",
        type=Path,
        default=None,
        help=f"{help_text} (default: the nearest dags/*/pipeline.yaml from the current folder, "
        "else under AIRFLOW__CORE__DAGS_FOLDER)",
    )


#: SQL folder for a contract that is not laid out as ROOT/dags/NAME/pipeline.yaml (the repo's own).
FALLBACK_SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def default_sql_dir(pipeline: Path) -> Path:
    """``ROOT/sql`` for a contract at ``ROOT/dags/NAME/pipeline.yaml``; else the repo's ``sql/``."""
    parents = pipeline.resolve().parents
    if len(parents) > 2 and parents[1].name == "dags":
        return parents[2] / "sql"
    return FALLBACK_SQL_DIR
