"""Chart builders of the ML pages: the data dicts of ``data*.py`` turned into SVG (``charts.py``)."""

from __future__ import annotations

import math
from typing import Any

from airflow_ml_provider.plugins import charts, data

RANKING_METRICS = ("ndcg", "map", "recall", "precision", "coverage")
#: One colour per served model version; grey (PALETTE[1]) is kept for the baseline.
_VERSION_COLOURS = tuple(c for i, c in enumerate(charts.PALETTE) if i != 1)


def models_chart(models: list[dict[str, Any]], model_name: str) -> str:
    """ndcg@k of each version of ``model_name`` next to the gate's baseline, oldest data first.

    Versions are ordered by their data date (then creation time): a model retrained today
    for an older date sits at that date. The baseline is named as the gate chose it
    (``baseline_name``, e.g. candidate order), not assumed to be the popularity list.
    """
    rows = sorted(
        (m for m in models if m["model_name"] == model_name),
        key=lambda m: (m.get("data_date") or "", m["created_at"], m["version"]),
    )
    k = next((m["k"] for m in rows if m.get("k")), None)
    at_k = f"@{k}" if k else ""
    names = sorted({str(m.get("baseline_name") or "baseline") for m in rows})
    baseline = f"{names[0]} baseline" if len(names) == 1 else "the gate's baseline (per version)"
    return charts.line_chart(
        [m["version"] for m in rows],
        [
            charts.Series(f"model {data.METRIC}{at_k}", [m["model_score"] for m in rows], colour=charts.PALETTE[0]),
            charts.Series(
                f"{baseline} {data.METRIC}{at_k}",
                [m["baseline_score"] for m in rows],
                colour=charts.PALETTE[1],
                dashed=True,
            ),
        ],
        title=f"{model_name}: {data.METRIC}{at_k} on the held-out test window vs {baseline}, by version "
        "(oldest data first)",
        y_label=f"{data.METRIC}{at_k}",
    )


def metrics_chart(record: dict[str, Any]) -> str:
    """Every ranking metric at k of one version (the champion) next to the popularity baseline."""
    metrics = record.get("metrics") or {}
    model, baseline = metrics.get("model") or {}, metrics.get("baseline") or {}
    scope = str(metrics.get("scope", "candidates")).replace("_", "-")
    base_name = str(metrics.get("baseline_name") or "candidate_popularity").replace("_", " ") + " baseline"
    names = [m for m in RANKING_METRICS if m in model or m in baseline]
    at_k = f"@{record['k']}" if record.get("k") else ""
    return charts.bar_chart(
        [f"{m}{at_k}" for m in names],
        [
            charts.Series(f"{record['version']}", [model.get(m) for m in names], colour=charts.PALETTE[0]),
            charts.Series(base_name, [baseline.get(m) for m in names], colour=charts.PALETTE[1]),
        ],
        title=f"{record['model_name']} {record['status']} {record['version']}: ranking metrics ({scope}) vs the "
        f"{base_name} (same test-window lists)",
    )


def drift_heatmap(psi: list[dict[str, Any]], feature_table: str = "features") -> str:
    """PSI per checked column (rows) and logical date (columns), coloured by severity.

    Columns of ``feature_table`` (the contract's) are named alone, others as ``table.column``.
    """
    dates = sorted({r["logical_date"] for r in psi})
    names: list[str] = []
    cells: dict[tuple[str, str], charts.Cell] = {}
    # Each column's levels on its newest evaluated date (categorical columns have their own, e.g. 0.05 / 0.1).
    levels: dict[str, tuple[float | None, float | None]] = {}
    for r in psi:
        name = r["feature"] if r["table_name"] in (None, feature_table) else f"{r['table_name']}.{r['feature']}"
        if name not in names:
            names.append(name)
        if r["warn_threshold"] is not None or r["threshold"] is not None:
            levels[name] = (r["warn_threshold"], r["threshold"])
        severity = r["severity"] if r["status"] == "evaluated" else "skipped"
        value = r["value"] if r["value"] is not None and math.isfinite(r["value"]) else None
        tip = (
            f"{name} on {r['logical_date']}: PSI {value:.4f} ({severity}; warn at {r['warn_threshold']}, "
            f"drift at {r['threshold']})"
            if value is not None
            else f"{name} on {r['logical_date']}: skipped ({r.get('skip_reason') or 'no value'})"
        )
        cells[(name, r["logical_date"])] = charts.Cell(value, severity, tip)
    shared = set(levels.values())
    if len(shared) == 1:
        warn, drift = next(iter(shared))
        legend = [
            ("ok", f"ok: PSI < {warn}"),
            ("warn", f"warn: PSI ≥ {warn}"),
            ("drift", f"drift: PSI ≥ {drift}"),
            ("skipped", "skipped"),
        ]
        rows, shown = names, cells
    else:
        # Columns judged at different levels: each row names its own, the legend says so.
        def labelled(name: str) -> str:
            warn, drift = levels.get(name, (None, None))
            return f"{name} (warn {_level(warn)} / drift {_level(drift)})" if name in levels else name

        rows = [labelled(n) for n in names]
        shown = {(labelled(n), d): c for (n, d), c in cells.items()}
        legend = [
            ("ok", "ok: PSI below the column's warn level"),
            ("warn", "warn: PSI ≥ its warn level"),
            ("drift", "drift: PSI ≥ its drift level (levels beside each column)"),
            ("skipped", "skipped"),
        ]
    return charts.heatmap(
        rows,
        dates,
        shown,
        title="PSI by feature and date (all rows; hover a cell for its thresholds)",
        legend=legend,
    )


def _level(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def coverage_chart(coverage: list[dict[str, Any]]) -> str:
    """Catalog coverage of the newest successful run per prediction date; a date with no such run is a gap."""
    dates = data.calendar_days(c["prediction_date"] for c in coverage)
    by_day = {str(c["prediction_date"])[:10]: c["coverage"] for c in coverage}
    return charts.line_chart(
        dates,
        [charts.Series("catalog coverage", [by_day.get(d) for d in dates], colour=charts.PALETTE[2])],
        title="Catalog coverage per prediction date (distinct recommended items / catalog items; a gap: no run)",
        y_label="coverage",
        y_min=0.0,
        y_max=1.0,
        percent=True,
    )


def outcome_chart(series: dict[str, dict[str, float | None]], dates: list[str], metric: str, label: str) -> str:
    """A realized metric by served date: one line per model version, the global popularity list dashed."""
    lines = []
    names = sorted(n for n in series if n != "global popularity")
    for idx, name in enumerate(names):
        values = [series[name].get(d) for d in dates]
        lines.append(charts.Series(f"{name} {label}", values, colour=_VERSION_COLOURS[idx % len(_VERSION_COLOURS)]))
    if "global popularity" in series:
        values = [series["global popularity"].get(d) for d in dates]
        lines.append(charts.Series(f"global popularity {label}", values, colour=charts.PALETTE[1], dashed=True))
    return charts.line_chart(
        dates,
        lines,
        title=f"Realized {label} by served date (a gap: no outcome for that date)",
        y_label=label,
        y_min=0.0,
        percent=metric == "hit_rate",
    )


def importance_chart(importance: list[dict[str, Any]], version: str) -> str:
    """Feature importance (total split gain), largest first."""
    return charts.hbar_chart(
        [i["feature"] for i in importance],
        [charts.Series(f"{version} gain", [i["gain"] for i in importance], colour=charts.PALETTE[0])],
        title=f"Feature importance of {version}: total gain of the splits on each feature",
    )


def psi_trend_chart(trend: list[dict[str, Any]], feature: str) -> str:
    """PSI of one column (all rows) by checked date, with the warn and drift levels as dashed lines."""
    dates = data.calendar_days(r["logical_date"] for r in trend)
    by_day = {r["logical_date"][:10]: r for r in trend}

    def value(day: str, key: str) -> float | None:
        row = by_day.get(day)
        v = row.get(key) if row else None
        return v if isinstance(v, int | float) and math.isfinite(v) else None

    def level(key: str) -> list[float | None]:
        # A level holds between checks: carry each checked date's level forward (and the first one back),
        # so the threshold is one unbroken line, not dots on the checked dates.
        out: list[float | None] = []
        current = next((value(d, key) for d in dates if value(d, key) is not None), None)
        for d in dates:
            current = value(d, key) if value(d, key) is not None else current
            out.append(current)
        return out

    return charts.line_chart(
        dates,
        [
            charts.Series(f"{feature} PSI", [value(d, "value") for d in dates], colour=charts.PALETTE[0]),
            charts.Series("warn at", level("warn_threshold"), colour="#f59e0b", dashed=True, markers=False),
            charts.Series("drift at", level("threshold"), colour="#dc2626", dashed=True, markers=False),
        ],
        title=f"PSI of {feature} by checked date (all rows; a gap: not checked or skipped)",
        y_label="PSI",
        y_min=0.0,
    )


def _bin_label(label: str) -> str:
    """A bin label with its edges at 4 significant digits: ``(0.1234, 12.35]``."""
    if not (label.startswith("(") and label.endswith(("]", ")"))) or ", " not in label:
        return label
    lo, hi = label[1:-1].split(", ", 1)

    def short(x: str) -> str:
        try:
            return f"{float(x):.4g}"
        except ValueError:
            return x

    return f"{label[0]}{short(lo)}, {short(hi)}{label[-1]}"


def bins_chart(found: dict[str, Any]) -> str:
    """Reference vs current share of rows per bin; bins empty on both sides are left out."""
    keep = [i for i, (r, c) in enumerate(zip(found["reference"], found["current"], strict=True)) if r or c]
    labels = [_bin_label(found["labels"][i]) for i in keep]
    return charts.hbar_chart(
        labels,
        [
            charts.Series(
                f"reference ({found['model_version']}, {found['n_ref']:,} rows)",
                [found["reference"][i] for i in keep],
                colour=charts.PALETTE[1],
            ),
            charts.Series(
                f"{found['logical_date']} ({found['n_cur']:,} rows)",
                [found["current"][i] for i in keep],
                colour=charts.PALETTE[0],
            ),
        ],
        title=f"{found['table_name']}.{found['feature']} on {found['logical_date']}: share of rows per reference bin",
        percent=True,
    )


def scope_chart(rows: list[dict[str, Any]], scope: str, k: int | None) -> str:
    """Every ranking metric at k of the model and each baseline in one scope (same test-window lists)."""
    picked = [r for r in rows if r["scope"] == scope]
    at_k = f"@{k}" if k else ""
    return charts.bar_chart(
        [f"{m}{at_k}" for m in RANKING_METRICS],
        [
            charts.Series(
                r["ranker_label"],
                [r.get(m) for m in RANKING_METRICS],
                colour=charts.PALETTE[0] if r["ranker"] == "model" else charts.PALETTE[(i + 1) % len(charts.PALETTE)],
            )
            for i, r in enumerate(picked)
        ],
        title=f"{picked[0]['scope_label'] if picked else scope}: the model vs the baselines on the test window",
    )
