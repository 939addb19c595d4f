"""``airflow-ml`` commands on models: train (and the smoke run) and models list / promote / rollback."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from airflow_ml_provider.cli_common import add_pipeline_argument, format_table, parse_date, print_json, progress
from airflow_ml_provider.cli_common import warehouse as cli_warehouse

log = logging.getLogger("airflow_ml")


def cmd_train(args: argparse.Namespace) -> int:
    """Validate the contract, build features and labels, train, evaluate and register a candidate."""
    import tempfile

    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.features.build import build_features
    from airflow_ml_provider.core.training.job import check_model_hooks

    spec = load_spec(args.pipeline)
    log.info("Contract %s is valid (spec hash %s)", args.pipeline, spec.spec_hash)
    if args.backend == "vertex" and not args.conn_id:
        raise ValueError("--backend vertex needs --conn-id: an ml_platform connection with backend gcp")
    check_model_hooks(spec, args.pipeline)  # a broken model.py fails in seconds, before features or any export
    with tempfile.TemporaryDirectory(prefix="airflow-ml-smoke-") as tmp:
        if args.smoke:
            # A small synthetic world in a throwaway warehouse: minutes, no cloud, same code.
            args.warehouse, args.conn_id = Path(tmp) / "smoke.duckdb", None
            world = generate(DemoConfig(users=400, items=120, days=60, end_date=args.date))
            warehouse = cli_warehouse(args, create=True)
            for name in ("users", "items", "events"):
                warehouse.replace_table(name, getattr(world, name))
            log.info("Smoke run: seeded %d events into %s", world.events.num_rows, args.warehouse)
        warehouse = cli_warehouse(args)
        train_dates, valid_dates = spec.training_dates(args.date)
        dates = [*train_dates, *valid_dates]
        if args.build_features or args.smoke:
            log.info("Building features and labels for %d as-of dates", len(dates))
            with progress(f"building features and labels for {len(dates)} as-of dates"):
                build_features(warehouse, spec, args.sql_dir, dates, labels=True)
        artifacts = args.artifacts or (Path(tmp) / "artifacts" if args.smoke else None)
        summary = _train_and_register(args, spec, warehouse, artifacts)
    print_json(summary)
    return 0 if summary["promoted"] or not args.require_pass else 1


def _train_and_register(args, spec, warehouse, artifacts):  # type: ignore[no-untyped-def]
    """Export, train in a subprocess, register, gate. Returns a JSON-able summary."""
    from airflow_ml_provider.backends.local_trainer import LocalTrainingRunner
    from airflow_ml_provider.core import storage
    from airflow_ml_provider.core.contract.config import PlatformConfig
    from airflow_ml_provider.core.evaluation.gate import evaluate_envelope_metrics
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.core.training.envelope import read_envelope
    from airflow_ml_provider.core.training.job import (
        TrainingJob,
        training_data_sql,
        training_params,
        truth_data_sql,
    )

    registry = ModelRegistry(warehouse)
    registry.ensure()
    champion = registry.champion(spec.name)
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S") + ("-smoke" if args.smoke else "-cli")
    root = storage.to_uri(artifacts) if artifacts else PlatformConfig().artifacts_uri
    run_dir = storage.join(root, spec.name, version)
    params = training_params(spec, args.date)
    data_uri = warehouse.export_parquet(training_data_sql(spec), params, storage.join(run_dir, "data"))
    truth_sql = truth_data_sql(spec)
    truth_uri = warehouse.export_parquet(truth_sql, params, storage.join(run_dir, "truth")) if truth_sql else None
    hooks = args.pipeline.parent / spec.model.hooks if spec.model.hooks else None
    job = TrainingJob(
        model_name=spec.name,
        version=version,
        run_dir=run_dir,
        pipeline_uri=storage.to_uri(args.pipeline),
        data_uri=data_uri,
        validation_from=params["validation_start"],
        hooks_uri=storage.to_uri(hooks) if hooks else None,
        git_sha=args.git_sha,
        champion_dir=champion.uri if champion else None,
        truth_uri=truth_uri,
    )
    with progress(f"training {spec.name} {version}"):
        LocalTrainingRunner().run(job)
    envelope = read_envelope(job.model_dir)
    registry.register_trained(envelope, job.model_dir)
    gate = evaluate_envelope_metrics(envelope.metrics, spec.evaluation)
    for reason in gate.reasons:
        log.info("Gate: %s", reason)
    if gate.passes and args.promote:
        registry.promote(spec.name, version, blessed_by="airflow-ml train", reason=" ".join(gate.reasons))
    k, metrics = spec.evaluation.k, envelope.metrics
    scope, baseline = metrics.get("scope", "candidates"), metrics.get("baseline_name", "candidate_popularity")
    return {
        "model_name": spec.name,
        "version": version,
        "model_dir": job.model_dir,
        "test_dates": metrics.get("test_dates"),
        "candidate_recall": _round(metrics.get("candidate_recall")),
        f"model@{k} ({scope})": {m: _round(v) for m, v in metrics["model"].items()},
        f"{baseline}@{k} ({scope})": {m: _round(v) for m, v in metrics["baseline"].items()},
        "lift_ci": metrics.get("lift_ci"),
        "gate_outcome": gate.outcome,
        "gate_passes": gate.passes,
        "promoted": bool(gate.passes and args.promote),
        "reasons": gate.reasons,
    }


def cmd_models(args: argparse.Namespace) -> int:
    """List model versions with their metrics, promote a version to champion, or roll the champion back."""
    from airflow_ml_provider.core.registry.models import ModelRegistry
    from airflow_ml_provider.exceptions import MLProviderError

    registry = ModelRegistry(cli_warehouse(args))
    name = args.model or _spec_name(args)
    if args.action in ("rollback", "promote"):
        if args.action == "promote":
            if not args.version:
                raise MLProviderError("models promote needs a VERSION: one of `airflow-ml models list`.")
            record = registry.promote(name, args.version, blessed_by="airflow-ml models promote", reason="by hand")
            said = "promoted"
        else:
            record = registry.rollback(name, blessed_by="airflow-ml models rollback")
            said = "was rolled back"
        _set_vertex_alias(args, name, record.version)
        if args.json:
            print_json(record.as_dict())
        else:
            print(f"{name}: champion is now {record.version} ({said})")
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
    # ndcg and recall of the gate's scope (end-to-end unless the contract says otherwise) on the
    # held-out test window; cand_recall is the share of next-horizon interactions among the candidates.
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
                fmt(model.get("recall")),
                fmt(m.get("candidate_recall")),
                model.get("lists", "-"),
                f"{r.created_at:%Y-%m-%d %H:%M}",
            )
        )
    header = ("version", "status", "scope", "ndcg", "baseline", "recall", "cand_recall", "lists", "created")
    for line in format_table(body, header, right=("ndcg", "baseline", "recall", "cand_recall", "lists")):
        print(line)
    return 0


def _spec_name(args: argparse.Namespace) -> str:
    from airflow_ml_provider.cli_common import resolve_pipeline
    from airflow_ml_provider.core.contract.spec import load_spec

    resolve_pipeline(args)
    return load_spec(args.pipeline).name


def _set_vertex_alias(args: argparse.Namespace, name: str, version: str) -> None:
    """On the gcp backend the Vertex AI Model Registry alias follows the champion."""
    if not args.conn_id:
        return
    from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

    config = MLPlatformHook(ml_conn_id=args.conn_id).config
    if config.backend == "gcp":
        from airflow_ml_provider.backends.vertex import VertexTrainingRunner

        VertexTrainingRunner(config).set_alias(name, version)


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
    train.add_argument("--backend", choices=["local", "vertex"], default="local", help="where the trainer runs")
    train.add_argument("--smoke", action="store_true", help="train on a small synthetic world in a temp dir")
    train.add_argument("--build-features", action="store_true", help="(re)build features and labels first")
    train.add_argument("--no-promote", dest="promote", action="store_false", help="register only, never promote")
    train.add_argument("--require-pass", action="store_true", help="exit 1 when the evaluation gate fails")
    train.add_argument("--git-sha", default=None, help="recorded with the model (CI passes its commit)")
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
