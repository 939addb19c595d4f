"""The evaluation gate: may a candidate model become champion? Returned as a value, never raised.

A candidate passes when its metric at k (in the contract's ``evaluation.scope``, on the
held-out test window) beats the baseline by at least ``min_lift_over_baseline`` and does
not fall more than ``max_regression_vs_champion`` below the current champion. The baseline is
by default the strongest of the simple rankers offline evaluation computes (the global
popularity list, the generator's own order, the candidates by popularity), so a model that a
popularity list beats is never promoted. With fewer than ``evaluation.min_lists`` distinct
users the outcome is ``no_decision``: not a pass, not a reject.
The caller decides what a failure means (reject, warn, stop the DAG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_ml_provider.core.contract.spec import EvaluationGate
from airflow_ml_provider.exceptions import MLProviderError

# A metric exactly at a threshold passes even when float rounding lands a hair below it
# ((0.105 - 0.1) / 0.1 is 0.04999999999999993).
_TOLERANCE = 1e-9


class GateError(MLProviderError):
    """The metrics handed to the gate are incomplete: a bug upstream, not a model that failed."""


@dataclass(frozen=True)
class GateResult:
    """Whether the candidate passes, one sentence per check, and the numbers behind them (JSON-able).

    ``outcome`` is ``promote``, ``reject`` or ``no_decision`` (too few lists to judge).
    """

    passes: bool
    reasons: list[str] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    outcome: Literal["promote", "reject", "no_decision"] = "reject"


def evaluate_gate(
    candidate: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    gate: EvaluationGate,
    *,
    lift_ci: dict[str, Any] | None = None,
    scope: str | None = None,
    baseline_name: str = "popularity baseline",
    baselines: dict[str, float] | None = None,
) -> GateResult:
    """Judge ``candidate`` against the ``baseline`` and the ``champion`` (None: no champion yet).

    ``lift_ci`` (the bootstrap interval of the lift, resampling users) is reported, not judged.
    ``scope`` and ``baseline_name`` label the sentences; ``baselines`` (every simple ranker's
    metric) is named beside the one compared with.
    """
    name = f"{gate.metric}@{gate.k}" + (f" ({scope.replace('_', '-')})" if scope else "")
    cand = _metric(candidate, "candidate", gate)
    base = _metric(baseline, baseline_name, gate)
    baseline_name = baseline_name.replace("_", " ")
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
            f"{name} {cand:.3f} vs a {baseline_name} of 0: lift is undefined, so "
            f"{'a positive score passes' if cand > 0 else 'a zero score passes only when no lift is required'} "
            f"(needs {gate.min_lift_over_baseline:+.1%})."
        )
    else:
        lift = (cand - base) / base
        lift_ok = lift >= gate.min_lift_over_baseline - _TOLERANCE
        others = ""
        if baselines and len(baselines) > 1:
            listed = ", ".join(f"{n.replace('_', ' ')} {v:.4f}" for n, v in baselines.items())
            others = f"; the strongest of {listed}"
        reasons.append(
            f"{name} {cand:.4f} is {lift:+.1%} over the {baseline_name} {base:.4f} "
            f"(needs {gate.min_lift_over_baseline:+.1%}{others})."
        )

    change: float | None = None
    champ_ok: bool | None = None
    if champ is None:
        reasons.append("There is no champion yet, so there is no regression check.")
    else:
        floor = champ * (1 - gate.max_regression_vs_champion)
        champ_ok = math.isfinite(cand) and cand >= floor - _TOLERANCE
        change = (cand - champ) / champ if champ else None
        # Four decimals and the unrounded difference: "0.114 is +0.0% vs 0.113" read as a contradiction.
        versus = f"{change:+.2%} ({cand - champ:+.4f}) vs" if change is not None else "vs"
        reasons.append(
            f"{name} {cand:.4f} is {versus} the champion's {champ:.4f} "
            f"(allows at most {-gate.max_regression_vs_champion:.1%}, i.e. {floor:.4f} or more)."
        )

    if lift_ci and lift_ci.get("low") is not None:
        over = lift_ci.get("resampled", "lists")
        reasons.append(
            f"The lift's {lift_ci['confidence']:.0%} bootstrap interval, resampling {over}, is "
            f"{lift_ci['low']:+.1%} to {lift_ci['high']:+.1%} ({lift_ci['samples']} resamples)."
        )
    lists = candidate.get("lists")
    # Distinct users: a user active on every test date is one user, not seven lists (older envelopes: lists).
    users = candidate.get("users", lists)
    enough = isinstance(users, (int, float)) and not isinstance(users, bool) and users >= gate.min_lists
    if not enough:
        counted = users if users is not None else "an unknown number of"
        reasons.insert(
            0,
            f"No decision, too few users: the test window has {counted} distinct users with a positive "
            f"({lists} lists) and evaluation.min_lists is {gate.min_lists}. Widen windows.validation_days, "
            "wait for more users, or lower evaluation.min_lists knowingly.",
        )
    passes = bool(enough and lift_ok and champ_ok is not False)
    outcome: Literal["promote", "reject", "no_decision"] = (
        "no_decision" if not enough else "promote" if passes else "reject"
    )
    return GateResult(
        passes=passes,
        reasons=reasons,
        outcome=outcome,
        diagnostics={
            "outcome": outcome,
            "scope": scope,
            "lists": lists,
            "users": users,
            "min_lists": gate.min_lists,
            "baselines": baselines,
            "lift_ci": lift_ci,
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


def evaluate_envelope_metrics(metrics: dict[str, Any], gate: EvaluationGate) -> GateResult:
    """The gate over an envelope's ``metrics``: its scope, baseline, lift CI and comparable champion."""
    found = metrics.get("champion") or None
    comparable = found if found and found.get("comparable") else None
    result = evaluate_gate(
        metrics["model"],
        metrics["baseline"],
        comparable,
        gate,
        lift_ci=metrics.get("lift_ci"),
        scope=metrics.get("scope"),
        baseline_name=metrics.get("baseline_name") or "popularity baseline",
        baselines=metrics.get("baselines"),
    )
    if found and not comparable:
        result.reasons.append(f"champion {found['version']} could not be scored on this data: {found['reason']}")
    return result
