"""The ``features`` and ``label`` checks: the SQL outputs the declared columns, types and keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_ml_provider.core.contract.spec import FEATURE_TYPES
from airflow_ml_provider.core.validate.sample import PARTITION

if TYPE_CHECKING:
    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.validate.report import Check, SampleRun, ValidationReport
    from airflow_ml_provider.core.warehouse.interface import Warehouse

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


def check_features(
    report: ValidationReport, spec: PipelineSpec, sql_dir: Path, sample: Warehouse, run: SampleRun
) -> Check:
    """The declared features equal the feature SQL's output columns and types; non-nullable ones have no NULLs."""
    from airflow_ml_provider.core.features.render import render_sql
    from airflow_ml_provider.core.warehouse.sql import output_columns

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


def check_label(report: ValidationReport, spec: PipelineSpec, sample: Warehouse, run: SampleRun) -> Check:
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
    allowed = ("INT64", "BOOL") if spec.model.ranking else ("INT64", "FLOAT64", "BOOL")
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
        f"WHERE f.{PARTITION} = @as_of AND l.{PARTITION} = @as_of",  # each table pruned by its own partition
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
