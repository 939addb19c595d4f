"""Identifier validation: the only gate between a name in config and SQL text."""

from __future__ import annotations

import pytest

from airflow_ml_provider.core.contract.identifiers import validate_dataset, validate_identifier, validate_project
from airflow_ml_provider.exceptions import ContractError, IdentifierError

INJECTIONS = [
    "t; DROP TABLE x",
    "a.b",
    "",
    "1abc",
    "`events`",
    "events`; DROP TABLE x; --",
    '"events"',
    "'events'",
    "ev ents",
    "events--",
    "évents",
    "events\u200b",  # zero-width space
    "\uff45vents",  # full-width e
    "events\x00",
]


# --- tables and columns ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["events", "user_features", "_tmp", "T2", "a", "a" * 300])
def test_valid_table_names_are_returned_unchanged(name):
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", [*INJECTIONS, "a" * 301, None, 42])
def test_unsafe_table_names_are_rejected(name):
    with pytest.raises(IdentifierError) as info:
        validate_identifier(name, kind="source table")
    assert "source table" in str(info.value)
    assert repr(name) in str(info.value)


def test_identifier_error_is_a_contract_error_and_a_value_error():
    with pytest.raises(ContractError):
        validate_identifier("a.b")
    with pytest.raises(ValueError):
        validate_identifier("a.b")


@pytest.mark.parametrize("name", ["recsys", "Recsys_2", "123", "_x", "a" * 1024])
def test_valid_dataset_names(name):
    assert validate_dataset(name) == name


@pytest.mark.parametrize("name", [n for n in INJECTIONS if n != "1abc"] + ["a" * 1025, "my-dataset"])
def test_unsafe_dataset_names_are_rejected(name):
    with pytest.raises(IdentifierError, match="dataset name"):
        validate_dataset(name)


@pytest.mark.parametrize("name", ["my-ml-project", "abcdef", "p12345", "a" * 30, "proj-2026-x"])
def test_valid_project_ids(name):
    assert validate_project(name) == name


@pytest.mark.parametrize(
    "name",
    [
        *INJECTIONS,
        "My-Project",  # upper case
        "abcde",  # too short
        "a" * 31,  # too long
        "1project",  # starts with a digit
        "project-",  # ends with a hyphen
        "my_project",  # underscore
        "my-project; DROP TABLE x",
    ],
)
def test_unsafe_project_ids_are_rejected(name):
    with pytest.raises(IdentifierError, match="project id"):
        validate_project(name)


@pytest.mark.parametrize(
    ("validate", "name"),
    [(validate_identifier, "events\n"), (validate_dataset, "recsys\n"), (validate_project, "my-project\n")],
)
def test_trailing_newline_is_not_a_valid_identifier(validate, name):
    with pytest.raises(IdentifierError):
        validate(name)
