"""What ``airflow-ml validate`` reports: each check a value (PASS, FAIL or SKIP with a sentence).

A ``Check`` says what was found and, on FAIL, the fix; a ``ValidationReport`` gathers them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``detail`` says what was found and, on FAIL, the fix."""

    check: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        """Plain values for JSON."""
        return asdict(self)


@dataclass
class ValidationReport:
    """All checks of one contract; ``ok`` unless a check failed (SKIP is not a failure)."""

    pipeline: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "FAIL" for c in self.checks)

    def add(self, check: str, status: Status, detail: str) -> Check:
        """Record a check and return it."""
        found = Check(check, status, detail)
        self.checks.append(found)
        return found

    def as_dict(self) -> dict[str, Any]:
        """``{"pipeline", "ok", "checks": [{check, status, detail}, ...]}`` for ``--json``."""
        return {"pipeline": self.pipeline, "ok": self.ok, "checks": [c.as_dict() for c in self.checks]}

    def lines(self) -> list[str]:
        """One human-readable line per check, then a verdict."""
        width = max((len(c.check) for c in self.checks), default=0)
        out = [f"{c.status:<4}  {c.check:<{width}}  {c.detail}" for c in self.checks]
        failed = [c.check for c in self.checks if c.status == "FAIL"]
        verdict = f"FAILED: {len(failed)} check(s) failed ({', '.join(failed)})" if failed else "OK: all checks passed"
        return [*out, f"{self.pipeline}: {verdict}"]


@dataclass
class SampleRun:
    """What the SQL steps produced on the sample, shared by the later checks."""

    as_of: dt.date
    ran: dict[str, int] = field(default_factory=dict)  # table -> rows written
    failed: set[str] = field(default_factory=set)  # tables whose step failed or was skipped
    rendered: dict[str, str] = field(default_factory=dict)  # table -> rendered SQL text


def sentence(err: Exception) -> str:
    """An error as one line; the provider's errors already name the file and the fix."""
    from airflow_ml_provider.exceptions import MLProviderError

    text = str(err).strip()
    return text if isinstance(err, MLProviderError) else f"{type(err).__name__}: {text}"
