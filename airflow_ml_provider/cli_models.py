"""``airflow-ml`` commands on models: train (and the smoke run) and models list / promote / rollback."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from airflow_ml_provider.cli_common import (
    add_pipeline_argument,
    cli_artifacts,
    format_table,
    parse_date,
    platform_config,
    print_json,
    progress,
)
from airflow_ml_provider.cli_common import warehouse as cli_warehouse

log = logging.getLogger("airflow_ml")


def cmd_train(args: argparse.Namespace) -> int:
    """Validate the contract, (re)build features and labels if asked, train, evaluate, register and gate a candidate.

    Runs what the recsys_training DAG's train and evaluate_and_promote tasks run: the trainer
    where the connection says (a local subprocess, or a Vertex AI CustomJob for a gcp --conn-id,
    artifacts under the connection's artifact root), then the contract's gate, which promotes
    (unless --no-promote) or rejects the candidate. Prints the verdict and the gate's metric
    (--json: every metric as JSON).
    """
    import tempfile

    from airflow_ml_provider.backends import get_model_mirror, get_training_runner
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.registry.promotion import decide_promotion
    from airflow_ml_provider.core.training.job import check_model_hooks
    from airflow_ml_provider.core.training.run import train_model
    from airflow_ml_provider.core.warehouse.labels import sanitize_label

    trainer_log = logging.getLogger("airflow_ml_provider.backends.local_trainer")
    if not any(isinstance(f, TrainerLines) for f in trainer_log.filters):
        trainer_log.addFilter(TrainerLines())
    spec = load_spec(args.pipeline)
    log.info("Contract %s is valid (spec hash %s)", args.pipeline, spec.spec_hash)
    check_model_hooks(spec, args.pipeline)  # a broken model.py fails in seconds, before features or any export
    with tempfile.TemporaryDirectory(prefix="airflow-ml-smoke-") as tmp:
        if args.smoke:
            # A small synthetic world in a throwaway warehouse: minutes, no cloud, same code.
            args.warehouse, args.conn_id = Path(tmp) / "smoke.duckdb", None
            # Enough days that the first training date has its whole feature lookback: no history warnings.
            first = spec.training_dates(args.date)[0][0]
            days = max(60, (args.date - first).days + spec.windows.feature_lookback_days + 1)
            world = generate(DemoConfig(users=400, items=120, days=days, end_date=args.date))
            warehouse = cli_warehouse(args, create=True)
            for name in ("users", "items", "events"):
                warehouse.replace_table(name, getattr(world, name))
            log.info("Smoke run: seeded %d events into %s", world.events.num_rows, args.warehouse)
        config = platform_config(args)
        _check_backend(args, config.backend)
        warehouse = cli_warehouse(args)
        if args.build_features or args.smoke:
            dates = [d for window in spec.training_dates(args.date) for d in window]
            with progress(f"building features and labels for {len(dates)} as-of dates"):
                build_features(warehouse, spec, args.sql_dir, dates, labels=True, logger=log)
        if args.artifacts or args.smoke:
            root = storage.to_uri(args.artifacts or Path(tmp) / "artifacts")
        else:
            root = config.artifacts_uri
        version, run_id = cli_version(args.date, smoke=args.smoke)
        log.info("Version %s: run date and a hash of the run id %s, as the training DAG names them", version, run_id)
        runner = get_training_runner(config, poll_interval=args.poll_interval)
        mirror = get_model_mirror(config)
        with progress(f"training {spec.name} {version}"):
            trained = train_model(
                warehouse,
                spec,
                args.pipeline,
                runner,
                run_date=args.date,
                version=version,
                artifacts_root=root,
                git_sha=args.git_sha,
                labels={"managed-by": "airflow-ml-cli", "airflow-ml-run": sanitize_label(run_id)},
                artifacts=cli_artifacts(args),
                mirror=mirror,
                logger=log,
            )
        decision = decide_promotion(
            ModelRegistry(warehouse),
            spec,
            version,
            blessed_by="airflow-ml train",
            promote=args.promote,
            mirror=mirror,
            logger=log,
        )
    summary = {**_train_summary(trained, decision), "run_id": run_id}
    if args.json:
        print_json(summary)
    else:
        for line in train_lines(summary, trained):
            print(line)
    return 0 if decision.promoted or not args.require_pass else 1


class TrainerLines(logging.Filter):
    """The trainer subprocess's lines as a person reads them in a terminal (a task log keeps them whole).

    Drops the raw result JSON and the phase timings (the summary prints what matters; ``--json``
    prints the rest; ``bench/training.py`` reads the phases itself) and the trainer's own
    timestamp, which repeats the CLI's.
    """

    _STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:INFO )?")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "[trainer] %s" or not isinstance(record.args, tuple) or len(record.args) != 1:
            return True
        line = self._STAMP.sub("", str(record.args[0]))
        if line.startswith("{") or line.startswith("Trainer phases: "):
            return False
        record.args = (line,)
        return True


def cli_version(run_date: dt.date, *, smoke: bool = False, now: dt.datetime | None = None) -> tuple[str, str]:
    """The version and run id of a CLI training run: the DAG's scheme (``YYYYMMDD-<hash of the run id>``).

    The run id says where the model came from (``cli__<UTC time>``, ``smoke__`` for --smoke), as
    a DAG run's ``scheduled__``/``manual__`` does; the version stays in the one scheme the
    registry, the pages and ``models promote`` know.
    """
    from airflow_ml_provider.core.training.job import model_version

    run_id = f"{'smoke' if smoke else 'cli'}__{(now or dt.datetime.now(dt.UTC)).isoformat()}"
    return model_version(run_date, run_id), run_id


def _check_backend(args: argparse.Namespace, backend: str) -> None:
    """``--backend`` only confirms where the connection trains: it cannot send a gcp warehouse's data to a laptop."""
    expected = {"local": "local", "vertex": "gcp"}.get(args.backend or "", backend)
    if expected != backend:
        where = f"connection {args.conn_id!r}" if args.conn_id else "the embedded default"
        raise ValueError(
            f"--backend {args.backend} trains on the {expected} backend, but {where} is {backend}. The trainer runs "
            "where the warehouse is: pass --conn-id with an ml_platform connection whose backend is "
            f"{expected}, or leave --backend out."
        )


def _train_summary(trained: dict[str, Any], decision: Any) -> dict[str, Any]:
    k, scope, baseline = trained["k"], trained["scope"], trained["baseline_name"] or "candidate_popularity"
    return {
        "model_name": trained["model_name"],
        "version": trained["version"],
        "model_dir": trained["uri"],
        "test_dates": trained.get("test_dates"),
        "candidate_recall": _round(trained.get("candidate_recall")),
        f"model@{k} ({scope})": {m: _round(v) for m, v in trained["model"].items()},
        f"{baseline}@{k} ({scope})": {m: _round(v) for m, v in trained["baseline"].items()},
        "lift_ci": trained.get("lift_ci"),
        "baselines": trained.get("baselines"),
        **({"vertex_model": trained["vertex_model"]} if "vertex_model" in trained else {}),
        "gate_outcome": decision.outcome,
        "gate_passes": decision.passes,
        "promoted": decision.promoted,
        "reasons": decision.reasons,
    }


def train_lines(summary: dict[str, Any], trained: dict[str, Any]) -> list[str]:
    """What a person reads after ``train``: the verdict and the gate's metric in one line, then where the model is."""
    k, scope = trained["k"], trained["scope"]
    baseline = str(trained["baseline_name"] or "candidate_popularity")
    model, base = trained["model"], trained["baseline"]  # unrounded, so the lift is the gate's
    if summary["promoted"]:
        verdict = "promoted to champion"
    elif summary["gate_outcome"] == "promote":
        verdict = "passed the gate, not promoted (--no-promote)"
    elif summary["gate_outcome"] == "no_decision":
        verdict = "not judged: too few lists for the gate"
    else:
        verdict = "rejected by the gate"
    lift = ""
    ci = summary.get("lift_ci") or {}
    metric = str(ci.get("metric") or "ndcg")  # the gate's metric
    if isinstance(model.get(metric), float) and isinstance(base.get(metric), float) and base[metric]:
        lift = f" ({model[metric] / base[metric] - 1:+.1%}"
        if isinstance(ci.get("low"), float) and isinstance(ci.get("high"), float):
            lift += f", {ci.get('confidence', 0.95):.0%} CI {ci['low']:+.1%} to {ci['high']:+.1%}"
        lift += ")"
    dates = summary.get("test_dates") or []
    window = f", test {dates[0]}..{dates[-1]}" if dates else ""
    recall = f", recall@{k} {model['recall']:.4f}" if isinstance(model.get("recall"), float) else ""
    candidates = summary.get("candidate_recall")
    cand = f", candidate recall {candidates:.4f}" if isinstance(candidates, float) else ""
    vertex = f" (Vertex AI {summary['vertex_model']})" if "vertex_model" in summary else ""
    return [
        f"{summary['model_name']} {summary['version']} {verdict}: {metric}@{k} {_num(model.get(metric))} vs "
        f"{baseline.replace('_', ' ')} {_num(base.get(metric))}{lift}{recall}{cand} ({scope}{window})",
        *(f"  gate: {reason}" for reason in summary["reasons"] if not summary["promoted"]),
        f"  model: {summary['model_dir']}{vertex}",
        "  --json prints every metric, the baselines and the gate's reasons",
    ]


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def cmd_models(args: argparse.Namespace) -> int:
    """List model versions with their metrics, promote a version to champion, or roll the champion back."""
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.exceptions import MLProviderError

    registry = ModelRegistry(cli_warehouse(args), artifact_root=platform_config(args).artifacts_uri)
    name = args.model or _spec_name(args)
    if args.action in ("rollback", "promote"):
        from airflow_ml_provider.backends import get_model_mirror
        from airflow_ml_provider.core.registry.promotion import promote_version, roll_back

        mirror = get_model_mirror(platform_config(args))
        if args.action == "promote":
            if not args.version:
                raise MLProviderError("models promote needs a VERSION: one of `airflow-ml models list`.")
            moved = promote_version(
                registry, name, args.version, blessed_by="airflow-ml models promote", reason="by hand", mirror=mirror
            )
            said = "promoted"
        else:
            moved = roll_back(registry, name, blessed_by="airflow-ml models rollback", mirror=mirror)
            said = "was rolled back"
        if args.json:
            print_json({**moved.record.as_dict(), **({"vertex_model": moved.mirror} if moved.mirror else {})})
        else:
            alias = f"; Vertex AI alias champion -> {moved.mirror}" if moved.mirror else ""
            print(f"{name}: champion is now {moved.record.version} ({said}){alias}")
        return 0
    records = registry.list(name)
    if not records and args.model:
        raise MLProviderError(
            f"no model named {name!r} is registered. Check --model; `airflow-ml models list` "
            "without --model lists the contract's model."
        )
    if args.json:
        print_json([r.as_dict() for r in records])
        return 0
    if not records:
        print(f"No versions of {name} registered yet. Train one: airflow-ml train")
        return 0
    # ndcg and recall of the gate's scope (all active users unless the contract says otherwise) on the
    # held-out test window, the baseline the gate chose (the strongest simple ranker by default);
    # cand_recall is the share of next-horizon interactions among the candidates.
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else "-"  # noqa: E731
    body = []
    for r in records:
        m = r.metrics or {}
        model, base = m.get("model", {}), m.get("baseline", {})
        body.append(
            (
                r.version,
                r.status,
                m.get("scope", "candidates"),
                fmt(model.get("ndcg")),
                fmt(base.get("ndcg")),
                str(m.get("baseline_name") or "-").replace("_", " "),
                fmt(model.get("recall")),
                fmt(m.get("candidate_recall")),
                model.get("users", model.get("lists", "-")),
                f"{r.created_at:%Y-%m-%d %H:%M}",
            )
        )
    header = ("version", "status", "scope", "ndcg", "baseline", "of", "recall", "cand_recall", "users", "created")
    for line in format_table(body, header, right=("ndcg", "baseline", "recall", "cand_recall", "users")):
        print(line)
    return 0


def _spec_name(args: argparse.Namespace) -> str:
    from airflow_ml_provider.cli_common import pipeline_spec, resolve_pipeline

    resolve_pipeline(args)
    return pipeline_spec(args).name


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def add_models_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register train and models."""
    train = sub.add_parser(
        "train", parents=[common], help="validate, build features, train, evaluate", description=cmd_train.__doc__
    )
    add_pipeline_argument(train)
    train.add_argument("--sql-dir", type=Path, help="folder the contract's SQL paths are in (default: ROOT/sql)")
    train.add_argument("--date", type=parse_date, default=dt.date(2026, 3, 31), help="run date (default: %(default)s)")
    train.add_argument(
        "--backend",
        choices=["local", "vertex"],
        help="where the trainer runs: always where the connection says (vertex for a gcp --conn-id); "
        "given, it is checked against the connection",
    )
    train.add_argument(
        "--poll-interval",
        type=float,
        default=30.0,
        help="seconds between Vertex AI job state checks (default: %(default)s)",
    )
    train.add_argument("--smoke", action="store_true", help="train on a small synthetic world in a temp dir")
    train.add_argument("--build-features", action="store_true", help="(re)build features and labels first")
    train.add_argument("--no-promote", dest="promote", action="store_false", help="register only, never promote")
    train.add_argument("--require-pass", action="store_true", help="exit 1 when the evaluation gate fails")
    train.add_argument("--git-sha", default=None, help="recorded with the model (CI passes its commit)")
    train.add_argument(
        "--json", action="store_true", help="print the whole summary as JSON (metrics, baselines, gate reasons)"
    )
    train.add_argument(
        "--artifacts", type=Path, help="artifact root (default: $AIRFLOW_ML_HOME/artifacts; a temp dir with --smoke)"
    )
    train.set_defaults(func=cmd_train)

    models = sub.add_parser(
        "models",
        parents=[common],
        help="list model versions, promote one, or roll back the champion",
        description=cmd_models.__doc__,
        epilog="Examples:\n  airflow-ml models list\n  airflow-ml models promote 20260331-1a2b3c4d\n"
        "  airflow-ml models rollback",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("version", nargs="?", metavar="VERSION", help="the version to promote (models promote)")
    models.add_argument("--model", help="model name (default: the contract's name)")
    add_pipeline_argument(models, "pipeline.yaml, read for the model name")
    models.add_argument("--json", action="store_true", help="print as JSON")
    models.set_defaults(func=cmd_models, lazy_pipeline=True)
