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
    modules = sorted(f"airflow_ml_provider.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")
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
    assert len(modules) >= 8
