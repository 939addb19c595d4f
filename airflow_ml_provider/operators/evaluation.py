"""EvaluateAndPromoteOperator: bless a candidate as champion only when the contract's gate holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_ml_provider.links.ml_platform import ModelPageLink
from airflow_ml_provider.operators.base import MLPlatformOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class EvaluateAndPromoteOperator(MLPlatformOperator):
    """Apply ``evaluation`` from pipeline.yaml to a candidate, then promote or reject it.

    The candidate must beat the popularity baseline by ``min_lift_over_baseline`` and must
    not fall behind the current champion by more than ``max_regression_vs_champion``; the
    champion is scored by the trainer on the candidate's own validation window, so the two
    are compared on the same rows. A pass moves the ``champion`` alias; a fail marks the
    candidate ``rejected`` and, by default, skips this task with the reasons (so the model
    asset is not emitted and the run shows why). Too few lists in the test window
    (``evaluation.min_lists``) is no decision: the model stays a candidate and the task skips.

    :param version: the candidate version (usually the training task's XCom).
    :param on_reject: ``skip`` (default) or ``fail`` the task when the gate does not hold.
    """

    template_fields: Sequence[str] = ("version", "model_name", "blessed_by")
    ui_color = "#e7f5e7"
    operator_extra_links = (ModelPageLink(),)

    def __init__(
        self,
        *,
        version: str,
        model_name: str | None = None,
        blessed_by: str = "airflow:gate",
        on_reject: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.model_name = model_name
        self.blessed_by = blessed_by
        self.on_reject = on_reject

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.registry.models import ModelRegistry
        from airflow_ml_provider.core.registry.promotion import decide_promotion

        with self.fail_fast():
            decision = decide_promotion(
                ModelRegistry(self.hook.get_warehouse(labels=self.job_labels(context))),
                self.spec,
                self.version,
                model_name=self.model_name,
                blessed_by=self.blessed_by,
                mirror=self.hook.get_model_mirror(),
                logger=self.log,
            )
        if decision.promoted:
            return {
                "model_name": decision.model_name,
                "version": decision.version,
                "promoted": True,
                "reasons": decision.reasons,
            }
        # Too few lists leaves the model a candidate: nothing was judged, so nothing is rejected.
        verdict = "rejected" if decision.outcome == "reject" else "not judged (no decision)"
        message = f"candidate {decision.model_name} {decision.version} {verdict}: {decision.summary}"
        if self.on_reject == "fail":
            raise AirflowFailException(message)
        raise AirflowSkipException(message)
