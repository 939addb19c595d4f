"""Server-side SVG charts for the ML pages: line, bar and horizontal bar charts and a heatmap; no JavaScript.

Each function returns one ``<svg>`` element as a string (well-formed XML, every text
escaped), sized by ``viewBox`` so the page can scale it. Hovering a point or a cell shows
its value through an SVG ``<title>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

#: Colours that read on white and in grey print; the baseline is dashed as well as grey.
PALETTE = ("#2563eb", "#9ca3af", "#059669", "#d97706", "#7c3aed", "#dc2626")
SEVERITY_COLOURS = {"ok": "#16a34a", "warn": "#f59e0b", "drift": "#dc2626", "skipped": "#e5e7eb"}
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'


@dataclass(frozen=True)
class Series:
    """One line: a name for the legend and one value (or None for a gap) per x label.

    ``markers=False`` draws the line alone (a reference level such as a threshold, not data);
    such a line with a single value is drawn across the plot.
    """

    name: str
    values: Sequence[float | None]
    colour: str | None = None
    dashed: bool = False
    markers: bool = True


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: the value shown, its severity band (ok, warn, drift, skipped) and a tooltip."""

    value: float | None
    severity: str
    tooltip: str = ""


def _svg_open(width: int, height: int, label: str, css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class={quoteattr(css_class)} viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" style="max-width:100%;height:auto" role="img" '
        f'aria-label={quoteattr(label)} {_FONT} font-size="12">'
        f"<title>{escape(label)}</title>"
    )


#: Average advance of a 14px semibold system-ui character: a title wider than its chart is fitted, not cut.
_TITLE_CHAR_WIDTH = 7.8


def _title(title: str, x: float, width: int) -> str:
    """The chart's title; one too long for the chart is squeezed to fit (``textLength``) instead of cut off."""
    room = width - x - 8
    fit = f' textLength="{room:.0f}" lengthAdjust="spacingAndGlyphs"' if len(title) * _TITLE_CHAR_WIDTH > room else ""
    return f'<text x="{x}" y="20" font-size="14" font-weight="600" fill="#111827"{fit}>{escape(title)}</text>'


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"nice_ticks needs finite bounds, got {lo!r} and {hi!r}")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value < hi + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_label: str = "",
    y_min: float | None = None,
    y_max: float | None = None,
    width: int = 1040,
    height: int = 320,
    percent: bool = False,
) -> str:
    """A line chart with one point per x label; a single point still shows as a dot."""
    for s in series:
        if len(s.values) != len(x_labels):
            raise ValueError(
                f"series {s.name!r} has {len(s.values)} values for {len(x_labels)} x labels; give one value "
                "(or None) per label."
            )
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not values:
        values = [0.0, 1.0]
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    ticks = nice_ticks(lo, hi)
    lo, hi = min(ticks[0], lo), max(ticks[-1], hi)

    left, right, top, bottom = 64, 24, 40, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(x_labels)
    # Points sit inside the plot, so the first and last x labels are not cut off.
    inset = min(80.0, plot_w / 4)

    def x_at(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else inset + (plot_w - 2 * inset) * i / (n - 1))

    def y_at(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    def label(v: float) -> str:
        return f"{v:.0%}" if percent else _fmt(v)

    out = [_svg_open(width, height, title, "chart line-chart")]
    out.append(_title(title, left, width))
    for t in ticks:
        y = y_at(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{escape(label(t))}</text>')
    if y_label:
        out.append(
            f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
            f'fill="#6b7280">{escape(y_label)}</text>'
        )
    # Thin the x labels so they never overlap (about 90px each).
    every = max(1, math.ceil(n * 90 / max(plot_w - 2 * inset, 1)))
    for i, text in enumerate(x_labels):
        if i % every and i != n - 1:
            continue
        out.append(
            f'<text x="{x_at(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="#374151">{escape(text)}</text>'
        )
    for idx, s in enumerate(series):
        colour = s.colour or PALETTE[idx % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        points = [(x_at(i), y_at(v), v, x_labels[i]) for i, v in enumerate(s.values) if v is not None]
        out.append(f'<g class="series" data-series={quoteattr(s.name)}>')
        # Gaps (None) split the line into segments.
        segment: list[str] = []
        for i, v in enumerate([*s.values, None]):
            if v is not None:
                segment.append(f"{x_at(i):.1f},{y_at(v):.1f}")
            elif segment:
                if len(segment) == 1 and not s.markers:  # a level with one value: across the plot
                    level_y = segment[0].split(",")[1]
                    segment = [f"{left:.1f},{level_y}", f"{width - right:.1f},{level_y}"]
                if len(segment) > 1:
                    joined = " ".join(segment)
                    out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5"{dash} points="{joined}"/>')
                segment = []
        if not s.markers and points:
            # The value on hover, without a dot that would read as a data point.
            levels = ", ".join(sorted({label(v) if percent else f"{v:.4g}" for _, _, v, _ in points}))
            out.append(f"<title>{escape(f'{s.name}: {levels}')}</title>")
        for x, y, v, xl in points if s.markers else ():
            shown = label(v) if percent else f"{v:.4f}"
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                f"<title>{escape(f'{s.name} @ {xl}: {shown}')}</title></circle>"
            )
        out.append("</g>")
    # Legend under the axis labels.
    lx = left
    for idx, s in enumerate(series):
        colour = s.colour or PALETTE[idx % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        ly = height - 16
        out.append(
            f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2.5"{dash}/>'
        )
        out.append(f'<text x="{lx + 30}" y="{ly}" fill="#374151">{escape(s.name)}</text>')
        lx += 56 + 7 * len(s.name)
    out.append("</svg>")
    return "".join(out)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Mapping[tuple[str, str], Cell],
    *,
    title: str,
    legend: Sequence[tuple[str, str]] = (),
    cell_width: int = 84,
    cell_height: int = 22,
) -> str:
    """A grid of rows x columns coloured by each cell's severity; a missing cell stays blank.

    ``legend`` is a list of (severity, text) pairs, e.g. ``("warn", "warn: PSI >= 0.1")``.
    """
    label_w = max(120, 7 * max((len(r) for r in rows), default=0) + 16)
    top, legend_h = 56, 36
    legend_w = sum(34 + 7 * len(text) for _, text in legend) + 16
    width = max(label_w + cell_width * max(len(columns), 1) + 16, legend_w, 8 * len(title) + 16)
    height = top + cell_height * max(len(rows), 1) + legend_h + 8
    out = [_svg_open(width, height, title, "chart heatmap")]
    out.append(_title(title, 8, width))
    for j, col in enumerate(columns):
        x = label_w + j * cell_width + cell_width / 2
        out.append(f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" fill="#374151">{escape(col)}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell_height
        out.append(
            f'<text x="{label_w - 8}" y="{y + cell_height / 2 + 4:.1f}" text-anchor="end" fill="#374151">'
            f"{escape(row)}</text>"
        )
        for j, col in enumerate(columns):
            cell = cells.get((row, col))
            if cell is None:
                continue
            x = label_w + j * cell_width
            fill = SEVERITY_COLOURS.get(cell.severity, SEVERITY_COLOURS["skipped"])
            text = "n/a" if cell.value is None else f"{cell.value:.3f}"
            ink = "#111827" if cell.severity in ("warn", "skipped") else "#ffffff"
            out.append(
                f'<g class="cell" data-severity={quoteattr(cell.severity)}>'
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_width - 2}" height="{cell_height - 2}" rx="3" '
                f'fill="{fill}"/>'
                f'<text x="{x + cell_width / 2:.1f}" y="{y + cell_height / 2 + 4:.1f}" text-anchor="middle" '
                f'font-size="11" fill="{ink}">{escape(text)}</text>'
                f"<title>{escape(cell.tooltip or f'{row} @ {col}: {text}')}</title></g>"
            )
    lx, ly = 8, height - legend_h / 2
    for severity, text in legend:
        fill = SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS["skipped"])
        out.append(f'<rect x="{lx}" y="{ly - 10:.1f}" width="14" height="14" rx="3" fill="{fill}"/>')
        out.append(f'<text x="{lx + 20}" y="{ly + 1:.1f}" fill="#374151">{escape(text)}</text>')
        lx += 34 + 7 * len(text)
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_max: float | None = None,
    width: int = 1040,
    height: int = 280,
) -> str:
    """Grouped vertical bars: one group per category, one bar per series; None draws no bar."""
    _check_series(categories, series)
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    hi = max([*values, 0.0]) if y_max is None else y_max
    ticks = nice_ticks(0.0, hi or 1.0)
    hi = max(ticks[-1], hi)
    left, right, top, bottom = 64, 24, 40, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    group_w = plot_w / max(len(categories), 1)
    bar_w = min(48.0, group_w * 0.7 / max(len(series), 1))

    def y_at(v: float) -> float:
        return top + plot_h - v / hi * plot_h

    out = [_svg_open(width, height, title, "chart bar-chart")]
    out.append(_title(title, left, width))
    for t in ticks:
        y = y_at(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{escape(_fmt(t))}</text>')
    for i, category in enumerate(categories):
        centre = left + group_w * (i + 0.5)
        out.append(
            f'<text x="{centre:.1f}" y="{top + plot_h + 18}" text-anchor="middle" fill="#374151">'
            f"{escape(category)}</text>"
        )
    for idx, s in enumerate(series):
        colour = s.colour or PALETTE[idx % len(PALETTE)]
        out.append(f'<g class="series" data-series={quoteattr(s.name)}>')
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v):
                continue
            x = left + group_w * (i + 0.5) - bar_w * len(series) / 2 + idx * bar_w
            y = y_at(max(v, 0.0))
            out.append(
                f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{top + plot_h - y:.1f}" rx="2" '
                f'fill="{colour}"><title>{escape(f"{s.name} {categories[i]}: {v:.4f}")}</title></rect>'
            )
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="11" '
                f'fill="#374151">{escape(f"{v:.3f}")}</text>'
            )
        out.append("</g>")
    out.extend(_box_legend(series, left, height - 16))
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    percent: bool = False,
    width: int = 1040,
    bar_height: int = 14,
) -> str:
    """Horizontal bars, one row per category (long names stay readable), one bar per series; None draws none."""
    _check_series(categories, series)
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    ticks = nice_ticks(0.0, max([*values, 0.0]) or 1.0)
    hi = ticks[-1]
    label_w = max(120, 7 * max((len(c) for c in categories), default=0) + 16)
    left, right, top, legend_h = label_w, 72, 44, 32 if len(series) > 1 else 8
    group_h = bar_height * len(series) + 8
    height = top + group_h * max(len(categories), 1) + 24 + legend_h
    plot_w = width - left - right

    def x_at(v: float) -> float:
        return left + max(v, 0.0) / hi * plot_w

    def shown(v: float) -> str:
        return f"{v:.1%}" if percent else _fmt(v)

    out = [_svg_open(width, height, title, "chart hbar-chart")]
    out.append(_title(title, 8, width))
    bottom = top + group_h * max(len(categories), 1)
    for t in ticks:
        x = x_at(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{bottom}" stroke="#e5e7eb"/>')
        tick = f"{t:.0%}" if percent else _fmt(t)
        out.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#6b7280">{escape(tick)}</text>')
    for i, category in enumerate(categories):
        y = top + i * group_h
        out.append(
            f'<text x="{left - 8}" y="{y + group_h / 2 + 2:.1f}" text-anchor="end" fill="#374151">'
            f"{escape(category)}</text>"
        )
    for idx, s in enumerate(series):
        colour = s.colour or PALETTE[idx % len(PALETTE)]
        out.append(f'<g class="series" data-series={quoteattr(s.name)}>')
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v):
                continue
            y = top + i * group_h + 4 + idx * bar_height
            w = x_at(v) - left
            out.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_height - 2}" rx="2" fill="{colour}">'
                f"<title>{escape(f'{s.name} {categories[i]}: {shown(v)}')}</title></rect>"
            )
            out.append(
                f'<text x="{left + w + 4:.1f}" y="{y + bar_height - 4}" font-size="11" fill="#374151">'
                f"{escape(shown(v))}</text>"
            )
        out.append("</g>")
    if len(series) > 1:
        out.extend(_box_legend(series, left, height - 14))
    out.append("</svg>")
    return "".join(out)


def _box_legend(series: Sequence[Series], x: int, y: int) -> list[str]:
    """A legend of the bar charts: a colour box and the name of each series, left to right from (x, y)."""
    out = []
    for idx, s in enumerate(series):
        colour = s.colour or PALETTE[idx % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{y - 10}" width="14" height="14" rx="3" fill="{colour}"/>')
        out.append(f'<text x="{x + 20}" y="{y + 1}" fill="#374151">{escape(s.name)}</text>')
        x += 48 + 7 * len(s.name)
    return out


def _check_series(categories: Sequence[str], series: Sequence[Series]) -> None:
    """Every series has one value (or None) per category."""
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(
                f"series {s.name!r} has {len(s.values)} values for {len(categories)} categories; give one value "
                "(or None) per category."
            )
