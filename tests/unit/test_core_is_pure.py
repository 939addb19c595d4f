"""The core runs inside Vertex AI training jobs, where Airflow is not installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import airflow_ml_provider

CORE = Path(airflow_ml_provider.__file__).parent / "core"


def test_core_sources_do_not_import_airflow():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "airflow" or n.startswith("airflow.")]
    assert offenders == []


def test_core_modules_import_with_airflow_blocked():
    """Import every core module in a fresh interpreter where `import airflow` fails."""
    modules = sorted(_module(p) for p in CORE.rglob("*.py"))
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'airflow' or name.startswith('airflow.'):\n"
        "            raise ImportError('airflow is blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for m in {modules!r}:\n"
        "    __import__(m)\n"
        "print('imported', len([m for m in sys.modules if m.startswith('airflow_ml_provider.core')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout
    assert len(modules) >= 50


def _module(path: Path) -> str:
    parts = path.relative_to(CORE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_imports(path: Path, known: set[str]) -> set[str]:
    """The core modules ``path`` imports, at any depth (function-level and TYPE_CHECKING imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airflow_ml_provider.core"):
            for alias in node.names:  # `from core.drift import bins` names a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    return found & known


def test_core_has_no_import_cycles():
    """Each stage's modules import downwards: a cycle (even a function-level one) means two ideas tangled."""
    paths = {_module(p): p for p in CORE.rglob("*.py")}
    graph = {m: _core_imports(p, set(paths)) - {m} for m, p in paths.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_core_is_grouped_by_stage():
    """A newcomer finds a stage by its folder: no loose module in core/ but a few shared utilities."""
    loose = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
    assert loose == ["demo", "memory", "scaffold", "storage"]
    for stage in ("contract", "warehouse", "features", "training", "evaluation", "registry", "inference", "drift"):
        assert (CORE / stage / "__init__.py").is_file(), stage
