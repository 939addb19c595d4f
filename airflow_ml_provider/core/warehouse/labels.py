"""BigQuery / Vertex AI job labels derived from the Airflow task that runs the job.

Label rules: at most 64 labels; keys and values at most 63 characters of lowercase
letters, digits, ``_`` and ``-``; keys start with a lowercase letter.
"""

from __future__ import annotations

import re

_BAD = re.compile(r"[^a-z0-9_-]+")


def sanitize_label(value: str, *, key: bool = False) -> str:
    """Lower-case ``value`` and replace what BigQuery labels forbid with ``-``."""
    out = _BAD.sub("-", str(value).lower()).strip("-")[:63]
    if key and not (out and out[0].isalpha()):
        out = ("k-" + out)[:63]
    return out


def job_labels(
    dag_id: str | None = None,
    task_id: str | None = None,
    run_id: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Labels that let a BigQuery or Vertex AI job be traced back to its Airflow task."""
    raw = {"airflow-dag": dag_id, "airflow-task": task_id, "airflow-run": run_id, **(extra or {})}
    labels = {"managed-by": "airflow-ml-provider"}
    for k, v in raw.items():
        if v and len(labels) < 64:
            labels.setdefault(sanitize_label(k, key=True), sanitize_label(v))
    return labels
