""".github/CODEOWNERS encodes the DS/Dev ownership split, for recsys and for pipelines `airflow-ml init` adds.

GitHub's rules, as implemented by ``owners_of``: patterns follow .gitignore syntax (``*`` stays
within one path segment, ``**`` crosses them, a leading or inner ``/`` anchors the pattern to
the repo root, a pattern naming a directory covers everything below it), and the LAST matching
line wins outright: its owners replace, not join, the earlier ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.paths import DAGS_DIR, REPO

CODEOWNERS = REPO / ".github" / "CODEOWNERS"
DS = "@acme/data-science"
DEV = "@acme/ml-platform"

# An owner is @user, @org/team or an e-mail address.
_OWNER = re.compile(r"^(@[A-Za-z0-9-]+(/[A-Za-z0-9._-]+)?|[^@\s]+@[^@\s]+\.[^@\s]+)$")


def parse(text: str) -> list[tuple[str, list[str]]]:
    """(pattern, owners) per rule line, in file order; raises on syntax GitHub does not support."""
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        pattern, *owners = line.split()
        if pattern.startswith("!") or "[" in pattern or pattern.startswith("\\#"):
            raise ValueError(f"CODEOWNERS line {number}: GitHub does not support {pattern!r} (no !, [ ] or \\#)")
        bad = [o for o in owners if not _OWNER.match(o)]
        if not owners or bad:
            raise ValueError(f"CODEOWNERS line {number}: expected @org/team owners after {pattern!r}, got {owners}")
        rules.append((pattern, owners))
    return rules


def _segment_regex(glob: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def matches(pattern: str, path: str) -> bool:
    """Whether a CODEOWNERS ``pattern`` covers the repo-relative file ``path``."""
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    dir_only = pattern.endswith("/")
    regex = _segment_regex(pattern.strip("/"))
    parts = path.split("/")
    starts = [0] if anchored else range(len(parts))
    for start in starts:
        for end in range(start + 1, len(parts) + 1):
            is_dir = end < len(parts)  # a directory on the way covers the file below it
            if dir_only and not is_dir:
                continue
            if regex.fullmatch("/".join(parts[start:end])):
                return True
    return False


def owners_of(rules: list[tuple[str, list[str]]], path: str) -> set[str]:
    """The owners GitHub requests for ``path``: those of the last matching rule."""
    found: list[str] = []
    for pattern, owners in rules:
        if matches(pattern, path):
            found = owners
    return set(found)


@pytest.fixture(scope="module")
def rules() -> list[tuple[str, list[str]]]:
    return parse(CODEOWNERS.read_text(encoding="utf-8"))


def test_matcher_follows_github_semantics():
    toy = parse("* @o/all\n/docs/ @o/docs\n*.md @o/md\n/src/*.py @o/py\n/a/**/z.txt @o/z\n")
    assert owners_of(toy, "README.md") == {"@o/md"}
    assert owners_of(toy, "docs/guide.md") == {"@o/md"}, "the later *.md rule wins over /docs/"
    assert owners_of(toy, "docs/img/x.png") == {"@o/docs"}
    assert owners_of(toy, "src/main.py") == {"@o/py"}
    assert owners_of(toy, "src/pkg/main.py") == {"@o/all"}, "* does not cross a /"
    assert owners_of(toy, "a/b/c/z.txt") == {"@o/z"}
    assert owners_of(toy, "a/z.txt") == {"@o/z"}, "** matches zero directories too"
    reordered = parse("/docs/ @o/docs\n* @o/all\n")
    assert owners_of(reordered, "docs/guide.md") == {"@o/all"}, "last match wins, even when broader"


@pytest.mark.parametrize(
    "bad", ["!dags/x.py @o/t", "dags/[ab].py @o/t", "dags/x.py", "dags/x.py not-an-owner"], ids=repr
)
def test_parse_rejects_what_github_would_ignore(bad: str):
    with pytest.raises(ValueError, match="CODEOWNERS line 1"):
        parse(bad)


def test_codeowners_parses_and_names_both_teams(rules):
    teams = {owner for _, owners in rules for owner in owners}
    assert teams == {DS, DEV}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Data science: each pipeline's SQL and model hooks, recsys and future pipelines alike.
        ("sql/recsys/features.sql", {DS}),
        ("sql/recsys/labels.sql", {DS}),
        ("sql/churn/features.sql", {DS}),
        ("sql/analytics/hit_rate.sql", {DS}),
        ("dags/recsys/model.py", {DS}),
        ("dags/churn/model.py", {DS}),
        # Shared: the contract of every pipeline.
        ("dags/recsys/pipeline.yaml", {DS, DEV}),
        ("dags/churn/pipeline.yaml", {DS, DEV}),
        # Engineering: provider, DAG files, DDL, deployment, CI, tests, build.
        ("dags/recsys_features.py", {DEV}),
        ("dags/churn_pipeline.py", {DEV}),
        ("dags/recsys/assets.py", {DEV}),
        ("sql/ddl/recommendations.sql", {DEV}),
        ("airflow_ml_provider/core/contract/spec.py", {DEV}),
        ("airflow_ml_provider/operators/features.py", {DEV}),
        ("Dockerfile", {DEV}),
        ("docker-compose.yaml", {DEV}),
        (".env.example", {DEV}),
        (".github/workflows/train-on-push.yml", {DEV}),
        (".github/CODEOWNERS", {DEV}),
        ("Makefile", {DEV}),
        ("requirements/constraints.txt", {DEV}),
        ("tests/unit/core/test_spec.py", {DEV}),
    ],
)
def test_ownership(rules, path: str, expected: set[str]):
    assert owners_of(rules, path) == expected


@pytest.mark.parametrize("contract", sorted(DAGS_DIR.glob("*/pipeline.yaml")), ids=lambda p: p.parent.name)
def test_each_contract_is_owned_by_the_teams_it_names(rules, contract: Path):
    owners = yaml.safe_load(contract.read_text(encoding="utf-8"))["owners"]
    named = set(owners["data_science"]) | set(owners["engineering"])
    path = contract.relative_to(REPO).as_posix()
    assert owners_of(rules, path) >= named, (
        f"{path} names owners {sorted(named)} but CODEOWNERS requests {sorted(owners_of(rules, path))}: "
        "update .github/CODEOWNERS or the contract's owners so that they agree"
    )


def test_every_pipeline_sql_file_and_model_in_the_repo_is_ds_owned(rules):
    pipelines = [p.parent.name for p in DAGS_DIR.glob("*/pipeline.yaml")]
    assert pipelines, "no dags/<name>/pipeline.yaml found"
    for name in pipelines:
        for sql in (REPO / "sql" / name).rglob("*.sql"):
            assert owners_of(rules, sql.relative_to(REPO).as_posix()) == {DS}, sql
        model = DAGS_DIR / name / "model.py"
        if model.exists():
            assert owners_of(rules, model.relative_to(REPO).as_posix()) == {DS}, model
