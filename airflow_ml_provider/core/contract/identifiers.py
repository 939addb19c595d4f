"""Identifier validation: the only way a table, dataset or project name reaches SQL text.

Kept free of heavy imports (no sqlglot) so DAG files and hooks can use it at parse time.
"""

from __future__ import annotations

import re

from airflow_ml_provider.exceptions import IdentifierError

# BigQuery table and column names: letters, digits, underscores; must not start with a digit.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
# BigQuery dataset names: letters, digits, underscores, at most 1024 characters.
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
# Google Cloud project ids: 6-30 chars, lowercase letters, digits, hyphens; start with a letter.
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def validate_identifier(name: str, kind: str = "table") -> str:
    """Return ``name`` if it is a safe table/column identifier, else raise IdentifierError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise IdentifierError(
            f"{kind} name {name!r} is not a valid identifier: use letters, digits and "
            "underscores, starting with a letter or underscore (e.g. 'user_features')."
        )
    return name


def validate_dataset(name: str) -> str:
    """Return ``name`` if it is a valid BigQuery dataset (or DuckDB schema) name."""
    if not isinstance(name, str) or not _DATASET.fullmatch(name):
        raise IdentifierError(
            f"dataset name {name!r} is not valid: use letters, digits and underscores only (e.g. 'recsys')."
        )
    return name


def validate_project(name: str) -> str:
    """Return ``name`` if it is a valid Google Cloud project id."""
    if not isinstance(name, str) or not _PROJECT.fullmatch(name):
        raise IdentifierError(
            f"project id {name!r} is not valid: 6-30 lowercase letters, digits or hyphens, "
            "starting with a letter (e.g. 'my-ml-project')."
        )
    return name
