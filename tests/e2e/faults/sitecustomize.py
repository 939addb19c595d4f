"""Fault injection for the e2e Airflow: stall one task mid-write so a test can SIGKILL it.

On the PYTHONPATH of the e2e cluster's processes only (never installed). With
``AML_E2E_STALL_DIR`` set, ``DuckDBWarehouse._open`` returns a connection whose
``execute`` watches for the statement named in ``<dir>/stall.json``
(``{"table": "features"}``, optionally ``"verb": "UPDATE"``): the first ``INSERT INTO`` that table -- inside the
partition-replacing transaction, after the old rows were deleted; or the registry's
single-statement insert -- writes ``<dir>/stalled.json`` with its pid and sleeps, still
holding the connection and the warehouse lock. Only the first process stalls
(``<dir>/claimed`` is created exclusively), so the automatic retry runs normally.

Task processes are forked from the scheduler's executor workers, so patching at
interpreter start reaches them; the patch does nothing without ``stall.json``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

_DIR = os.environ.get("AML_E2E_STALL_DIR")


def _armed_pattern(stall_dir: Path) -> str | None:
    """The statement to stall on: ``INSERT INTO <table>`` (or ``UPDATE <table>`` with ``"verb"``)."""
    try:
        armed = json.loads((stall_dir / "stall.json").read_text())
    except (OSError, ValueError):
        return None
    verb = r"INSERT\s+INTO" if armed.get("verb", "INSERT") == "INSERT" else r"UPDATE"
    return rf'^\s*{verb}\s+(?:"?\w+"?\.)?"?{re.escape(armed["table"])}"?[\s(]'


class _Stalling:
    def __init__(self, con, stall_dir: Path) -> None:
        self._con = con
        self._dir = stall_dir

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        pattern = _armed_pattern(self._dir)
        if pattern and isinstance(sql, str) and re.match(pattern, sql, re.IGNORECASE):
            try:
                fd = os.open(self._dir / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass  # a retry, or another writer: no stall
            else:
                os.close(fd)
                info = {"pid": os.getpid(), "sql": sql[:300]}
                (self._dir / "stalled.json.tmp").write_text(json.dumps(info))
                os.replace(self._dir / "stalled.json.tmp", self._dir / "stalled.json")
                time.sleep(600)  # the test SIGKILLs us here
        return self._con.execute(sql, *args, **kwargs)


if _DIR:
    from airflow_ml_provider.backends.duckdb import DuckDBWarehouse

    _real_open = DuckDBWarehouse._open

    def _open(self, read_only, deadline):
        con = _real_open(self, read_only, deadline)
        return con if read_only else _Stalling(con, Path(_DIR))

    DuckDBWarehouse._open = _open
