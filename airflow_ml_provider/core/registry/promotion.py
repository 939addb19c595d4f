"""Promotion: the one way a model becomes (or stops being) champion, from the DAG, the CLI or by hand.

``decide_promotion`` applies the contract's gate (``core.evaluation.gate``) to a registered
candidate and promotes or rejects it; ``promote_version`` and ``roll_back`` are the by-hand moves.
Each records who promoted and why in ``ml_models`` and, where the backend keeps a model registry
of its own (the Vertex AI Model Registry on gcp, a ``ModelMirror``), moves its ``champion`` alias
too, so both registries always name the same champion.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_ml_provider.core.contract.spec import PipelineSpec
    from airflow_ml_provider.core.registry.models import ModelRecord, ModelRegistry
    from airflow_ml_provider.core.training.envelope import Envelope

log = logging.getLogger(__name__)


class ModelMirror(Protocol):
    """A backend's own model registry that follows ``ml_models`` (the Vertex AI Model Registry on gcp)."""

    def upload_model_version(self, envelope: Envelope, model_dir: str, labels: Mapping[str, str] | None = None) -> str:
        """Upload a trained version; return its resource name."""

    def set_alias(self, model_name: str, version: str, alias: str = "champion") -> str:
        """Point ``alias`` at ``version``; return the version's resource name."""


@dataclass(frozen=True)
class Promotion:
    """What the gate decided for a candidate (JSON-able with ``as_dict``).

    ``outcome``: ``promote``, ``reject`` or ``no_decision`` (too few lists to judge).
    ``promoted``: the candidate is now champion (a passing gate with promotion turned off is not).
    """

    model_name: str
    version: str
    outcome: str
    passes: bool
    promoted: bool
    reasons: list[str] = field(default_factory=list)
    mirror: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def summary(self) -> str:
        return " ".join(self.reasons)


def decide_promotion(
    registry: ModelRegistry,
    spec: PipelineSpec,
    version: str,
    *,
    blessed_by: str,
    model_name: str | None = None,
    promote: bool = True,
    mirror: ModelMirror | None = None,
    logger: Any = None,
) -> Promotion:
    """Judge candidate ``version`` with the contract's gate: promote it, reject it, or leave it undecided.

    A pass promotes (unless ``promote`` is off: then the model stays a candidate); a fail marks it
    ``rejected`` with the reasons; too few lists leaves it a candidate, since nothing was judged.
    """
    from airflow_ml_provider.core.evaluation.gate import evaluate_envelope_metrics

    out = logger or log
    name = model_name or spec.name
    result = evaluate_envelope_metrics(registry.get(name, version).metrics, spec.evaluation)
    for reason in result.reasons:
        out.info("Gate: %s", reason)
    summary = " ".join(result.reasons)
    promoted, moved = False, None
    if result.passes and promote:
        moved = promote_version(registry, name, version, blessed_by=blessed_by, reason=summary, mirror=mirror).mirror
        promoted = True
        out.info("Promoted %s %s to champion", name, version)
    elif result.outcome == "reject" and promote:
        registry.reject(name, version, reason=summary)
    return Promotion(name, version, result.outcome, result.passes, promoted, list(result.reasons), moved)


@dataclass(frozen=True)
class ChampionMove:
    """The champion after a move, and the backend registry's version its alias now points at (if any)."""

    record: ModelRecord
    mirror: str | None


def promote_version(
    registry: ModelRegistry,
    model_name: str,
    version: str,
    *,
    blessed_by: str,
    reason: str,
    mirror: ModelMirror | None = None,
) -> ChampionMove:
    """Make ``version`` the champion in ``ml_models`` (recording who and why), then move the mirror's alias."""
    record = registry.promote(model_name, version, blessed_by=blessed_by, reason=reason)
    return ChampionMove(record, mirror.set_alias(model_name, record.version) if mirror is not None else None)


def roll_back(
    registry: ModelRegistry, model_name: str, *, blessed_by: str, mirror: ModelMirror | None = None
) -> ChampionMove:
    """Restore the previous champion in ``ml_models``, then move the mirror's alias to it."""
    record = registry.rollback(model_name, blessed_by=blessed_by)
    return ChampionMove(record, mirror.set_alias(model_name, record.version) if mirror is not None else None)
