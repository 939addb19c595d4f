"""docs/architecture.md names every folder and module of core/, so the map stays true as the tree moves."""

from __future__ import annotations

from pathlib import Path

import airflow_ml_provider

CORE = Path(airflow_ml_provider.__file__).parent / "core"
DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
README = Path(__file__).resolve().parents[2] / "README.md"


def test_architecture_doc_names_every_core_folder_and_module():
    text = DOC.read_text()
    folders = sorted(p.parent.name for p in CORE.glob("*/__init__.py"))
    modules = sorted({p.name for p in CORE.rglob("*.py") if p.name != "__init__.py"})
    assert [f for f in folders if f"`{f}/`" not in text] == []
    assert [m for m in modules if m not in text] == []


def test_readme_layout_names_every_core_folder():
    layout = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    assert [p.parent.name for p in CORE.glob("*/__init__.py") if f"{p.parent.name}/" not in layout] == []
