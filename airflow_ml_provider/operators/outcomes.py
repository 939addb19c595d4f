"""OutcomeEvaluationOperator: what a served date's lists did once its horizon passed, into recommendation_outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.links.bigquery import BigQueryTableLink
from airflow_ml_provider.operators.base import MLPlatformOperator, parse_date

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.operators.lineage import Lineage


class OutcomeEvaluationOperator(MLPlatformOperator):
    """Judge the lists served on a date, and the same day's global popularity list, and record both.

    ``outcomes.sql`` puts each served list beside everything its user did in the label horizon;
    every served user gets the global popularity list as of the served date, their seen items
    skipped (``core/evaluation/popularity.py``, the gate's definition too). Hit rate,
    precision, recall and ndcg@k come from the offline evaluation's functions. The date's
    partition of ``recommendation_outcomes`` is replaced, so a rerun or backfill leaves one set.
    A date whose horizon has not passed (by the clock and in the events) is refused, naming the
    day it becomes ready; a date nothing was served on fails. Neither writes anything.

    :param prediction_date: the served date to judge. Empty (default): the newest date whose
        horizon has passed by ``run_date``, i.e. ``run_date - label_horizon_days - 1``.
    :param run_date: the run's date (default ``{{ ds }}``).
    :param outcomes_sql: ``.sql`` path under the DAG's ``template_searchpath`` (or SQL text).
    """

    template_fields: Sequence[str] = ("outcomes_sql", "prediction_date", "run_date")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"outcomes_sql": "sql"}
    ui_color = "#eaf6ec"
    operator_extra_links = (BigQueryTableLink("recommendation_outcomes"),)

    def __init__(
        self,
        *,
        prediction_date: str | None = None,
        run_date: str = "{{ ds }}",
        outcomes_sql: str = "recsys/outcomes.sql",
        force_replace: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.force_replace = force_replace
        self.prediction_date = prediction_date
        self.run_date = run_date
        self.outcomes_sql = outcomes_sql

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        with self.fail_fast():  # an unknown source() role is a contract error: no retries
            super().render_template_fields(self.with_sql_functions(context), jinja_env)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_ml_provider.core.evaluation.horizon import newest_ready_date
        from airflow_ml_provider.core.evaluation.outcomes import evaluate_outcomes, headline

        with self.fail_fast():
            sql = self._rendered(self.outcomes_sql, context)
            horizon = self.spec.windows.label_horizon_days
            served = (
                parse_date(self.prediction_date, "prediction_date")
                if self.prediction_date and str(self.prediction_date) != "None"
                else newest_ready_date(parse_date(self.run_date, "run_date"), horizon)
            )
            warehouse = self.hook.get_warehouse(labels=self.job_labels(context))
            self.log.info(
                "Judging the lists served on %s against (%s, +%d days] on %r", served, served, horizon, warehouse
            )
            written, rows = evaluate_outcomes(
                warehouse, self.spec, served, sql, run_id=context["ti"].run_id, force_replace=self.force_replace
            )
        summary = headline(rows)
        for h in summary:
            self.log.info(
                "Outcomes %s | %s %s: %d lists, %d active users, hit rate %s (global popularity %s), "
                "ndcg@k %s (global popularity %s)",
                served,
                h["model_name"],
                h["model_version"],
                h["lists"],
                h["active_users"],
                _fmt(h.get("model_hit_rate")),
                _fmt(h.get("popularity_hit_rate")),
                _fmt(h.get("model_ndcg")),
                _fmt(h.get("popularity_ndcg")),
            )
        self.log.info("Wrote %d rows to %s (partition %s)", written.rows, written.table, written.partition)
        self.wrote = True
        return {"prediction_date": served.isoformat(), "rows": written.rows, "outcomes": summary}

    def lineage(self) -> Lineage:
        """Reads the tables ``outcomes.sql`` names (served lists, events); writes ``recommendation_outcomes``."""
        from airflow_ml_provider.core.evaluation.outcomes import OUTCOMES_TABLE
        from airflow_ml_provider.operators.lineage import Lineage

        # outcomes.sql reads `recommendations` by name (it is no contract step, so no ref()).
        wrote = getattr(self, "wrote", False)
        return Lineage(
            input_tables=["recommendations", *self.sql_reads], output_tables=[OUTCOMES_TABLE] if wrote else []
        )

    def _rendered(self, text: str, context: Context) -> str:
        """The SQL, rendered here when Airflow did not (a direct ``execute``, a mapped task)."""
        if text.endswith(".sql"):
            return str(self.render_template(text, self.with_sql_functions(context)))
        return text


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
