"""`airflow-ml check`: one line per check, a summary line last, and a word on what --record wrote."""

from __future__ import annotations

import re

from airflow_ml_provider.backends.duckdb import DuckDBWarehouse
from airflow_ml_provider.cli import main
from airflow_ml_provider.cli_check import summary_line
from airflow_ml_provider.core.features.checks import CheckResult

DAY = "2026-03-20"


def _seeded(tmp_path) -> str:
    path = str(tmp_path / "w.duckdb")
    assert main(["seed-demo", "--warehouse", path, "--users", "100", "--items", "30", "--days", "35", "-q"]) == 0
    return path


def test_check_ends_with_a_summary_and_says_what_record_wrote(tmp_path, capsys):
    path = _seeded(tmp_path)
    capsys.readouterr()
    assert main(["check", "--warehouse", path, "--date", DAY, "--scope", "events", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    checks = [line for line in lines if line.startswith("data check ")]
    assert checks and lines[-1] == summary_line_of(checks)
    assert not any("data_checks" in line for line in lines)  # nothing written, nothing said

    assert main(["check", "--warehouse", path, "--date", DAY, "--scope", "events", "--record", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == summary_line_of(checks)
    assert lines[-1].startswith(f"Recorded {len(checks)} result(s) in data_checks (partition check_date={DAY}")
    rows = DuckDBWarehouse(path).query("SELECT COUNT(*) AS n FROM data_checks WHERE check_date = @d", {"d": DAY})
    assert rows.to_pylist() == [{"n": len(checks)}]


def summary_line_of(check_lines: list[str]) -> str:
    """The summary the printed check lines add up to."""
    status = [re.match(r"data check (\w+):", line).group(1) for line in check_lines]  # type: ignore[union-attr]
    n = {s: status.count(s) for s in ("PASS", "WARN", "FAIL", "SKIPPED")}
    return f"{len(status)} checks: {n['PASS']} passed, {n['WARN']} warned, {n['FAIL']} failed, {n['SKIPPED']} skipped"


def test_summary_counts_every_outcome():
    def result(status: str) -> CheckResult:
        return CheckResult("not_null(x)", "features", 0.0, 0.0, "error", status, "")

    results = [result(s) for s in ("pass", "pass", "warn", "fail", "skipped", "pass")]
    assert summary_line(results) == "6 checks: 3 passed, 1 warned, 1 failed, 1 skipped"
    assert summary_line([result("pass")]) == "1 check: 1 passed, 0 warned, 0 failed, 0 skipped"
