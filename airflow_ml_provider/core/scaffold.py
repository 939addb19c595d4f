"""``airflow-ml init``: scaffold a new pipeline from a template shipped in the package.

A template is a folder ``airflow_ml_provider/templates/<pattern>/`` laid out like a project
root (``dags/...``, ``sql/...``). Every ``__NAME__`` in a path or in a file is replaced by the
pipeline's name, and a ``.tmpl`` suffix is dropped (it keeps template Python files from
being imported or linted as package modules). Nothing is written when any target exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_ml_provider.core.contract.identifiers import validate_identifier
from airflow_ml_provider.exceptions import ContractError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PATTERNS = ("recsys", "churn")
PLACEHOLDER = "__NAME__"
#: The longest name: table names are ``<name>_<table>`` and DAG ids ``<name>_<dag>``.
MAX_NAME = 40


class ScaffoldError(ContractError):
    """The pipeline cannot be scaffolded as asked (bad name, unknown pattern, existing files)."""


@dataclass(frozen=True)
class ScaffoldFile:
    """One file to write: where it goes (relative to the root) and its text."""

    path: Path
    text: str


def check_name(name: str) -> str:
    """A pipeline name: a lowercase identifier, used in table names, DAG ids and folder names."""
    try:
        validate_identifier(name, kind="pipeline")
    except ContractError as err:
        raise ScaffoldError(str(err)) from None
    if name != name.lower() or len(name) > MAX_NAME or name.startswith("_"):
        raise ScaffoldError(
            f"pipeline name {name!r} must be lowercase letters, digits and underscores, start with a letter "
            f"and have at most {MAX_NAME} characters (e.g. 'churn' or 'shop_recs')."
        )
    return name


def plan(name: str, pattern: str = "recsys") -> list[ScaffoldFile]:
    """The files a pipeline ``name`` from ``pattern`` consists of, rendered, sorted by path."""
    check_name(name)
    if pattern not in PATTERNS:
        raise ScaffoldError(f"unknown pattern {pattern!r}; choose one of {', '.join(PATTERNS)}.")
    source = TEMPLATES / pattern
    if not source.is_dir():
        raise ScaffoldError(f"template folder {source} is missing; reinstall airflow-ml-provider.")
    files = []
    for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = str(path.relative_to(source)).replace(PLACEHOLDER, name).removesuffix(".tmpl")
        files.append(ScaffoldFile(Path(rel), path.read_text(encoding="utf-8").replace(PLACEHOLDER, name)))
    return files


def scaffold(name: str, pattern: str, root: str | Path) -> list[Path]:
    """Write the pipeline's files under ``root``; refuse (writing nothing) if any of them exists."""
    root = Path(root)
    files = plan(name, pattern)
    existing = [str(root / f.path) for f in files if (root / f.path).exists()]
    if existing:
        raise ScaffoldError(
            f"refusing to overwrite {', '.join(existing)}. Choose another name, or move the existing files away first."
        )
    written = []
    for f in files:
        target = root / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        # "x": a file that appeared since the check is still never overwritten.
        with target.open("x", encoding="utf-8") as out:
            out.write(f.text)
        written.append(target)
    return written
