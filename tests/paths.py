"""Paths of the repo's reference assets, for tests."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGS_DIR = REPO / "dags"
SQL_DIR = REPO / "sql"
PIPELINE = DAGS_DIR / "recsys" / "pipeline.yaml"
