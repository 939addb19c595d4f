"""The drift report of one check, and its rows in the ``drift_results`` table (sql/ddl/drift_results.sql)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.core.drift.scan import ALL_SEGMENTS
from airflow_ml_provider.core.drift.verdict import ColumnResult, Verdict

if TYPE_CHECKING:
    import pyarrow as pa

#: Metric names as stored in ``drift_results.metric``.
METRICS = ("psi", "js_distance", "l_inf", "null_rate_change", "new_category_share")
#: ``drift_results.feature`` of the dataset verdict row.
DATASET = "__dataset__"


@dataclass(frozen=True)
class DriftReport:
    """Everything one check found for one logical date."""

    logical_date: dt.date
    run_id: str
    model_name: str
    model_version: str
    columns: list[ColumnResult]
    verdict: Verdict

    def worst(self) -> ColumnResult | None:
        """The whole-population column with the highest PSI."""
        judged = [r for r in self.columns if r.segment == ALL_SEGMENTS and r.status == "evaluated"]
        return max(judged, key=lambda r: r.metrics["psi"], default=None)

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary for XCom and the asset event."""
        worst = self.worst()
        whole = [r for r in self.columns if r.segment == ALL_SEGMENTS]
        segments = sorted({r.segment for r in self.columns if r.segment != ALL_SEGMENTS and r.severity == "drift"})
        return {
            "verdict": self.verdict.verdict,
            "logical_date": self.logical_date.isoformat(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "drifted": self.verdict.drifted,
            "warned": self.verdict.warned,
            "drifted_share": round(self.verdict.drifted_share, 4),
            "worst_psi": {"column": worst.column, "psi": round(worst.metrics["psi"], 6)} if worst else None,
            "evaluated": self.verdict.evaluated,
            "skipped": {r.column: r.skip_reason for r in whole if r.status == "skipped"},
            "segments_drifted": segments[:20],
        }

    def table(self) -> list[str]:
        """The whole-population results as aligned text lines, worst PSI first (for logs and the CLI)."""
        whole = [r for r in self.columns if r.segment == ALL_SEGMENTS]
        whole.sort(key=lambda r: (r.status != "evaluated", -r.metrics.get("psi", 0.0), r.column))
        lines = [f"{'table':<16} {'column':<28} {'psi':>8} {'js':>7} {'l_inf':>7} {'nulls':>7}  severity"]
        for r in whole:
            if r.status == "skipped":
                lines.append(f"{r.table:<16} {r.column:<28} {'':>8} {'':>7} {'':>7} {'':>7}  skipped ({r.skip_reason})")
                continue
            m = r.metrics
            lines.append(
                f"{r.table:<16} {r.column:<28} {m['psi']:>8.4f} {m['js_distance']:>7.4f} {m['l_inf']:>7.4f} "
                f"{m['null_rate_change']:>+7.3f}  {r.severity}"
            )
        v = self.verdict
        lines.append(
            f"verdict {v.verdict}: {len(v.drifted)} of {v.evaluated} columns drifted ({v.drifted_share:.0%})"
            + (f": {', '.join(v.drifted)}" if v.drifted else "")
        )
        return lines

    def rows(self, checked_at: dt.datetime) -> list[dict[str, Any]]:
        """``drift_results`` rows: one per column and metric (one for a skipped column), plus the verdict row."""
        base = {
            "logical_date": self.logical_date,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "checked_at": checked_at,
        }
        out = []
        for r in self.columns:
            common = {
                **base,
                "table_name": r.table,
                "segment": r.segment,
                "feature": r.column,
                "kind": r.kind,
                "status": r.status,
                "skip_reason": r.skip_reason,
                "n_ref": r.n_ref,
                "n_cur": r.n_cur,
                "null_rate_ref": r.null_rate_ref,
                "null_rate_cur": r.null_rate_cur,
            }
            for metric in [m for m in METRICS if m in r.metrics] or ["psi"]:
                is_psi = metric == "psi"
                out.append(
                    {
                        **common,
                        "metric": metric,
                        "value": r.metrics.get(metric),
                        "warn_threshold": r.warn_threshold if is_psi else None,
                        "threshold": r.threshold if is_psi else None,
                        "severity": r.severity if is_psi else ("info" if r.severity else None),
                    }
                )
        v = self.verdict
        out.append(
            {
                **base,
                "table_name": None,
                "segment": ALL_SEGMENTS,
                "feature": DATASET,
                "kind": None,
                "metric": "drifted_share",
                "value": v.drifted_share,
                "warn_threshold": None,
                "threshold": None,
                "severity": v.verdict,
                "status": "skipped" if v.verdict == "skipped" else "evaluated",
                "skip_reason": "every column was skipped" if v.verdict == "skipped" else None,
                "n_ref": None,
                "n_cur": None,
                "null_rate_ref": None,
                "null_rate_cur": None,
            }
        )
        return out

    def to_arrow(self, checked_at: dt.datetime) -> pa.Table:
        """The ``drift_results`` rows as Arrow, typed as the table's DDL."""
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows(checked_at), schema=results_schema())


def results_schema() -> pa.Schema:
    """Arrow schema of ``drift_results`` (see sql/ddl/drift_results.sql), partition column first."""
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    return pa.schema(
        [
            ("logical_date", pa.date32()),
            ("run_id", s),
            ("model_name", s),
            ("model_version", s),
            ("table_name", s),
            ("segment", s),
            ("feature", s),
            ("kind", s),
            ("metric", s),
            ("value", f),
            ("warn_threshold", f),
            ("threshold", f),
            ("severity", s),
            ("status", s),
            ("skip_reason", s),
            ("n_ref", i),
            ("n_cur", i),
            ("null_rate_ref", f),
            ("null_rate_cur", f),
            ("checked_at", pa.timestamp("us", tz="UTC")),
        ]
    )
