"""What a training run needs, built once from the contract: the data export and the job.

The same ``TrainingJob`` (arguments and environment) runs as a local subprocess or as a
Vertex AI CustomJob, so a green local run means the job will run in the pipeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_ml_provider.core import storage
from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.core.contract.spec import PipelineSpec

TRAINER_MODULE = "airflow_ml_provider.core.training.trainer"
#: The export column flagging a (date, user, item) that ``inference.exclude_seen`` would exclude.
SEEN = "seen_before"
#: ``model.sample_users`` keeps a user when ``ABS(MOD(FARM_FINGERPRINT(user), SAMPLE_BUCKETS))`` is
#: below ``sample_users * SAMPLE_BUCKETS`` (the @sample_buckets parameter).
SAMPLE_BUCKETS = 1_000_000


def seen_before_sql(spec: PipelineSpec, outer: str) -> tuple[str, str]:
    """The join and the ``seen_before`` column for rows of ``outer`` (as_of_date, user, item).

    True where the user had, on or before the row's as-of date, the event ``inference.exclude_seen``
    excludes (a purchase, or any event): the rows batch inference never scores. Always FALSE for
    ``none``. The evaluation drops these rows from the lists and the truth, as inference does.
    """
    if spec.inference.exclude_seen == "none":
        return "", f"FALSE AS {SEEN}"
    from airflow_ml_provider.core.contract.references import render_source

    user, item = spec.entities.user, spec.entities.item
    purchased = "\n  WHERE event_type = 'purchase'" if spec.inference.exclude_seen == "purchased" else ""
    join = (
        f"\nLEFT JOIN (\n  SELECT {user}, {item}, MIN(DATE(event_ts)) AS first_seen\n"
        f"  FROM {render_source(spec, 'events')}{purchased}\n  GROUP BY {user}, {item}\n"
        f") AS seen ON seen.{user} = {outer}.{user} AND seen.{item} = {outer}.{item}"
    )
    return join, f"IFNULL(seen.first_seen <= {outer}.as_of_date, FALSE) AS {SEEN}"


def _in_windows(alias: str) -> str:
    """``alias``'s as_of_date within the fit, early-stopping or test dates (the query parameters).

    Not the purge gap between fit and early stopping (@fit_end < date < @early_start): the trainer
    would drop those rows, and in the reference contract they are 6 of the 27 dates it would read.
    Each window is a BETWEEN on the partition column, which BigQuery prunes by.
    """
    return (
        f"({alias}.as_of_date BETWEEN @train_start AND @fit_end"
        f" OR {alias}.as_of_date BETWEEN @early_start AND @train_end"
        f" OR {alias}.as_of_date BETWEEN @validation_start AND @validation_end)"
    )


def training_data_sql(spec: PipelineSpec) -> str:
    """GoogleSQL joining the feature table with labels over the training and validation dates.

    Identifiers come from the validated contract; dates travel as parameters
    (@train_start, @train_end, @validation_start, @validation_end).
    """
    user, item = spec.entities.user, spec.entities.item
    cols = ",\n  ".join(f"f.{validate_identifier(f.name, kind='feature')}" for f in spec.features)
    label = validate_identifier(spec.label.column, kind="label column")
    seen_join, seen = seen_before_sql(spec, "f")
    # The labels get the dates too, although the join implies them: BigQuery documents pruning
    # (and require_partition_filter accepts) a filter on the table's own partitioning column
    # (https://cloud.google.com/bigquery/docs/querying-partitioned-tables), and DuckDB then builds
    # its hash table on the narrow labels instead of the wide features (exporting 3M rows
    # peaked at 1.28 GB, now 0.71 GB: bench/training.py).
    return f"""SELECT
  f.as_of_date,
  f.{user},
  f.{item},
  {cols},
  l.{label} AS label,
  {seen}
FROM {validate_identifier(spec.feature_table)} AS f
JOIN {validate_identifier(spec.label.step.table)} AS l
  ON l.as_of_date = f.as_of_date AND l.{user} = f.{user} AND l.{item} = f.{item}{seen_join}
WHERE {_in_windows("f")}
  AND {_in_windows("l")}{_sampled_users(spec, "f")}"""


def _user_bucket(spec: PipelineSpec, alias: str) -> str:
    """``alias``'s user in 0..SAMPLE_BUCKETS-1 by FARM_FINGERPRINT: the shards' hash, the same on both backends."""
    return f"ABS(MOD(FARM_FINGERPRINT(CAST({alias}.{spec.entities.user} AS STRING)), {SAMPLE_BUCKETS}))"


def _sampled_users(spec: PipelineSpec, alias: str, *, fit: bool = True) -> str:
    """The filter keeping ``model.sample_users`` of the users on the fit and early-stopping dates and
    ``evaluation.sample_users`` of them on the test dates ('' when both are 1).

    By a hash of the user id, so a user's whole lists (every item, every date) are in or out, and
    the same users on both backends: FARM_FINGERPRINT is BigQuery's, registered on DuckDB with the
    same values (``core/inference/shards.py``). The test window's sample is the same users for the
    model and every baseline (the truth export filters with it too). ``fit=False``: only the test
    window's sample (the truth export keeps every fit-date positive).
    """
    train = fit and spec.model.sample_users < 1
    test = spec.evaluation.sample_users < 1
    if not (train or test):
        return ""
    bucket = _user_bucket(spec, alias)
    in_test = f"{alias}.as_of_date BETWEEN @validation_start AND @validation_end"
    keep_train = f"{bucket} < @sample_buckets" if train else "TRUE"
    keep_test = f"{bucket} < @test_sample_buckets" if test else "TRUE"
    return f"\n  AND IF({in_test}, {keep_test}, {keep_train})"


def training_columns(spec: PipelineSpec) -> dict[str, str]:
    """The columns ``training_data_sql`` returns (name -> GoogleSQL type), what model.py's transform() gets."""
    keys = {"as_of_date": "DATE", spec.entities.user: "STRING", spec.entities.item: "STRING"}
    return {**keys, **{f.name: f.type for f in spec.features}, "label": "FLOAT64"}


def check_model_hooks(spec: PipelineSpec, pipeline: str | Path) -> None:
    """Import the contract's model.py and try its hooks before any data is exported (no-op without one)."""
    from airflow_ml_provider.core.contract.model_hooks import check_hooks

    if spec.model.hooks:
        check_hooks(Path(pipeline).parent / spec.model.hooks, training_columns(spec))


def truth_data_sql(spec: PipelineSpec) -> str | None:
    """GoogleSQL reading what the evaluation compares lists with, or None: the truth and the popularity lists.

    The truth: every positive of the label table over the run's dates (``popularity_rank`` NULL).
    The reference labels.sql writes a row for every interaction in the horizon, candidate or
    not, for every user; the candidates' rows join the features (training), and all positive
    rows are the truth that end-to-end metrics and candidate recall use.
    The popularity lists (``popularity_rank`` 1..k, relevance NULL): the global popularity list of
    every user with a positive on a test date whom batch inference would serve that day
    (``core/evaluation/popularity.py``), the baseline of the gate and the fill of short lists.
    Needs the parameters of ``truth_params``. A pipeline with one list per as-of date (e.g.
    churn) has no end-to-end scope: None.
    """
    from airflow_ml_provider.core.evaluation.popularity import popularity_lists_sql, served_users_sql

    if spec.evaluation.lists != "user":
        return None
    user, item = spec.entities.user, spec.entities.item
    label = validate_identifier(spec.label.column, kind="label column")
    labels = validate_identifier(spec.label.step.table)
    seen_join, seen = seen_before_sql(spec, "l")
    test = "l.as_of_date BETWEEN @validation_start AND @validation_end"
    sampled = _sampled_users(spec, "l", fit=False).replace("\n ", "")
    users = (
        f"SELECT a.as_of_date, a.{user}\n"
        f"FROM (SELECT DISTINCT l.as_of_date, l.{user} FROM {labels} AS l WHERE l.{label} > 0 AND {test}"
        f"{sampled}) AS a\n"
        f"JOIN ({served_users_sql(spec, f'SELECT DISTINCT l.as_of_date FROM {labels} AS l WHERE {test}')}) AS s\n"
        f"  ON s.as_of_date = a.as_of_date AND s.{user} = a.{user}"
    )
    return f"""SELECT
  l.as_of_date,
  l.{user},
  l.{item},
  CAST(l.{label} AS FLOAT64) AS relevance,
  {seen},
  CAST(NULL AS INT64) AS popularity_rank
FROM {labels} AS l{seen_join}
WHERE l.{label} > 0
  AND {_in_windows("l")}{sampled}
UNION ALL
SELECT p.as_of_date, p.{user}, p.{item}, CAST(NULL AS FLOAT64), FALSE, p.popularity_rank
FROM (
{popularity_lists_sql(spec, users)}
) AS p"""


def truth_params(spec: PipelineSpec, run_date: dt.date) -> dict[str, object]:
    """The parameters of ``truth_data_sql``: the run's dates, the lookback and the evaluation's k."""
    return {
        **training_params(spec, run_date),
        "lookback_days": spec.windows.feature_lookback_days,
        "top_k": spec.evaluation.k,
    }


def training_params(spec: PipelineSpec, run_date: dt.date) -> dict[str, Any]:
    """The parameters of ``training_data_sql`` for a run on ``run_date``: its dates (and the user sample).

    train_start..fit_end is the fit window, early_start..train_end the early-stopping slice (the
    purge gap between them is not read); validation_* is the held-out test window.
    """
    train, valid = spec.training_dates(run_date)
    fit, early, _ = spec.evaluation_windows(run_date)
    params: dict[str, Any] = {
        "train_start": train[0],
        "fit_end": fit[-1],
        # Without an early-stopping slice, train_end is the last fit date: the range adds nothing.
        "early_start": early[0] if early else train[-1],
        "train_end": train[-1],
        "validation_start": valid[0],
        "validation_end": valid[-1],
    }
    if spec.model.sample_users < 1:
        params["sample_buckets"] = round(spec.model.sample_users * SAMPLE_BUCKETS)
    if spec.evaluation.sample_users < 1:
        params["test_sample_buckets"] = round(spec.evaluation.sample_users * SAMPLE_BUCKETS)
    return params


def model_version(run_date: dt.date, run_id: str) -> str:
    """A deterministic version per (run date, run): a retried task reuses it, so it reattaches."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{run_date:%Y%m%d}-{digest}"


@dataclass(frozen=True)
class TrainingJob:
    """One training run: where everything is and the exact command line."""

    model_name: str
    version: str
    run_dir: str  # artifacts/<model>/<version>
    pipeline_uri: str
    data_uri: str
    validation_from: dt.date
    hooks_uri: str | None = None
    git_sha: str | None = None
    champion_dir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    truth_uri: str | None = None

    @property
    def model_dir(self) -> str:
        """Where the trainer writes the envelope (``AIP_MODEL_DIR``)."""
        return storage.join(self.run_dir, "model")

    def args(self) -> list[str]:
        """The trainer's arguments, identical for the local and the Vertex AI runner."""
        out = [
            "--pipeline",
            self.pipeline_uri,
            "--train-data",
            self.data_uri,
            "--validation-from",
            self.validation_from.isoformat(),
            "--model-name",
            self.model_name,
            "--model-version",
            self.version,
        ]
        if self.hooks_uri:
            out += ["--hooks", self.hooks_uri]
        if self.git_sha:
            out += ["--git-sha", self.git_sha]
        if self.champion_dir:
            out += ["--champion-dir", self.champion_dir]
        if self.truth_uri:
            out += ["--truth-data", self.truth_uri]
        return out

    def env(self) -> dict[str, str]:
        """Vertex AI's environment conventions, set the same way locally."""
        return {"AIP_MODEL_DIR": self.model_dir, "AIP_TRAINING_DATA_URI": self.data_uri}

    def command(self) -> list[str]:
        """The local command line."""
        return [sys.executable, "-m", TRAINER_MODULE, *self.args()]
