"""The SVG charts: well-formed XML, escaped text, the data where it should be."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest

from airflow_ml_provider.plugins import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (0.39, 0.47), (0.5, 0.5), (-3.0, 12.0), (1e-5, 3e-5), (0.0, 12345.0)]
)
def test_nice_ticks_cover_the_range_with_round_steps(lo, hi):
    ticks = charts.nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi
    assert 2 <= len(ticks) <= 12
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1.0, 2.0, 5.0, 10.0)


def test_nice_ticks_refuse_non_finite_bounds():
    with pytest.raises(ValueError, match="finite"):
        charts.nice_ticks(0.0, float("nan"))


def test_line_chart_draws_each_series_with_a_point_per_value_and_splits_at_gaps():
    svg = charts.line_chart(
        ["d1", "d2", "d3", "d4"],
        [charts.Series("model", [0.1, 0.2, None, 0.4]), charts.Series("baseline", [0.1, 0.1, 0.1, 0.1], dashed=True)],
        title="t",
    )
    root = parse(svg)
    groups = {g.get("data-series"): g for g in root.iter(f"{SVG}g") if g.get("data-series")}
    assert [len(list(g.iter(f"{SVG}circle"))) for g in groups.values()] == [3, 4]
    # The gap leaves one two-point segment (d1-d2) and a lone point (d4) for "model".
    model_lines = list(groups["model"].iter(f"{SVG}polyline"))
    assert len(model_lines) == 1 and len(model_lines[0].get("points").split()) == 2
    assert groups["baseline"].find(f"{SVG}polyline").get("stroke-dasharray") == "6 4"
    # Higher values are drawn higher (smaller y).
    ys = [float(c.get("cy")) for c in groups["model"].iter(f"{SVG}circle")]
    assert ys[0] > ys[1] > ys[2]


def test_a_single_point_is_a_dot_in_the_middle():
    root = parse(charts.line_chart(["v1"], [charts.Series("m", [0.5])], title="one", width=500))
    (dot,) = root.iter(f"{SVG}circle")
    assert float(dot.get("cx")) == pytest.approx(64 + (500 - 64 - 24) / 2)
    assert not list(root.iter(f"{SVG}polyline"))


def test_text_is_escaped_so_names_cannot_inject_markup():
    svg = charts.line_chart(["<b>&"], [charts.Series('x"><script>alert(1)</script>', [1.0])], title="a < b")
    root = parse(svg)
    assert not list(root.iter("script")) and not list(root.iter(f"{SVG}script"))
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "<b>&" in texts and "a < b" in texts


def test_series_length_must_match_the_labels():
    with pytest.raises(ValueError, match="series 'm' has 1 values for 2 x labels"):
        charts.line_chart(["a", "b"], [charts.Series("m", [1.0])], title="t")
    with pytest.raises(ValueError, match="categories"):
        charts.bar_chart(["a", "b"], [charts.Series("m", [1.0])], title="t")


def test_percent_axis_labels():
    root = parse(
        charts.line_chart(["a", "b"], [charts.Series("c", [0.25, 0.5])], title="t", y_min=0, y_max=1, percent=True)
    )
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "0%" in texts and "100%" in texts
    assert [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")] == ["c @ a: 25%", "c @ b: 50%"]


def test_heatmap_colours_cells_by_severity_and_leaves_missing_cells_blank():
    cells = {
        ("f1", "d1"): charts.Cell(0.02, "ok"),
        ("f1", "d2"): charts.Cell(0.3, "drift", "f1 drifted"),
        ("f2", "d2"): charts.Cell(None, "skipped"),
    }
    root = parse(charts.heatmap(["f1", "f2"], ["d1", "d2"], cells, title="psi", legend=[("warn", "warn: PSI ≥ 0.1")]))
    drawn = [g for g in root.iter(f"{SVG}g") if g.get("data-severity")]
    assert [g.get("data-severity") for g in drawn] == ["ok", "drift", "skipped"]
    fills = [g.find(f"{SVG}rect").get("fill") for g in drawn]
    assert fills == [charts.SEVERITY_COLOURS[s] for s in ("ok", "drift", "skipped")]
    assert drawn[1].find(f"{SVG}title").text == "f1 drifted"
    assert [t.text for t in drawn[2].iter(f"{SVG}text")] == ["n/a"]
    assert "warn: PSI ≥ 0.1" in [t.text for t in root.iter(f"{SVG}text")]


def test_heatmap_is_wide_enough_for_its_title_and_legend():
    title = "a long title " * 8
    root = parse(charts.heatmap(["f"], ["d"], {}, title=title, legend=[("ok", "ok: PSI < 0.1")]))
    assert int(root.get("width")) >= 8 * len(title)


def test_bar_chart_groups_bars_per_category():
    root = parse(
        charts.bar_chart(
            ["ndcg", "recall"], [charts.Series("model", [0.5, 0.8]), charts.Series("base", [0.4, None])], title="t"
        )
    )
    groups = {g.get("data-series"): g for g in root.iter(f"{SVG}g") if g.get("data-series")}
    heights = {name: [float(r.get("height")) for r in g.iter(f"{SVG}rect")] for name, g in groups.items()}
    assert len(heights["model"]) == 2 and len(heights["base"]) == 1  # None draws no bar
    assert heights["model"][1] > heights["model"][0] > heights["base"][0]


def test_hbar_chart_draws_one_bar_per_value_longest_to_the_largest_and_skips_none():
    svg = parse(
        charts.hbar_chart(
            ["user_events", "pair_price_ratio <&>"],
            [charts.Series("ref", [0.25, None]), charts.Series("cur", [0.5, 0.1])],
            title="bins <of> a column",
            percent=True,
        )
    )
    assert svg.get("class") == "chart hbar-chart"
    bars = {
        r.find(f"{SVG}title").text: float(r.get("width"))
        for r in svg.iter(f"{SVG}rect")
        if r.find(f"{SVG}title") is not None
    }
    assert set(bars) == {"ref user_events: 25.0%", "cur user_events: 50.0%", "cur pair_price_ratio <&>: 10.0%"}
    assert bars["cur user_events: 50.0%"] == pytest.approx(2 * bars["ref user_events: 25.0%"], abs=0.2)
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert "pair_price_ratio <&>" in labels  # escaped in the SVG, parsed back here


def test_hbar_chart_refuses_a_series_of_the_wrong_length():
    with pytest.raises(ValueError, match="series 'x' has 1 values for 2 categories"):
        charts.hbar_chart(["a", "b"], [charts.Series("x", [1.0])], title="t")
