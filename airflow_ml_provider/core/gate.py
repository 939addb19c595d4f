"""The evaluation gate: may a candidate model become champion? Returned as a value, never raised.

A candidate passes when its metric at k beats the popularity baseline by at least
``min_lift_over_baseline`` and does not fall more than ``max_regression_vs_champion`` below
the current champion. The caller decides what a failure means (reject, warn, stop the DAG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from airflow_ml_provider.core.spec import EvaluationGate
from airflow_ml_provider.exceptions import MLProviderError

# A metric exactly at a threshold passes even when float rounding lands a hair below it
# ((0.105 - 0.1) / 0.1 is 0.04999999999999993).
_TOLERANCE = 1e-9


class GateError(MLProviderError):
    """The metrics handed to the gate are incomplete: a bug upstream, not a model that failed."""


@dataclass(frozen=True)
class GateResult:
    """Whether the candidate passes, one sentence per check, and the numbers behind them (JSON-able)."""

    passes: bool
    reasons: list[str] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)


def evaluate_gate(
    candidate: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    gate: EvaluationGate,
) -> GateResult:
    """Judge ``candidate`` against the popularity ``baseline`` and the ``champion`` (None: no champion yet)."""
    name = f"{gate.metric}@{gate.k}"
    cand = _metric(candidate, "candidate", gate)
    base = _metric(baseline, "popularity baseline", gate)
    champ = None if champion is None else _metric(champion, "champion", gate)
    reasons: list[str] = []

    lift: float | None
    if not math.isfinite(cand):
        lift, lift_ok = None, False
        reasons.append(f"{name} of the candidate is {cand}, not a number: the evaluation produced no usable score.")
    elif base == 0:
        # Lift over a zero baseline is undefined; any positive score beats it.
        lift = None
        lift_ok = cand > 0 or gate.min_lift_over_baseline <= 0
        reasons.append(
            f"{name} {cand:.3f} vs a popularity baseline of 0: lift is undefined, so "
            f"{'a positive score passes' if cand > 0 else 'a zero score passes only when no lift is required'} "
            f"(needs {gate.min_lift_over_baseline:+.1%})."
        )
    else:
        lift = (cand - base) / base
        lift_ok = lift >= gate.min_lift_over_baseline - _TOLERANCE
        reasons.append(
            f"{name} {cand:.3f} is {lift:+.1%} over the popularity baseline {base:.3f} "
            f"(needs {gate.min_lift_over_baseline:+.1%})."
        )

    change: float | None = None
    champ_ok: bool | None = None
    if champ is None:
        reasons.append("There is no champion yet, so there is no regression check.")
    else:
        floor = champ * (1 - gate.max_regression_vs_champion)
        champ_ok = math.isfinite(cand) and cand >= floor - _TOLERANCE
        change = (cand - champ) / champ if champ else None
        versus = f"{change:+.1%} vs" if change is not None else "vs"
        reasons.append(
            f"{name} {cand:.3f} is {versus} the champion's {champ:.3f} "
            f"(allows at most {-gate.max_regression_vs_champion:.1%}, i.e. {floor:.3f} or more)."
        )

    passes = lift_ok and champ_ok is not False
    return GateResult(
        passes=passes,
        reasons=reasons,
        diagnostics={
            "metric": name,
            "candidate": cand,
            "baseline": base,
            "champion": champ,
            "lift_over_baseline": lift,
            "min_lift_over_baseline": gate.min_lift_over_baseline,
            "change_vs_champion": change,
            "max_regression_vs_champion": gate.max_regression_vs_champion,
            "checks": {"lift_over_baseline": lift_ok, "no_regression_vs_champion": champ_ok},
        },
    )


def _metric(metrics: dict[str, float], whose: str, gate: EvaluationGate) -> float:
    """The gate's metric from one metrics dict; a missing or non-numeric value is a GateError."""
    if gate.metric not in metrics:
        raise GateError(
            f"the {whose} metrics have no {gate.metric!r} (the gate's metric at k={gate.k}); got keys "
            f"{sorted(metrics) or 'none'}. Evaluate every model at k with ndcg, recall, precision and map."
        )
    value = metrics[gate.metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GateError(f"the {whose} metric {gate.metric!r} is {value!r}; expected a number.")
    return float(value)
