"""``airflow-ml`` commands for a project's files: validate a contract, scaffold a new pipeline (init)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from airflow_ml_provider.cli_common import add_pipeline_argument, default_sql_dir, print_json


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a pipeline contract, its SQL and model.py on a tiny generated sample, in seconds and with no cloud.

    Checks: the contract parses; the label and time windows are coherent; every SQL file the
    contract names parses as GoogleSQL and runs on DuckDB against a small demo world (in a
    throwaway warehouse: your real one is never touched); the declared features equal the
    feature SQL's output columns and types; the label joins the feature rows; model.py offers
    only the documented hooks. Exit code 0 when every check passes (or is skipped), 1 otherwise.
    """
    import tempfile

    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
    from airflow_ml_provider.core.validate.pipeline import validate_pipeline

    sql_dir = args.sql_dir or default_sql_dir(args.pipeline)
    with tempfile.TemporaryDirectory(prefix="airflow-ml-validate-") as tmp:
        report = validate_pipeline(
            args.pipeline, sql_dir, DuckDBWarehouse(Path(tmp) / "sample.duckdb", lock_timeout=30)
        )
    if args.conn_id:
        status, detail = check_connection_locations(args.conn_id)
        report.add(f"connection {args.conn_id}", status, detail)
    if args.json:
        print_json(report.as_dict())
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def check_connection_locations(conn_id: str) -> tuple[Literal["PASS", "FAIL", "SKIP"], str]:
    """Whether an ``ml_platform`` connection's dataset, staging bucket and Vertex AI region fit together (gcp)."""
    from airflow_ml_provider.exceptions import MLProviderError
    from airflow_ml_provider.hooks.ml_platform import MLPlatformHook

    hook = MLPlatformHook(ml_conn_id=conn_id)
    try:
        if hook.config.backend != "gcp":
            return "SKIP", f"backend {hook.config.backend}: nothing is billed, no locations to check"
        from google.api_core.exceptions import GoogleAPICallError

        try:
            hook.check_locations()
        except GoogleAPICallError as err:  # e.g. no storage.buckets.get: say which call was refused
            return "FAIL", f"could not read the locations of connection {conn_id!r}: {err}"
    except MLProviderError as err:
        return "FAIL", str(err)
    config = hook.config
    return "PASS", (
        f"dataset {config.project}:{config.dataset}, staging bucket {config.artifacts_uri} and Vertex AI "
        f"are in one location ({config.location})"
    )


def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a new pipeline NAME from a template: a contract, SQL that runs, a model.py and a DAG file.

    Files are written under ROOT (--dir, default: the current directory), laid out like this
    repo: ROOT/dags/NAME/pipeline.yaml, ROOT/dags/NAME/model.py, ROOT/dags/NAME_pipeline.py and
    ROOT/sql/NAME/*.sql. Nothing is overwritten: if any of these files exists, nothing is
    written. The scaffold passes `airflow-ml validate` as it is.

    Patterns: recsys (top-k items per user, a LightGBM ranker over generated candidates) and
    churn (one propensity score per user, a binary LightGBM model, written by the same
    operators as one row per user). The default pattern is NAME when NAME is a pattern's
    name, else recsys.
    """
    from airflow_ml_provider.core.scaffold import scaffold

    pattern = args.pattern or (args.name if args.name in ("recsys", "churn") else "recsys")
    root = args.dir
    written = scaffold(args.name, pattern, root)
    print(f"Scaffolded pipeline {args.name!r} (pattern {pattern}) in {root.resolve()}:")
    for path in written:
        print(f"  {path.relative_to(root)}")
    pipeline = Path("dags") / args.name / "pipeline.yaml"
    where = "" if root.resolve() == Path.cwd().resolve() else f"cd {root} && "
    print(f"Next: {where}airflow-ml validate --pipeline {pipeline}")
    return 0


def add_project_parsers(sub: Any) -> None:
    """Register validate and init (they need no warehouse)."""
    validate = sub.add_parser(
        "validate",
        help="check a contract, its SQL and model.py in seconds (no cloud)",
        description=cmd_validate.__doc__,
        epilog="Examples:\n  airflow-ml validate\n  airflow-ml validate --pipeline dags/churn/pipeline.yaml\n"
        "  airflow-ml validate --pipeline dags/recsys/pipeline.yaml --sql-dir sql --json\n"
        "  airflow-ml validate --conn-id ml_platform_default",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pipeline_argument(validate, "pipeline.yaml to check")
    validate.add_argument(
        "--sql-dir",
        type=Path,
        help="folder the contract's SQL paths are relative to (default: ROOT/sql for ROOT/dags/NAME/pipeline.yaml)",
    )
    validate.add_argument(
        "--conn-id",
        help="also check this ml_platform connection (gcp: dataset, staging bucket and Vertex AI region in one "
        "location; metadata reads only, nothing is billed)",
    )
    validate.add_argument("--json", action="store_true", help='print {"ok", "checks": [{check, status, detail}]}')
    validate.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors in the log")
    validate.set_defaults(func=cmd_validate)

    init = sub.add_parser(
        "init",
        help="scaffold a new pipeline (contract, SQL, model.py, DAG) that passes validate",
        description=cmd_init.__doc__,
        epilog="Examples:\n  airflow-ml init churn && airflow-ml validate --pipeline dags/churn/pipeline.yaml\n"
        "  airflow-ml init shop_recs --pattern recsys --dir ~/projects/ml\n"
        "  airflow-ml init winback --pattern churn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("name", metavar="NAME", help="pipeline name: lowercase letters, digits, underscores")
    init.add_argument(
        "--pattern", choices=["recsys", "churn"], help="template (default: NAME if it is a pattern, else recsys)"
    )
    init.add_argument(
        "--dir", type=Path, default=Path("."), help="project root holding dags/ and sql/ (default: current directory)"
    )
    init.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors in the log")
    init.set_defaults(func=cmd_init)
