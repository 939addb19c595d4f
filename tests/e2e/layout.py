"""The Airflow layout shared by docker-compose.yaml and the e2e cluster: ``airflow-layout.env``.

One file holds the executor and the ML pool (name and slots); compose loads it as the
``env_file`` of every Airflow service and ``tests/e2e/cluster.py`` puts the same values
into its components' environment. ``tests/unit/test_airflow_layout.py`` checks both.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.paths import REPO

LAYOUT_FILE = REPO / "airflow-layout.env"
#: Worker slots of the e2e cluster's Celery worker: docker-compose.yaml's default too.
WORKER_CONCURRENCY = 2
_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def read_layout(path: Path = LAYOUT_FILE) -> dict[str, str]:
    """``KEY=VALUE`` lines of the layout file (comments and blank lines skipped); plain values only."""
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if not m or any(c in m.group(2) for c in "\"'$ #"):
            raise ValueError(
                f"{path}:{number}: {raw!r} is not a plain KEY=VALUE line; docker compose reads this file "
                "as an env_file, so write values without quotes, spaces, comments or ${...}"
            )
        out[m.group(1)] = m.group(2)
    return out


def pool(layout: dict[str, str]) -> tuple[str, int] | None:
    """(name, slots) of the ML pool the layout declares, or None."""
    name = layout.get("AIRFLOW__ML_PLATFORM__POOL")
    return (name, int(layout["AIRFLOW_ML_POOL_SLOTS"])) if name else None
