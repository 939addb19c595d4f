"""``airflow-ml validate``: check a pipeline contract, its SQL and model.py in seconds, with no cloud.

The checks are values, not exceptions: each is a ``Check`` (PASS, FAIL or SKIP with a
sentence that says what is wrong and the fix), gathered in a ``ValidationReport``. The SQL
runs for real, on DuckDB, against a tiny generated demo world in a warehouse the caller
provides (the CLI uses a throwaway file in a temp dir), exactly as the pipeline runs it:
rendered, transpiled, bound and written with ``Warehouse.replace_partition``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow_ml_provider.core.data_checks import sample_verdict
from airflow_ml_provider.core.spec import FEATURE_TYPES, PipelineSpec, SqlStep, load_spec
from airflow_ml_provider.core.warehouse import Warehouse

Status = Literal["PASS", "FAIL", "SKIP"]
PARTITION = "as_of_date"
#: Source roles the demo world can fill, and the demo table that fills each.
SAMPLE_TABLES = ("events", "items", "users")
#: Sample size: a few dozen users are enough for every step to return rows, and fast.
SAMPLE_USERS = 48
SAMPLE_ITEMS = 60
SAMPLE_END = dt.date(2026, 3, 31)
_MAX_SAMPLE_DAYS = 400
_RANKING = ("lambdarank", "rank_xendcg")


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``detail`` says what was found and, on FAIL, the fix."""

    check: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        """Plain values for JSON."""
        return asdict(self)


@dataclass
class ValidationReport:
    """All checks of one contract; ``ok`` unless a check failed (SKIP is not a failure)."""

    pipeline: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "FAIL" for c in self.checks)

    def add(self, check: str, status: Status, detail: str) -> Check:
        """Record a check and return it."""
        found = Check(check, status, detail)
        self.checks.append(found)
        return found

    def as_dict(self) -> dict[str, Any]:
        """``{"pipeline", "ok", "checks": [{check, status, detail}, ...]}`` for ``--json``."""
        return {"pipeline": self.pipeline, "ok": self.ok, "checks": [c.as_dict() for c in self.checks]}

    def lines(self) -> list[str]:
        """One human-readable line per check, then a verdict."""
        width = max((len(c.check) for c in self.checks), default=0)
        out = [f"{c.status:<4}  {c.check:<{width}}  {c.detail}" for c in self.checks]
        failed = [c.check for c in self.checks if c.status == "FAIL"]
        verdict = f"FAILED: {len(failed)} check(s) failed ({', '.join(failed)})" if failed else "OK: all checks passed"
        return [*out, f"{self.pipeline}: {verdict}"]


@dataclass
class _Run:
    """What the SQL steps produced on the sample, shared by the later checks."""

    as_of: dt.date
    ran: dict[str, int] = field(default_factory=dict)  # table -> rows written
    failed: set[str] = field(default_factory=set)  # tables whose step failed or was skipped
    rendered: dict[str, str] = field(default_factory=dict)  # table -> rendered SQL text


def sample_as_of(spec: PipelineSpec) -> dt.date:
    """The as-of date the SQL runs for: the newest one whose labels the sample can fill."""
    return SAMPLE_END - dt.timedelta(days=spec.windows.label_horizon_days)


def sample_days(spec: PipelineSpec) -> int:
    """Days of sample events: the feature lookback and the label horizon, plus a week of slack."""
    w = spec.windows
    return min(w.feature_lookback_days + w.label_horizon_days + 7, _MAX_SAMPLE_DAYS)


def validate_pipeline(pipeline: str | Path, sql_dir: str | Path, sample: Warehouse) -> ValidationReport:
    """Run every check on the contract at ``pipeline``; SQL paths are relative to ``sql_dir``.

    ``sample`` must be an empty, throwaway warehouse (DuckDB): it is seeded with a tiny demo
    world and the contract's tables are written into it.
    """
    pipeline, sql_dir = Path(pipeline), Path(sql_dir)
    report = ValidationReport(str(pipeline))
    try:
        spec = load_spec(pipeline)
    except Exception as err:  # the contract's own precise error (file, key path, fix)
        report.add("contract", "FAIL", str(err))
        for name in ("windows", "sample data", "sql", "features", "label", "data checks", "model.py"):
            report.add(name, "SKIP", "the contract does not parse; fix it first")
        return report
    report.add(
        "contract",
        "PASS",
        f"{spec.name}: {len(spec.steps)} feature step(s), {len(spec.features)} declared feature(s), "
        f"label {spec.label.step.table}.{spec.label.column}, objective {spec.model.objective}",
    )
    _guarded(report, "windows", lambda: check_windows(report, spec, sql_dir))
    run = _Run(as_of=sample_as_of(spec))
    if _seed_sample(report, spec, sample):
        for step in [*spec.steps, spec.label.step]:
            _run_step(report, spec, step, sql_dir, sample, run)
    else:
        report.add("sql", "SKIP", "no sample data to run the SQL on")
    _guarded(report, "features", lambda: check_features(report, spec, sql_dir, sample, run))
    _guarded(report, "label", lambda: check_label(report, spec, sample, run))
    failed = ", ".join(c.check for c in report.checks if c.status == "FAIL")
    skip = f"the SQL must run first; fix {failed}" if failed else ""
    _guarded(
        report,
        "data checks",
        lambda: report.add("data checks", *sample_verdict(sample, spec, run.as_of, skip_because=skip)),
    )
    _guarded(report, "model.py", lambda: check_model_hooks(report, spec, pipeline, sample, run))
    return report


def _guarded(report: ValidationReport, name: str, check: Callable[[], Check]) -> None:
    """Run a check; an unexpected error is that check's FAIL, never a crash of the whole report."""
    try:
        check()
    except Exception as err:
        report.add(name, "FAIL", _sentence(err))


# --- windows --------------------------------------------------------------------------------


def _params_used(step: SqlStep, sql_dir: Path, spec: PipelineSpec | None = None) -> set[str] | None:
    """The ``@params`` a step's SQL uses; None when it cannot be read or parsed (the SQL check says why)."""
    from airflow_ml_provider.core.features import render_sql
    from airflow_ml_provider.core.sql import referenced_params

    try:
        return referenced_params(render_sql(step, sql_dir, SAMPLE_END, spec), str(sql_dir / step.sql))
    except Exception:
        return None


def window_problems(spec: PipelineSpec, sql_dir: Path) -> list[str]:
    """Incoherent label and time windows, each a sentence with the fix; empty when coherent."""
    w, problems = spec.windows, []
    if w.training_days < w.validation_days:
        problems.append(
            f"windows.training_days ({w.training_days}) is shorter than windows.validation_days "
            f"({w.validation_days}): train on at least as many as-of dates as you validate on; "
            "raise training_days or lower validation_days"
        )
    per_user = spec.evaluation.lists == "user"
    for key, value in (("evaluation.k", spec.evaluation.k), ("inference.top_k", spec.inference.top_k)):
        if per_user and value > spec.candidates_per_user:
            problems.append(
                f"{key} ({value}) exceeds candidates_per_user ({spec.candidates_per_user}): every list is "
                f"shorter than {value}; raise candidates_per_user or lower {key}"
            )
    uses_lookback = False
    steps_used = [(step, _params_used(step, sql_dir, spec)) for step in spec.steps]
    for step, used in steps_used:
        if used is None:
            continue
        uses_lookback |= "lookback_days" in used
        if "label_horizon_days" in used:
            problems.append(
                f"{step.sql} uses @label_horizon_days: feature SQL must not look past @as_of "
                "(label leakage); only the label step may"
            )
        if "as_of" not in used:
            problems.append(
                f"{step.sql} does not use @as_of: a feature partition must only see data up to its "
                "as-of date; filter with `DATE(event_ts) <= @as_of`"
            )
    if all(used is not None for _, used in steps_used) and not uses_lookback:
        problems.append(
            f"no feature step uses @lookback_days, so windows.feature_lookback_days ({w.feature_lookback_days}) "
            "has no effect; filter events with `DATE(event_ts) > DATE_SUB(@as_of, INTERVAL @lookback_days DAY)`"
        )
    label_used = _params_used(spec.label.step, sql_dir, spec)
    if label_used is not None:
        for param, why in (
            ("as_of", "labels must look forward from each as-of date"),
            ("label_horizon_days", f"so labels ignore windows.label_horizon_days ({w.label_horizon_days})"),
        ):
            if param not in label_used:
                problems.append(
                    f"{spec.label.step.sql} does not use @{param}: {why}; count events in "
                    "`(@as_of, DATE_ADD(@as_of, INTERVAL @label_horizon_days DAY)]`"
                )
    return problems


def check_windows(report: ValidationReport, spec: PipelineSpec, sql_dir: Path) -> Check:
    """The label and time windows are coherent with each other and with the SQL that uses them."""
    problems = window_problems(spec, sql_dir)
    if problems:
        return report.add("windows", "FAIL", "; ".join(problems))
    w = spec.windows
    run = dt.date(2026, 3, 31)
    train, valid = spec.training_dates(run)
    needed = (run - train[0]).days + w.feature_lookback_days
    return report.add(
        "windows",
        "PASS",
        f"features look back {w.feature_lookback_days}d, labels {w.label_horizon_days}d ahead; a run on day D "
        f"trains on {len(train)} as-of dates D-{(run - train[0]).days}..D-{(run - train[-1]).days} and validates "
        f"on D-{(run - valid[0]).days}..D-{(run - valid[-1]).days} (time split, {w.label_horizon_days}d gap); "
        f"needs {needed} days of events",
    )


# --- sample data and SQL ----------------------------------------------------------------------


def _seed_sample(report: ValidationReport, spec: PipelineSpec, sample: Warehouse) -> bool:
    """Load a tiny demo world into ``sample`` under the contract's table and column names."""
    from airflow_ml_provider.core.demo import DemoConfig, generate
    from airflow_ml_provider.core.references import in_source_shape

    try:
        cfg = DemoConfig(
            users=SAMPLE_USERS,
            items=SAMPLE_ITEMS,
            days=sample_days(spec),
            end_date=SAMPLE_END,
            events_per_user_day=1.0,
        )
        world = generate(cfg)
        loaded = []
        for role, table in spec.sources.items():
            if role in SAMPLE_TABLES:
                rows = sample.replace_table(table, in_source_shape(spec, role, getattr(world, role)))
                loaded.append(f"{table} ({rows} rows)")
    except Exception as err:
        report.add("sample data", "FAIL", f"could not build the sample warehouse: {type(err).__name__}: {err}")
        return False
    unknown = sorted(set(spec.sources) - set(SAMPLE_TABLES))
    note = (
        f"; no sample for source role(s) {', '.join(unknown)}: the demo world has {', '.join(SAMPLE_TABLES)} only, "
        "so SQL reading those tables cannot run here"
        if unknown
        else ""
    )
    report.add(
        "sample data",
        "PASS",
        f"demo world of {cfg.users} users, {cfg.items} items, {cfg.days} days ({cfg.start_date}..{cfg.end_date}) "
        f"loaded as {', '.join(loaded) or 'nothing'}; SQL runs for as_of {sample_as_of(spec)}{note}",
    )
    return True


def _tables_read(sql: str, source: str) -> set[str]:
    from sqlglot import exp

    from airflow_ml_provider.core.sql import parse

    return {t.name for t in parse(sql, source).find_all(exp.Table)}


def _run_step(
    report: ValidationReport, spec: PipelineSpec, step: SqlStep, sql_dir: Path, sample: Warehouse, run: _Run
) -> Check:
    """Parse a step's SQL as GoogleSQL, transpile it and run it on the sample, writing its partition."""
    from airflow_ml_provider.core.features import render_sql
    from airflow_ml_provider.core.references import direct_source_reads, sentinel_functions
    from airflow_ml_provider.core.sql import bind_params, parse, to_duckdb

    name, source = f"sql {step.sql}", str(sql_dir / step.sql)
    try:
        direct = direct_source_reads(
            render_sql(step, sql_dir, run.as_of, functions=sentinel_functions(spec)), spec, source
        )
        if direct:
            run.failed.add(step.table)
            return report.add(
                name,
                "FAIL",
                f"names source table(s) {', '.join(direct)} directly; write {{{{ source('<role>') }}}} instead "
                f"(roles: {', '.join(f'{r} = {t}' for r, t in sorted(spec.sources.items()))}) so the table "
                "comes from pipeline.yaml",
            )
        text = render_sql(step, sql_dir, run.as_of, spec)
        parse(text, source)
        blocked = sorted(_tables_read(text, source) & run.failed)
        if blocked:
            run.failed.add(step.table)
            return report.add(
                name, "SKIP", f"parses as GoogleSQL; not run: it reads {', '.join(blocked)}, which failed"
            )
        bind_params(text, spec.query_params(run.as_of), source)
        to_duckdb(text, source)
        result = sample.replace_partition(
            step.table,
            PARTITION,
            run.as_of,
            text,
            spec.query_params(run.as_of),
            sql_source=source,
            cluster_by=tuple(step.cluster_by),
            allow_empty=True,
        )
    except Exception as err:
        run.failed.add(step.table)
        return report.add(name, "FAIL", _sentence(err))
    run.ran[step.table] = result.rows
    run.rendered[step.table] = text
    if result.rows == 0:
        return report.add(
            name,
            "PASS",
            f"parses as GoogleSQL and runs on DuckDB, but wrote 0 rows to {step.table} for {run.as_of} on the "
            "sample; check its joins and date filters",
        )
    return report.add(
        name, "PASS", f"parses as GoogleSQL and runs on DuckDB: {result.rows} rows in {step.table} for {run.as_of}"
    )


def _sentence(err: Exception) -> str:
    """An error as one line; the provider's errors already name the file and the fix."""
    from airflow_ml_provider.exceptions import MLProviderError

    text = str(err).strip()
    return text if isinstance(err, MLProviderError) else f"{type(err).__name__}: {text}"


# --- features ---------------------------------------------------------------------------------

_GOOGLESQL = {duck: google for google, ducks in FEATURE_TYPES.items() for duck in ducks}


def feature_problems(spec: PipelineSpec, columns: dict[str, str | None], source: str) -> list[str]:
    """Differences between the declared features and the feature SQL's output ``columns``.

    ``columns`` maps output name -> DuckDB type (None when only the names are known).
    """
    keys = [spec.entities.user, spec.entities.item]
    problems = [
        f"{source} does not output the entity key {k}; select it (the model's rows are keyed by {', '.join(keys)})"
        for k in keys
        if k not in columns
    ]
    produced = {c: t for c, t in columns.items() if c not in (*keys, PARTITION)}
    declared = {f.name: f for f in spec.features}
    for name in declared:
        if name not in produced:
            problems.append(
                f"feature {name} is declared in the contract but {source} does not output it; "
                f"add `... AS {name}` to its SELECT or remove {name} from `features`"
            )
    for name in produced:
        if name not in declared:
            problems.append(
                f"{source} outputs {name}, which is not a declared feature; declare it under `features` "
                "(name, type, nullable) or drop it from the SELECT"
            )
    for name, duck in produced.items():
        f = declared.get(name)
        if f is None or duck is None or duck in FEATURE_TYPES[f.type]:
            continue
        got = _GOOGLESQL.get(duck, duck)
        problems.append(
            f"feature {name} is declared {f.type} but {source} outputs {got}"
            f"{f' ({duck} on DuckDB)' if got != duck else ''}; CAST it AS {f.type} in the SQL or declare type: {got}"
        )
    return problems


def check_features(report: ValidationReport, spec: PipelineSpec, sql_dir: Path, sample: Warehouse, run: _Run) -> Check:
    """The declared features equal the feature SQL's output columns and types; non-nullable ones have no NULLs."""
    from airflow_ml_provider.core.features import render_sql
    from airflow_ml_provider.core.sql import output_columns

    step = spec.step(spec.feature_table)
    source = str(sql_dir / step.sql)
    if spec.feature_table in run.ran:
        columns: dict[str, str | None] = dict(sample.table_columns(spec.feature_table))
        how = "names and types"
    else:
        try:
            names = output_columns(render_sql(step, sql_dir, run.as_of, spec), source)
        except Exception as err:
            return report.add("features", "SKIP", f"{source} did not parse, so its columns are unknown: {err}")
        if "*" in names:
            return report.add(
                "features", "SKIP", f"{source} did not run on the sample and selects *, so its columns are unknown"
            )
        columns, how = dict.fromkeys(names), "names only (the SQL did not run, so types were not checked)"
    problems = feature_problems(spec, columns, source)
    if not problems and run.ran.get(spec.feature_table):
        problems = _null_problems(spec, sample, run.as_of, source)
    if problems:
        return report.add("features", "FAIL", "; ".join(problems))
    return report.add(
        "features",
        "PASS",
        f"the {len(spec.features)} declared features match the output of {source} ({how})"
        + "".join(f"; {name} skipped ({why})" for name, why in spec.skipped_features.items()),
    )


def _null_problems(spec: PipelineSpec, sample: Warehouse, as_of: dt.date, source: str) -> list[str]:
    """Non-nullable features with NULLs in the sample partition (serving would fail on them)."""
    strict = [f.name for f in spec.model_features if not f.nullable]
    if not strict:
        return []
    counts = ", ".join(f"COUNTIF({c} IS NULL) AS {c}" for c in strict)
    row = sample.query(
        f"SELECT {counts} FROM {spec.feature_table} WHERE {PARTITION} = @as_of",
        {"as_of": as_of},
        source=f"null counts of {spec.feature_table}",
    ).to_pylist()[0]
    return [
        f"feature {c} is declared nullable: false but {source} gives {n} NULL(s) on the sample; "
        f"wrap it in IFNULL(..., 0) or declare nullable: true"
        for c, n in row.items()
        if n
    ]


# --- label ------------------------------------------------------------------------------------


def check_label(report: ValidationReport, spec: PipelineSpec, sample: Warehouse, run: _Run) -> Check:
    """The label step outputs the keys and a numeric label column, and joins the feature rows."""
    table, column, source = spec.label.step.table, spec.label.column, spec.label.step.sql
    if table not in run.ran:
        return report.add("label", "SKIP", f"{source} did not run on the sample")
    columns = sample.table_columns(table)
    keys = [spec.entities.user, spec.entities.item]
    missing = [k for k in [*keys, column] if k not in columns]
    if missing:
        return report.add(
            "label",
            "FAIL",
            f"{source} does not output {', '.join(missing)}; labels are joined to features on "
            f"({PARTITION}, {', '.join(keys)}) and the model learns label.column {column!r}",
        )
    google = _GOOGLESQL.get(columns[column], columns[column])
    allowed = ("INT64", "BOOL") if spec.model.objective in _RANKING else ("INT64", "FLOAT64", "BOOL")
    if google not in allowed:
        return report.add(
            "label",
            "FAIL",
            f"label column {column} is {google} in {source}; objective {spec.model.objective} needs "
            f"{' or '.join(allowed)}; CAST it in the SQL",
        )
    if spec.feature_table not in run.ran:
        return report.add("label", "PASS", f"{source} outputs {column} ({google}); join not checked")
    d, user, item = run.as_of, spec.entities.user, spec.entities.item
    # The join of training_data_sql, on the keys only: the features check judges the feature columns.
    rows = sample.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT l.{column}) AS classes FROM {spec.feature_table} AS f "
        f"JOIN {table} AS l ON l.{PARTITION} = f.{PARTITION} AND l.{user} = f.{user} AND l.{item} = f.{item} "
        f"WHERE f.{PARTITION} = @as_of",
        {"as_of": d},
        source="labels joined to features",
    ).to_pylist()[0]
    features = run.ran[spec.feature_table]
    if features and not rows["n"]:
        return report.add(
            "label",
            "FAIL",
            f"none of the {features} feature rows of {d} has a label: {source} must output the same "
            f"({', '.join(keys)}) pairs as {spec.feature_table}",
        )
    return report.add(
        "label",
        "PASS",
        f"{source} outputs {column} ({google}); {rows['n']} of {features} feature rows of {d} have a label "
        f"({rows['classes']} distinct value(s) on the sample)",
    )


# --- model.py ---------------------------------------------------------------------------------


def check_model_hooks(
    report: ValidationReport, spec: PipelineSpec, pipeline: Path, sample: Warehouse, run: _Run
) -> Check:
    """model.py offers only the documented hooks, with the right signatures and return types."""
    from airflow_ml_provider.core.hooks import load_hooks

    beside = pipeline.parent / "model.py"
    if spec.model.hooks is None:
        if beside.exists():
            return report.add(
                "model.py",
                "FAIL",
                f"{beside} exists but the contract does not name it, so the pipeline ignores it; set "
                "`model.hooks: model.py` in the contract, or delete the file",
            )
        return report.add("model.py", "SKIP", "no model.hooks in the contract: the provider's defaults are used")
    path = pipeline.parent / spec.model.hooks
    try:
        hooks = load_hooks(path)
        params = hooks.params(_default_params(spec))
        detail = f"{path} offers only documented hooks; params() returns {len(params)} parameters"
        frame = _sample_frame(spec, sample, run)
        if frame is not None:
            detail += _check_transform(spec, hooks.transform, frame, str(path))
        else:
            detail += "; transform() not run: the sample has no feature rows matching the declared features"
    except Exception as err:
        return report.add("model.py", "FAIL", _sentence(err))
    return report.add("model.py", "PASS", detail)


def _default_params(spec: PipelineSpec) -> dict[str, Any]:
    from airflow_ml_provider.core.trainer import DEFAULT_PARAMS

    return {**DEFAULT_PARAMS, **spec.model.params, "objective": spec.model.objective}


def _sample_frame(spec: PipelineSpec, sample: Warehouse, run: _Run) -> Any:
    """The sample's serving rows (keys and features), or None when the feature step gave none."""
    from airflow_ml_provider.core.scoring import candidate_features_sql

    if not run.ran.get(spec.feature_table):
        return None
    try:
        return sample.query_df(candidate_features_sql(spec), {"as_of": run.as_of}, source="sample features")
    except Exception:
        return None  # the features check reports what is wrong with the columns


def _check_transform(spec: PipelineSpec, transform: Callable[[Any], Any], frame: Any, source: str) -> str:
    """Run transform() on the sample rows and encode the result as training and serving would."""
    from airflow_ml_provider.core.encoding import encode, fit_categories

    out = transform(frame.copy())
    encode(out, spec.features, fit_categories(out, spec.features), source=f"{source}: transform() output")
    return f"; transform() keeps the {len(spec.features)} declared features encodable on {len(frame)} sample rows"
