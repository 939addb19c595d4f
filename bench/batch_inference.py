"""Batch inference benchmark: BatchRecommendOperator's scoring path vs bare LightGBM and a naive pandas path.

Set-up (a child process): seeds a small demo world into a DuckDB file in a temp dir, builds
features and labels for the training window of pipeline.yaml (run date 2026-03-31), trains
the demo model with ``core.training.trainer.train`` and promotes it to champion. It then writes
``--rows`` candidate rows into the ``features`` partition of 2026-04-01, in bounded chunks:
whole candidate lists (about 30 rows each) of the demo's real users and dates, resampled
under new user ids, with item ids spread over a larger catalog and jittered scores, so the
columns keep the demo's joint distributions.

Then it times, each in its own child process so peak RSS is per path:

- operator: ``core.inference.batch.recommend_day``, the work BatchRecommendOperator's task
  (and ``airflow-ml recommend``) runs, outside Airflow (no DAG run): it resolves the champion,
  loads the envelope, streams ``candidate_features_sql`` through ``query_batches``,
  ``score_batches`` (transform, encode, predict, running top-k), builds the output table and
  replaces the ``recommendations`` partition.
- raw: ``booster.predict`` on the same rows, already encoded in memory as a float64 matrix
  (built before the timer starts): the speed of LightGBM itself.
- naive: read everything into a DataFrame, transform, encode, predict, sort,
  ``groupby(user).head(k)``, write the partition.

The last line of output is JSON (see bench/README.md).

    .venv/bin/python bench/batch_inference.py [--rows 5000000] [--threads N] [--repeat 1] [--rounds 20,200]

With several ``--rounds`` the world and the candidates are set up once, and each model (its own
version, promoted to champion in turn) is measured as above: one report per model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "dags" / "recsys" / "pipeline.yaml"
SQL_DIR = REPO / "sql"
RUN_DATE = dt.date(2026, 3, 31)
DRIFT_FROM = dt.date(2026, 3, 29)  # as in `make demo`
PREDICTION_DATE = dt.date(2026, 4, 1)  # a day with no real features: only generated rows
MODEL_NAME = "recsys"
CHUNK_USERS = 20_000  # lists generated per chunk: about 600k rows, whatever --rows is
CATALOG_SHARDS = 50  # the demo's items, repeated under 50 prefixes: a 30k-item catalog

from _common import peak_rss_mb as _peak_rss_mb  # noqa: E402
from _common import recommendations_digest  # noqa: E402
from _common import warehouse as _warehouse  # noqa: E402

log = logging.getLogger("bench.batch_inference")


# --- set-up ------------------------------------------------------------------------------------


def prepare(
    workdir: Path, pipeline: Path, rows: int, users: int, rounds: int | None, fixed_users: int | None
) -> dict[str, Any]:
    """Train and promote a demo model, then write ``rows`` candidates for PREDICTION_DATE."""
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.warehouse.ddl import ensure_tables

    spec = load_spec(pipeline)
    warehouse = _warehouse(workdir)
    started = time.monotonic()
    world = generate(DemoConfig(users=users, end_date=RUN_DATE, drift_from=DRIFT_FROM))
    for name in ("users", "items", "events"):
        warehouse.replace_table(name, getattr(world, name))
    train_dates, valid_dates = spec.training_dates(RUN_DATE)
    build_features(warehouse, spec, SQL_DIR, [*train_dates, *valid_dates], labels=True)
    log.info("seeded %d demo users and built features in %.1fs", users, time.monotonic() - started)
    model = train_champion(workdir, pipeline, rounds)
    ensure_tables(warehouse, "recommendations", "recommendations_latest", "recommendation_runs")

    started = time.monotonic()
    written, lists = write_candidates(warehouse, spec, rows, fixed_users)
    log.info(
        "wrote %d candidate rows (%d users) for %s in %.1fs",
        written,
        lists,
        PREDICTION_DATE,
        time.monotonic() - started,
    )
    return {"rows": written, "users": lists, "batch_rows": spec.inference.batch_rows, **model}


def train_champion(workdir: Path, pipeline: Path, rounds: int | None) -> dict[str, Any]:
    """Train a demo model on the seeded world (exactly ``rounds`` trees if given), register and promote it."""
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.contract.model_hooks import load_hooks
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.job import training_data_sql, training_params
    from airflow_ml_provider.core.training.trainer import train

    spec = load_spec(pipeline)
    if rounds:  # exactly this many trees: early stopping would cut them back to the demo's ~20-40
        model = spec.model.model_copy(update={"num_boost_round": rounds, "early_stopping_rounds": 0})
        spec = spec.model_copy(update={"model": model})
    warehouse = _warehouse(workdir)
    started = time.monotonic()
    version = f"bench-{rounds}" if rounds else "bench"
    _, valid_dates = spec.training_dates(RUN_DATE)
    data_uri = warehouse.export_parquet(
        training_data_sql(spec),
        training_params(spec, RUN_DATE),
        storage.to_uri(workdir / "export" / version),
        source="bench",
    )
    model_dir = storage.to_uri(workdir / "artifacts" / MODEL_NAME / version)
    hooks = load_hooks(pipeline.parent / spec.model.hooks if spec.model.hooks else None)
    envelope = train(
        spec, data_uri, model_dir, name=MODEL_NAME, version=version, validation_from=valid_dates[0], hooks=hooks
    )
    registry = ModelRegistry(warehouse)
    registry.register_candidate(
        MODEL_NAME, version, model_dir, envelope.metrics, None, envelope.spec_hash, envelope.created_at
    )
    registry.promote(MODEL_NAME, version, blessed_by="bench", reason="benchmark model")
    log.info(
        "trained %s %s (%d trees) in %.1fs", MODEL_NAME, version, envelope.best_iteration, time.monotonic() - started
    )
    return {"trees": envelope.best_iteration, "model_dir": model_dir}


def write_candidates(
    warehouse: Any, spec: Any, rows: int, fixed_users: int | None = None, seed: int = 11
) -> tuple[int, int]:
    """Append about ``rows`` candidate rows to the PREDICTION_DATE partition of the feature table, chunk by chunk.

    The pool is every (as-of date, user) list the demo built; each generated list copies one
    of them. By default every list is a new user. With ``fixed_users`` the lists go round-robin
    to that many users, the r-th round under item prefix ``rNNN`` (so no pair repeats): more
    rows then mean more candidates per user, not more users, and a user's rows are spread over
    the whole scan. Memory is the pool plus one chunk, whatever ``rows`` is. Returns the rows
    and the distinct users.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    user, item, table = spec.entities.user, spec.entities.item, spec.feature_table
    pool = warehouse.query(
        f"SELECT * FROM {table} WHERE as_of_date < @d ORDER BY as_of_date, {user}, {item}", {"d": PREDICTION_DATE}
    ).drop_columns(["as_of_date"])
    starts, sizes = _list_bounds(warehouse, table, user)
    rng = np.random.default_rng(seed)
    shards = pa.array([f"s{s:02d}" for s in range(CATALOG_SHARDS)], pa.string())
    written = users = 0
    with warehouse.connect() as con:
        con.execute(f"DELETE FROM {table} WHERE as_of_date = $d", {"d": PREDICTION_DATE})
        while written < rows:
            picks = rng.integers(0, len(starts), CHUNK_USERS)
            lengths = sizes[picks]
            # Trim the last chunk to the requested row count.
            keep = np.searchsorted(np.cumsum(lengths), rows - written, side="right") + 1
            picks, lengths = picks[:keep], lengths[:keep]
            local = np.repeat(np.arange(len(picks)), lengths)
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            chunk = pool.take(pa.array(starts[picks][local] + offsets))
            if fixed_users:
                ids = pa.array([f"b{(users + i) % fixed_users:08d}" for i in range(len(picks))], pa.string())
                rounds = [f"r{(users + i) // fixed_users:03d}" for i in range(len(picks))]
                shard = pc.take(pa.array(rounds, pa.string()), pa.array(local))
            else:
                ids = pa.array([f"b{users + i:08d}" for i in range(len(picks))], pa.string())
                shard = pc.take(shards, pa.array(rng.integers(0, CATALOG_SHARDS, len(picks))[local]))
            jitter = np.exp(rng.normal(0.0, 0.05, chunk.num_rows))
            chunk = (
                chunk.set_column(chunk.schema.get_field_index(user), user, pc.take(ids, pa.array(local)))
                .set_column(
                    chunk.schema.get_field_index(item), item, pc.binary_join_element_wise(shard, chunk[item], "-")
                )
                .set_column(
                    chunk.schema.get_field_index("candidate_score"),
                    "candidate_score",
                    pc.multiply(chunk["candidate_score"], pa.array(jitter)),
                )
            )
            chunk = chunk.add_column(0, "as_of_date", pa.array([PREDICTION_DATE] * chunk.num_rows, pa.date32()))
            con.register("__bench_chunk", chunk)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __bench_chunk")
            con.unregister("__bench_chunk")
            written += chunk.num_rows
            users += len(picks)
    return written, min(users, fixed_users) if fixed_users else users


def _list_bounds(warehouse: Any, table: str, user: str) -> tuple[Any, Any]:
    """Start row and length of every (as-of date, user) list, in the pool's order."""
    import numpy as np

    sizes = warehouse.query(
        f"SELECT COUNT(*) AS n FROM {table} WHERE as_of_date < @d GROUP BY as_of_date, {user} "
        f"ORDER BY as_of_date, {user}",
        {"d": PREDICTION_DATE},
    ).column("n")
    lengths = np.asarray(sizes.to_numpy(), dtype=np.int64)
    return np.cumsum(lengths) - lengths, lengths


# --- the three measured paths (each in its own child process) ----------------------------------


def _import_libraries() -> None:
    """Import what every path needs before its timer starts: imports are a fixed cost of the task process.

    ``lightgbm`` pulls in scikit-learn and SciPy when they are installed, and without .pyc files
    (PYTHONDONTWRITEBYTECODE) that alone takes seconds; it is not what this benchmark measures.
    sqlglot builds its GoogleSQL and DuckDB dialects on first use (about 0.4 s): an import too.
    So is lleaves (with llvmlite's LLVM library, about 0.08 s) when the [fast] extra is installed.
    """
    import duckdb  # noqa: F401
    import lightgbm  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import sqlglot.dialects.bigquery
    import sqlglot.dialects.duckdb  # noqa: F401

    import airflow_ml_provider.core.inference.scoring  # noqa: F401
    from airflow_ml_provider.core.inference.compiled import compiler_version

    compiler_version()  # imports lleaves and llvmlite when installed


def _digest(warehouse: Any) -> str:
    """Rows and an order-free hash of (user, item, rank, score) of the written partition."""
    return recommendations_digest(warehouse, PREDICTION_DATE)


def worker_operator(workdir: Path, pipeline: Path, profile: bool) -> dict[str, Any]:
    """The batch inference stage's day of work, called directly: resolve, load, stream, score, top-k, write."""
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.inference.batch import recommend_day
    from airflow_ml_provider.core.storage import DEFAULT_ARTIFACTS
    from airflow_ml_provider.operators.inference import BatchRecommendOperator  # noqa: F401  (a task's imports)

    warehouse = _warehouse(workdir)
    spec = load_spec(pipeline)
    run: dict[str, Any] = {}
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    out = recommend_day(
        warehouse,
        PREDICTION_DATE,
        "bench__operator",
        run,
        spec=spec,
        model_version="champion",
        model_name=None,
        top_k=None,
        artifacts=DEFAULT_ARTIFACTS,
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(
            os.environ.get("BENCH_PROFILE_SORT", "cumulative")
        ).print_stats(40)
    peak = _peak_rss_mb()  # before the digest and output size below read the partition back
    keys = ("candidates", "users", "rows_written", "seconds_read", "seconds_score", "seconds_write")
    from airflow_ml_provider.core.inference.compiled import DISABLE_ENV, compiler_version

    compiled = compiler_version() is not None and os.environ.get(DISABLE_ENV, "") != "off"
    return {
        "engine": "lleaves" if compiled else "lightgbm",
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # every thread of the process: DuckDB's, the predict and top-k threads'
        "peak_rss_mb": peak,
        "digest": _digest(warehouse),
        "output_mb": _output_mb(warehouse),
        **{k: out[k] for k in keys},
    }


def _output_mb(warehouse: Any) -> float:
    """Arrow size of the kept lists (user_id, item_id, score, rank of the partition): the output, not overhead."""
    lists = warehouse.query(
        "SELECT user_id, item_id, score, rank FROM recommendations WHERE prediction_date = @d", {"d": PREDICTION_DATE}
    )
    return round(lists.nbytes / 2**20, 1)


def worker_baseline(workdir: Path) -> dict[str, Any]:
    """Peak RSS of an empty run: the operator worker's imports, then with the champion loaded as the operator does."""
    from airflow_ml_provider.core.inference.batch import load_model
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.storage import Artifacts
    from airflow_ml_provider.operators.inference import BatchRecommendOperator  # noqa: F401  (Airflow's imports)

    imports = _peak_rss_mb()
    load_model(ModelRegistry(_warehouse(workdir)).resolve(MODEL_NAME, "champion").uri, Artifacts())
    return {"peak_rss_mb_imports": imports, "peak_rss_mb_model": _peak_rss_mb()}


def _load_champion(warehouse: Any) -> tuple[Any, Any, Any]:
    """Envelope, booster and hooks of the champion, with the core's loaders (no Airflow)."""
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.contract.model_hooks import load_hooks
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.envelope import HOOKS_FILE, load_booster, read_envelope

    record = ModelRegistry(warehouse).resolve(MODEL_NAME, "champion")
    envelope = read_envelope(record.uri)
    hooks = load_hooks(storage.local_path(storage.join(record.uri, HOOKS_FILE)) if envelope.hooks_sha256 else None)
    return envelope, load_booster(record.uri), hooks


def worker_raw(workdir: Path, pipeline: Path) -> dict[str, Any]:
    """booster.predict, then the compiled model's predict, on every candidate row, encoded into one float64
    matrix before the timers start; the top-k lists of both score vectors are compared.
    """
    import numpy as np
    import pyarrow as pa

    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.inference.scoring import candidate_features_sql
    from airflow_ml_provider.core.training.encoding import encode

    spec = load_spec(pipeline)
    warehouse = _warehouse(workdir)
    envelope, booster, hooks = _load_champion(warehouse)
    n = warehouse.query(
        f"SELECT COUNT(*) AS n FROM {spec.feature_table} WHERE as_of_date = @d", {"d": PREDICTION_DATE}
    ).to_pylist()[0]["n"]
    matrix = np.empty((n, len(envelope.features)), dtype=np.float64)
    pos, users, items = 0, [], []
    with warehouse.query_batches(
        candidate_features_sql(spec), {"as_of": PREDICTION_DATE}, batch_rows=spec.inference.batch_rows
    ) as batches:
        for batch in batches:
            encoded = encode(hooks.transform(batch.to_pandas()), envelope.features, envelope.categories).matrix
            matrix[pos : pos + len(encoded)] = encoded
            pos += len(encoded)
            users.append(batch.column(spec.entities.user))
            items.append(batch.column(spec.entities.item))
    started = time.perf_counter()
    scores = booster.predict(matrix, num_iteration=envelope.best_iteration)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"seconds": seconds, "rows": len(scores)}
    fast = _compiled_champion(warehouse)
    if fast is not None:
        from airflow_ml_provider.core.inference.compiled import _threads, max_difference
        from airflow_ml_provider.core.inference.scoring import top_k

        started = time.perf_counter()
        compiled_scores = fast.predict(matrix, n_jobs=_threads())
        out["seconds_compiled"] = time.perf_counter() - started
        out["max_abs_diff"] = max_difference(compiled_scores, scores)
        del matrix
        user_col, item_col = pa.chunked_array(users), pa.chunked_array(items)
        k = spec.inference.top_k
        out["same_top_k"] = top_k(user_col, item_col, scores, k).equals(top_k(user_col, item_col, compiled_scores, k))
    return {**out, "peak_rss_mb": _peak_rss_mb()}


def _compiled_champion(warehouse: Any) -> Any:
    """The champion's compiled model (lleaves), from the cache the operator path filled; None without the extra."""
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.inference.compiled import compiler_version, load_or_compile
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.envelope import MODEL_FILE

    if compiler_version() is None:
        return None
    uri = ModelRegistry(warehouse).resolve(MODEL_NAME, "champion").uri
    return load_or_compile(storage.read_text(storage.join(uri, MODEL_FILE)), uri).model


def worker_floor(workdir: Path, pipeline: Path) -> dict[str, Any]:
    """What any operator on this warehouse must do besides scoring: read the candidates, write the lists.

    The operator's read (``candidate_features_sql``, every batch, nothing done with it), then the
    lists the last operator run wrote, written again with ``replace_partition``. The write cannot
    start before the last batch is scored, so read + write is a floor under the operator's wall.
    """
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.inference.scoring import candidate_features_sql

    warehouse = _warehouse(workdir)
    spec = load_spec(pipeline)
    started, cpu_started = time.perf_counter(), time.process_time()
    with warehouse.query_batches(
        candidate_features_sql(spec), {"as_of": PREDICTION_DATE}, batch_rows=spec.inference.batch_rows, source="floor"
    ) as batches:
        rows = sum(batch.num_rows for batch in batches)
    read, read_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    lists = warehouse.query(
        "SELECT * EXCLUDE (prediction_date) FROM recommendations WHERE prediction_date = @d", {"d": PREDICTION_DATE}
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    warehouse.replace_partition("recommendations", "prediction_date", PREDICTION_DATE, lists, sql_source="floor")
    write, write_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": read + write,
        "seconds_read": read,
        "seconds_write": write,
        "cpu_seconds": read_cpu + write_cpu,
        "rows": rows,
        "rows_written": lists.num_rows,
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_naive(workdir: Path, pipeline: Path) -> dict[str, Any]:
    """The obvious pandas version: everything in one DataFrame, sort, groupby.head(k), write."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.inference.scoring import candidate_features_sql
    from airflow_ml_provider.core.training.encoding import encode

    spec = load_spec(pipeline)
    user, item, k = spec.entities.user, spec.entities.item, spec.inference.top_k
    warehouse = _warehouse(workdir)
    started = time.perf_counter()
    envelope, booster, hooks = _load_champion(warehouse)
    df = warehouse.query(candidate_features_sql(spec), {"as_of": PREDICTION_DATE}, source="candidates").to_pandas()
    df = hooks.transform(df)
    matrix = encode(df, envelope.features, envelope.categories).matrix
    df["score"] = np.asarray(booster.predict(matrix, num_iteration=envelope.best_iteration), dtype=np.float64)
    del matrix
    df = df.sort_values([user, "score", item], ascending=[True, False, True], kind="stable")
    top = df.groupby(user, sort=False).head(k)
    del df
    top = top[[user, item, "score"]].assign(rank=top.groupby(user, sort=False).cumcount() + 1)
    table = pa.table(
        {
            "user_id": pa.array(top[user], pa.string()),
            "item_id": pa.array(top[item], pa.string()),
            "rank": pa.array(top["rank"], pa.int64()),
            "score": pa.array(top["score"], pa.float64()),
            "model_name": pa.array([envelope.name] * len(top), pa.string()),
            "model_version": pa.array([envelope.version] * len(top), pa.string()),
            "run_id": pa.array(["bench__naive"] * len(top), pa.string()),
            "generated_at": pa.array([pd.Timestamp.now(tz="UTC")] * len(top), pa.timestamp("us", tz="UTC")),
        }
    )
    warehouse.replace_partition("recommendations", "prediction_date", PREDICTION_DATE, table, sql_source="naive")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "digest": _digest(warehouse)}


def _child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run this script as a worker in a fresh interpreter; its last stdout line is its JSON result.

    Linux counts the parent's RSS at fork+exec into a child's ru_maxrss, so the parent that
    starts the measured workers must stay small: it never imports pandas, DuckDB or LightGBM.
    """
    out = subprocess.run(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        raise SystemExit(f"bench worker {args[1]} failed (exit {out.returncode}); see its log above.")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Set up, then per model (``--rounds``) time each path ``--repeat`` times, each in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        workdir = Path(tmp)
        # Importing the operator imports Airflow: keep its home out of the user's.
        os.environ.setdefault("AIRFLOW_HOME", str(workdir / "airflow"))
        common = ["--workdir", str(workdir), "--pipeline", str(args.pipeline)]
        reports = []
        for i, rounds in enumerate(args.rounds or [None]):
            trees = ["--rounds", str(rounds)] if rounds else []
            if i == 0:
                sizes = ["--rows", str(args.rows), "--demo-users", str(args.demo_users)]
                sizes += ["--users", str(args.users)] if args.users else []
                setup = _child("--worker", "setup", *common, *sizes, *trees)
            else:  # the same world and candidates, another model promoted to champion
                setup = {**setup, **_child("--worker", "model", *common, *trees)}
            reports.append(measure(args, common, setup))
    return reports


def measure(args: argparse.Namespace, common: list[str], setup: dict[str, Any]) -> dict[str, Any]:
    """Compile the champion, run its first day (the check against LightGBM), then time each path."""
    # Compile once before the timed runs (a daily run finds the object in the cache); timed on its own.
    started = time.perf_counter()
    setup["compiled"] = _child("--worker", "compile", *common)["compiled"]
    setup["seconds_compile"] = round(time.perf_counter() - started, 1)
    if setup["compiled"]:
        # The first run of a version also scores its first batch with LightGBM and caches the verdict;
        # later runs (the measured ones, as every daily run after the first) read the verdict.
        setup["seconds_first_run"] = _child("--worker", "operator", *common)["seconds"]
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        log.warning(
            "The machine is busy (load %.1f on %d CPUs): OpenMP threads contend, so timings are noisy. "
            "Prefer an idle machine, --repeat 3 or --threads 1.",
            load,
            os.cpu_count(),
        )
    measured: dict[str, list[dict[str, Any]]] = {path: [] for path in args.paths}
    for i in range(args.repeat):
        for path in measured:
            log.info("measuring %s (%d trees), run %d/%d", path, setup["trees"], i + 1, args.repeat)
            extra = ["--profile"] if args.profile and path == "operator" else []
            # operator_lightgbm: the same operator with compiled trees switched off (as without the extra).
            env = {"AIRFLOW_ML_COMPILED_TREES": "off"} if path == "operator_lightgbm" else None
            worker = "operator" if path == "operator_lightgbm" else path
            measured[path].append(_child("--worker", worker, *common, *extra, env=env))
    best = {path: min(runs, key=lambda r: r["seconds"]) for path, runs in measured.items()}
    out = summarise(args, load, setup, best, measured)
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return out


def summarise(
    args: argparse.Namespace,
    load: float,
    setup: dict[str, Any],
    best: dict[str, dict[str, Any]],
    measured: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The JSON report: conditions, per-path seconds and peak RSS, and the ratios measured in this run."""
    out: dict[str, Any] = {
        "rows": setup["rows"],
        "users": setup["users"],
        "fixed_users": bool(args.users),
        "trees": setup["trees"],
        "batch_rows": setup["batch_rows"],
        "repeat": args.repeat,
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "load_avg_1m": round(load, 2),
        # Compiling the model into the cache next to it (a fresh process, imports included); 0 without the extra.
        "seconds_compile_cold": setup["seconds_compile"] if setup["compiled"] else 0,
    }
    if "seconds_first_run" in setup:  # the operator's first run of the version: checks the first batch too
        out["seconds_operator_first_run"] = round(setup["seconds_first_run"], 2)
    raw = best.get("raw")
    for path in ("operator", "operator_lightgbm"):
        if path not in best:
            continue
        op = best[path]
        out[f"engine_{path}"] = op["engine"]
        out[f"seconds_{path}"] = round(op["seconds"], 2)
        for part in ("read", "score", "write"):
            out[f"seconds_{path}_{part}"] = round(op[f"seconds_{part}"], 2)
        out[f"rows_per_second_{path}"] = round(setup["rows"] / op["seconds"])
        out[f"cpu_seconds_{path}"] = round(op["cpu_seconds"], 2)
        out[f"peak_rss_mb_{path}"] = max(r["peak_rss_mb"] for r in measured[path])
        if raw:
            out[f"ratio_{path}_vs_raw_predict"] = round(raw["seconds"] / op["seconds"], 3)
            # On C cores the run cannot take less than its CPU seconds / C: the best ratio this work allows.
            cores = os.cpu_count() or 1
            out[f"ratio_{path}_cpu_bound"] = round(raw["seconds"] / (op["cpu_seconds"] / cores), 3)
    if raw:
        out["seconds_raw_predict"] = round(raw["seconds"], 2)
        out["peak_rss_mb_raw"] = max(r["peak_rss_mb"] for r in measured["raw"])
        if "seconds_compiled" in raw:
            out["seconds_compiled_predict"] = round(raw["seconds_compiled"], 2)
            out["ratio_compiled_vs_raw_predict"] = round(raw["seconds"] / raw["seconds_compiled"], 2)
            out["compiled_max_abs_diff"] = raw["max_abs_diff"]
            out["compiled_same_top_k"] = raw["same_top_k"]
    if "floor" in best:  # reading the candidates and writing the lists, nothing else
        floor = best["floor"]
        out["seconds_floor"] = round(floor["seconds"], 2)
        out["seconds_floor_read"] = round(floor["seconds_read"], 2)
        out["seconds_floor_write"] = round(floor["seconds_write"], 2)
        out["cpu_seconds_floor"] = round(floor["cpu_seconds"], 2)
        if raw:
            out["ratio_floor_vs_raw_predict"] = round(raw["seconds"] / floor["seconds"], 3)
    if "naive" in best:
        out["seconds_naive_pandas"] = round(best["naive"]["seconds"], 2)
        out["peak_rss_mb_naive"] = max(r["peak_rss_mb"] for r in measured["naive"])
        if "operator" in best:
            out["ratio_operator_vs_naive_pandas"] = round(best["naive"]["seconds"] / best["operator"]["seconds"], 3)
    digests = {best[p]["digest"] for p in ("operator", "operator_lightgbm", "naive") if p in best}
    out["same_lists"] = len(digests) == 1 if len(digests) else None
    return out


def print_report(r: dict[str, Any]) -> None:
    """A short table, then the JSON line (always last)."""
    who = f"{r['users']:,} {'fixed ' if r['fixed_users'] else ''}users"
    print(
        f"\nBatch inference benchmark: {r['rows']:,} candidate rows, {who}, {r['trees']} trees, "
        f"threads {r['threads']}, load {r['load_avg_1m']}-{r['load_avg_1m_end']}, fastest of {r['repeat']}"
    )
    print(f"  {'path':<56} {'seconds':>8} {'rows/s':>11} {'peak RSS MB':>12}")
    rows: list[tuple[str, float, float | None]] = []
    for path, name in (
        ("operator", "(a) operator (compiled trees when installed)"),
        ("operator_lightgbm", "(a') operator, LightGBM"),
    ):
        if f"seconds_{path}" in r:
            rows.append((f"{name} [{r[f'engine_{path}']}]", r[f"seconds_{path}"], r[f"peak_rss_mb_{path}"]))
            for part in ("read", "score", "write"):
                rows.append((f"      of which {part}", r[f"seconds_{path}_{part}"], None))
            rows.append(("      its CPU seconds, every thread", r[f"cpu_seconds_{path}"], None))
    if "seconds_operator_first_run" in r:
        rows.append(("(a) its first run of the version (+ first-batch check)", r["seconds_operator_first_run"], None))
    if "seconds_raw_predict" in r:
        rows.append(("(b) booster.predict, float64 matrix in memory", r["seconds_raw_predict"], r["peak_rss_mb_raw"]))
    if "seconds_compiled_predict" in r:
        rows.append(("(b') compiled predict, same matrix", r["seconds_compiled_predict"], None))
    if "seconds_floor" in r:
        rows.append(("(f) floor: read the candidates, write the lists", r["seconds_floor"], None))
        for part in ("read", "write"):
            rows.append((f"      of which {part}", r[f"seconds_floor_{part}"], None))
    if "seconds_naive_pandas" in r:
        rows.append(
            ("(c) naive pandas: read all, predict, sort, head(k)", r["seconds_naive_pandas"], r["peak_rss_mb_naive"])
        )
    for name, seconds, rss in rows:
        rate = f"{r['rows'] / seconds:,.0f}" if not name.startswith("      ") and seconds else ""
        print(f"  {name:<56} {seconds:>8.2f} {rate:>11} {'' if rss is None else f'{rss:.1f}':>12}")
    targets = [
        ("compiled / raw predict", r.get("ratio_compiled_vs_raw_predict"), ">= 5"),
        ("operator / raw predict", r.get("ratio_operator_vs_raw_predict"), ">= 2 with the extra"),
        ("operator LightGBM / raw predict", r.get("ratio_operator_lightgbm_vs_raw_predict"), ">= 0.9"),
        ("floor / raw predict", r.get("ratio_floor_vs_raw_predict"), "an upper bound: no scoring at all"),
    ]
    for name, value, target in targets:
        if value is not None:
            print(f"  throughput {name}: {value:.2f} (target {target})")
    if "ratio_operator_cpu_bound" in r:
        print(
            f"  at most {r['ratio_operator_cpu_bound']:.2f} with this work: its CPU seconds over "
            f"{os.cpu_count()} cores, if every core were busy all the time"
        )
    if "compiled_same_top_k" in r:
        print(
            f"  compiled vs LightGBM: max |diff| {r['compiled_max_abs_diff']:.3g}, "
            f"same top-k {r['compiled_same_top_k']}"
        )
    print(f"  identical written lists across operator paths: {r['same_lists']}")


def print_reports(reports: list[dict[str, Any]]) -> None:
    """Each model's table, then the JSON line (always last): the report, or ``{"cases": [...]}`` for several."""
    for r in reports:
        print_report(r)
    print(json.dumps(reports[0] if len(reports) == 1 else {"cases": reports}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=5_000_000, help="candidate rows to score (default: %(default)s)")
    p.add_argument(
        "--threads", type=int, help="OMP_NUM_THREADS for every path (default: unset, LightGBM uses every core)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per path; the fastest counts (default: %(default)s)")
    p.add_argument("--demo-users", type=int, default=3000, help="demo users to train on (default: %(default)s)")
    p.add_argument(
        "--rounds",
        type=lambda v: [int(x) for x in v.split(",") if x],
        help="grow exactly this many trees, early stopping off; several (20,200) measure one model each "
        "(default: the contract's, which stops at 20-40 trees)",
    )
    p.add_argument(
        "--users", type=int, help="spread the rows over this many users (default: a new user per ~30-row list)"
    )
    p.add_argument(
        "--paths",
        type=lambda v: [x for x in v.split(",") if x],
        default=["operator", "operator_lightgbm", "raw"],
        help="paths to measure, of operator, operator_lightgbm, raw, floor (read and write only), naive "
        "(default: %(default)s)",
    )
    p.add_argument("--profile", action="store_true", help="print a cProfile of the operator path to stderr")
    p.add_argument("--pipeline", type=Path, default=PIPELINE, help="the contract (default: the reference one)")
    p.add_argument(
        "--worker",
        choices=["setup", "model", "candidates", "compile", "baseline", "operator", "raw", "floor", "naive"],
        help=argparse.SUPPRESS,
    )
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.pipeline = args.pipeline.resolve()
    if args.rows < 1:
        p.error("--rows must be at least 1")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every worker
    quiet = args.worker in ("operator", "raw", "floor", "naive", "baseline")  # measured workers log only problems
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # transpiler notes, once per query
    logging.getLogger("airflow_ml_provider.trainer").setLevel(logging.WARNING)
    if quiet:
        _import_libraries()
    rounds = args.rounds[0] if args.rounds else None
    if args.worker == "setup":
        print(json.dumps(prepare(args.workdir, args.pipeline, args.rows, args.demo_users, rounds, args.users)))
    elif args.worker == "model":  # another model on the set-up's world, promoted to champion
        print(json.dumps(train_champion(args.workdir, args.pipeline, rounds)))
    elif args.worker == "candidates":  # rewrite the candidates of an existing set-up (bench/memory.py)
        from airflow_ml_provider.core.contract.spec import load_spec

        written, users = write_candidates(_warehouse(args.workdir), load_spec(args.pipeline), args.rows, args.users)
        print(json.dumps({"rows": written, "users": users}))
    elif args.worker == "compile":  # fill the compiled-model cache, so measured runs do not compile
        print(json.dumps({"compiled": _compiled_champion(_warehouse(args.workdir)) is not None}))
    elif args.worker == "baseline":  # an empty run's peak RSS (bench/memory.py)
        print(json.dumps(worker_baseline(args.workdir)))
    elif args.worker == "operator":
        print(json.dumps(worker_operator(args.workdir, args.pipeline, args.profile)))
    elif args.worker == "raw":
        print(json.dumps(worker_raw(args.workdir, args.pipeline)))
    elif args.worker == "floor":
        print(json.dumps(worker_floor(args.workdir, args.pipeline)))
    elif args.worker == "naive":
        print(json.dumps(worker_naive(args.workdir, args.pipeline)))
    else:
        print_reports(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
