"""docs/bring-your-own-data.md's window arithmetic is the contract's: the numbers are read from the doc.

Section 4 gives the first as-of date a run on D reads as a formula, and a worked example with
the reference windows; section 3 gives the features range for the UCI example's run. Each is
parsed from the doc and checked against ``PipelineSpec.training_dates`` and
``evaluation_windows``, so the test fails when either the doc or the code drifts.
"""

from __future__ import annotations

import ast
import datetime as dt
import re

import pytest

from airflow_ml_provider.core.contract.spec import Windows, load_spec
from tests.paths import PIPELINE, REPO

DOC = REPO / "docs" / "bring-your-own-data.md"
RETAIL = REPO / "examples" / "online_retail" / "pipeline.yaml"
D = dt.date(2026, 3, 31)
NAMES = {"training_days", "early_stopping_days", "validation_days", "label_horizon_days"}


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"{DOC.name} has no section {title!r}"
    return match.group(1)


WINDOWS = section("4. Choose the windows")


def formulas() -> list[str]:
    """The indented formula lines of section 4 (``D - ...``), in order."""
    found = re.findall(r"^ {4}(D - [\w*+\- ]+)$", WINDOWS, re.M)
    assert len(found) == 2, f"expected two formulas (with and without early stopping) in section 4, got {found}"
    return found


def offset(formula: str, w: Windows) -> int:
    """The formula's value minus D, in days, for windows ``w`` (``h`` is the label horizon)."""
    values = {name: getattr(w, name) for name in NAMES} | {"h": w.label_horizon_days, "D": 0}

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in values:
            return values[node.id]
        raise AssertionError(f"unexpected term in the doc's formula {formula!r}: {ast.dump(node)}")

    return ev(ast.parse(formula, mode="eval").body)


def example() -> tuple[Windows, dict[str, tuple[int, int]]]:
    """Section 4's worked example: its windows and each range as (days before D of the first, of the last)."""
    match = re.search(r"With the reference windows \((.*?)\), a run on D reads (.*?)\.\s*Build", WINDOWS, re.S)
    assert match, "section 4 lost its worked example ('With the reference windows (...), a run on D reads ...')"
    settings = dict(re.findall(r"`(\w+): (\d+)`", match.group(1)))
    assert set(settings) == NAMES, settings
    ranges = re.findall(r"(?:^|: |, )([a-z ]*?) ?D-(\d+)\.\.D-(\d+)", " ".join(match.group(2).split()))
    parsed = {name or "all": (int(a), int(b)) for name, a, b in ranges}
    assert set(parsed) == {"all", "fit", "early stopping", "test"}, parsed
    return Windows(**{k: int(v) for k, v in settings.items()}), parsed


def spec_with(w: Windows):
    spec = load_spec(PIPELINE)
    return spec.model_copy(update={"windows": w})


def days_before(dates: list[dt.date]) -> tuple[int, int]:
    return (D - dates[0]).days, (D - dates[-1]).days


def test_the_worked_example_is_what_the_contract_computes():
    w, ranges = example()
    spec = spec_with(w)
    train, test = spec.training_dates(D)
    fit, early, held_out = spec.evaluation_windows(D)
    assert ranges["all"] == ((D - train[0]).days, (D - test[-1]).days)
    assert ranges["fit"] == days_before(fit)
    assert ranges["early stopping"] == days_before(early)
    assert ranges["test"] == days_before(held_out) == days_before(test)


def test_the_example_is_the_reference_contract_and_its_comment():
    """The doc calls them the reference windows: they are dags/recsys/pipeline.yaml's, whose comment agrees."""
    w, ranges = example()
    reference = load_spec(PIPELINE).windows
    assert {n: getattr(w, n) for n in NAMES} == {n: getattr(reference, n) for n in NAMES}
    first, last = ranges["all"]
    assert f"reads as-of dates D-{first}..D-{last}" in PIPELINE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "overrides",
    [{}, {"training_days": 30, "validation_days": 5, "label_horizon_days": 3, "early_stopping_days": 2}],
    ids=["doc-example", "other-windows"],
)
def test_the_formula_gives_the_first_date_the_run_reads(overrides):
    w, _ = example()
    w = Windows(**{**w.model_dump(), **overrides})
    with_early, without_early = formulas()
    train, test = spec_with(w).training_dates(D)
    assert D + dt.timedelta(days=offset(with_early, w)) == train[0]
    assert test[-1] == D - dt.timedelta(days=w.label_horizon_days)  # "to D - h"
    no_early = Windows(**{**w.model_dump(), "early_stopping_days": 0})
    train, _ = spec_with(no_early).training_dates(D)
    assert D + dt.timedelta(days=offset(without_early, no_early)) == train[0]


def test_the_uci_features_range_covers_exactly_what_its_run_reads():
    """Section 3: `features --date A --to B --labels` before `train --date D` on the example contract."""
    commands = section("3. The UCI Online Retail example")
    features = re.search(r"features .*?--date (\S+) --to (\S+) --labels", commands, re.S)
    train = re.search(r"airflow-ml train .*?--date (\S+)", commands)
    assert features and train, "section 3 lost its features or train command"
    start, end = (dt.date.fromisoformat(d) for d in features.groups())
    run = dt.date.fromisoformat(train.group(1))
    dates, test = load_spec(RETAIL).training_dates(run)
    assert (start, end) == (dates[0], test[-1])


def test_the_doc_states_the_window_rule_the_contract_enforces():
    assert "`training_days >= validation_days`" in WINDOWS
    quoted = re.search(
        r"\(`(windows: windows\.training_days \((\d+)\) is shorter\s+than windows\.validation_days \((\d+)\).*?)\.\.\.",
        WINDOWS,
        re.S,
    )
    assert quoted, "section 4 no longer quotes the contract's error"
    with pytest.raises(ValueError) as err:
        Windows(training_days=int(quoted.group(2)), validation_days=int(quoted.group(3)))
    said = " ".join(quoted.group(1).split()).removeprefix("windows: ")
    assert said in str(err.value)
