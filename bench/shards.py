"""Sharded batch inference benchmark: wall time of N=2 parallel shard tasks + publish vs N=1, on one machine.

Set-up is bench/batch_inference.py's (a child process): a trained demo champion and ``--rows``
generated candidate rows for 2026-04-01 in a DuckDB file. Then each path runs the steps of the
recsys_batch_inference DAG as its tasks run them, one step per fresh process, outside a
scheduler, through the core functions the operators call (``core.inference.sharded``):

- N=1: ``plan_shards``, the one ``score_shard``, the publish (``run_batch_inference`` with
  ``publish_shards``), one after the other.
- N=2: the plan, then both shards started together (two processes, as two mapped task
  instances on two worker slots), then the publish.

Each step process imports the operators' module first, as a task process does, so its
start-up costs what a task's does (Airflow's imports included). Wall time counts from the
plan's start to the publish's end. Both paths write the same lists (checked by digest). Each
step process also reports its CPU seconds, split into start-up and imports vs its work, so the
JSON says how much of N=2's time no number of shards can shrink. The default ``--rows`` is large
enough that scoring, not start-up, is most of a task's CPU (at 2M rows start-up, model loading,
plan and publish were about 2/3 of it). The last line of output is JSON.

    .venv/bin/python bench/shards.py [--rows 20000000] [--threads 1] [--repeat 1]
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
BATCH_BENCH = Path(__file__).with_name("batch_inference.py")
PREDICTION_DATE = "2026-04-01"  # bench/batch_inference.py's generated day

from _common import recommendations_digest  # noqa: E402
from _common import warehouse as _warehouse  # noqa: E402

log = logging.getLogger("bench.shards")


def worker(step: str, workdir: Path, pipeline: Path, run_id: str, payload: str) -> dict[str, Any]:
    """One step: ``plan`` (payload: the shard count), ``score`` (payload: the plan's tasks and a shard)
    or ``publish`` (payload: the plan's tasks and the shards' results).
    """
    import airflow_ml_provider.operators.inference  # noqa: F401  (a task process's imports, Airflow's included)
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.inference.batch import run_batch_inference
    from airflow_ml_provider.core.inference.sharded import plan_shards, publish_work, score_shard
    from airflow_ml_provider.core.inference.shards import ShardPlan

    cpu_imports = _cpu_seconds()  # interpreter start-up and the imports
    started = time.perf_counter()
    spec, warehouse, day = load_spec(pipeline), _warehouse(workdir), dt.date.fromisoformat(PREDICTION_DATE)
    if step == "plan":
        out: Any = plan_shards(warehouse, spec, day, int(payload)).tasks()
    else:
        data = json.loads(payload)
        plan = ShardPlan.from_tasks(data["plan"])
        if step == "score":
            out = score_shard(warehouse, spec, plan, int(data["shard"]), run_id)
        else:
            work = publish_work(spec, plan, data["results"])
            out = run_batch_inference(warehouse, spec, day, run_id=run_id, day_work=work)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_imports": cpu_imports,
        "cpu_work": _cpu_seconds() - cpu_imports,
        "out": out,
    }


def _cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) this process has used since it started."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, env=env, text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"bench worker {proc.args} failed (exit {proc.returncode}); see its log above.")
    return json.loads(out.strip().splitlines()[-1])


def sharded_run(env: dict[str, str], workdir: Path, pipeline: Path, shards: int, run_id: str) -> dict[str, Any]:
    """Plan, the shards in parallel processes, publish; wall seconds and the per-step seconds."""
    common = ["--workdir", str(workdir), "--pipeline", str(pipeline), "--run-id", run_id]
    started = time.perf_counter()
    plan = _result(_start(env, "--worker", "plan", *common, "--payload", str(shards)))
    tasks = plan["out"]
    procs = [
        _start(env, "--worker", "score", *common, "--payload", json.dumps({"plan": tasks, "shard": t["shard"]}))
        for t in tasks
    ]
    scored = [_result(p) for p in procs]
    results = [s["out"] for s in scored]
    published = _result(
        _start(env, "--worker", "publish", *common, "--payload", json.dumps({"plan": tasks, "results": results}))
    )
    steps = [plan, *scored, published]
    return {
        "seconds": time.perf_counter() - started,
        "seconds_shards": [round(s["seconds"], 2) for s in scored],
        "seconds_publish": round(published["seconds"], 2),
        # CPU seconds of all step processes: start-up and imports vs the steps' own work.
        "cpu_imports": round(sum(t["cpu_imports"] for t in steps), 2),
        "cpu_work": round(sum(t["cpu_work"] for t in steps), 2),
        "cpu_shards_work": [round(s["cpu_work"], 2) for s in scored],
        "rows_written": published["out"]["rows_written"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up once, then N=1 and N=2 alternately ``--repeat`` times; the fastest of each counts."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        workdir = Path(tmp)
        env = dict(os.environ)
        env.setdefault("AIRFLOW_HOME", str(workdir / "airflow"))  # the steps import Airflow as a task does
        setup_cmd = [sys.executable, str(BATCH_BENCH), "--worker", "setup", "--workdir", str(workdir)]
        setup_cmd += ["--pipeline", str(args.pipeline), "--rows", str(args.rows), "--demo-users", str(args.demo_users)]
        out = subprocess.run(setup_cmd, stdout=subprocess.PIPE, env=env, text=True, check=True)
        setup = json.loads(out.stdout.strip().splitlines()[-1])
        measured: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        digests: dict[int, str] = {}
        for i in range(args.repeat):
            for shards in measured:
                log.info("measuring N=%d, run %d/%d", shards, i + 1, args.repeat)
                run_id = f"bench__n{shards}_{i}"
                measured[shards].append(sharded_run(env, workdir, args.pipeline, shards, run_id))
                digests[shards] = recommendations_digest(_warehouse(workdir), PREDICTION_DATE)
    one, two = (min(runs, key=lambda r: r["seconds"]) for runs in measured.values())
    return {
        "rows": setup["rows"],
        "users": setup["users"],
        "trees": setup["trees"],
        "repeat": args.repeat,
        "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count(),
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_n1": round(one["seconds"], 2),
        "seconds_n2": round(two["seconds"], 2),
        "seconds_n1_shards": one["seconds_shards"],
        "seconds_n2_shards": two["seconds_shards"],
        "seconds_n2_publish": two["seconds_publish"],
        "ratio_n2_vs_n1": round(two["seconds"] / one["seconds"], 3),
        "cpu_imports_n1": one["cpu_imports"],
        "cpu_work_n1": one["cpu_work"],
        "cpu_imports_n2": two["cpu_imports"],
        "cpu_work_n2": two["cpu_work"],
        "cpu_shards_work_n2": two["cpu_shards_work"],
        "same_lists": digests[1] == digests[2],
    }


def print_report(r: dict[str, Any]) -> None:
    """A short summary, then the JSON line (always last)."""
    print(
        f"\nSharded inference benchmark: {r['rows']:,} candidate rows, {r['users']:,} users, {r['trees']} trees, "
        f"threads {r['threads']} per task, {r['cpus']} CPUs, load {r['load_avg_before'][0]} -> "
        f"{r['load_avg_after'][0]}, fastest of {r['repeat']}"
    )
    print(f"  N=1: {r['seconds_n1']:.2f}s (shard {r['seconds_n1_shards']})")
    print(f"  N=2: {r['seconds_n2']:.2f}s (shards {r['seconds_n2_shards']}, publish {r['seconds_n2_publish']}s)")
    for n in (1, 2):
        imports, work = r[f"cpu_imports_n{n}"], r[f"cpu_work_n{n}"]
        print(
            f"  N={n} CPU: {imports:.1f}s start-up and imports, {work:.1f}s work "
            f"({imports / max(imports + work, 1e-9):.0%} start-up)"
        )
    print(f"  N=2 / N=1 wall time: {r['ratio_n2_vs_n1']:.2f} (target <= 0.65); identical lists: {r['same_lists']}")
    print(json.dumps(r))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000_000, help="candidate rows to score (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS per task (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="runs per path; the fastest counts (default: %(default)s)")
    p.add_argument("--demo-users", type=int, default=3000, help="demo users to train on (default: %(default)s)")
    p.add_argument("--pipeline", type=Path, default=PIPELINE, help="the contract (default: the reference one)")
    p.add_argument("--worker", choices=["plan", "score", "publish"], help=argparse.SUPPRESS)
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--payload", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.pipeline = args.pipeline.resolve()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every task process
    logging.basicConfig(level=logging.WARNING if args.worker else logging.INFO, format="%(message)s")
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    if args.worker:
        print(json.dumps(worker(args.worker, args.workdir, args.pipeline, args.run_id, args.payload), default=str))
        return 0
    print_report(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
