"""``bench/scale.py``'s arithmetic: the growth exponent per step and the table bench/README.md shows.

The bench itself runs each step of a day in its own process on worlds of 10k+ users (minutes);
its stage calls are the CLI's own functions, exercised by their tests.
"""

from __future__ import annotations

import importlib.util
import math

import pytest

from tests.paths import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _size(users: int, wall: float) -> dict:
    row = {"wall_s": wall, "cpu_s": wall, "peak_rss_mb": 100.0, "rows": users}
    return {"users": users, "steps": [{"step": name, **row} for name in _bench().STEPS]}


def test_the_exponent_is_1_for_linear_growth_and_2_for_quadratic():
    bench = _bench()
    linear = bench.exponents([_size(10_000, 2.0), _size(100_000, 20.0)])
    assert {e["wall_s"] for e in linear} == {1.0} and {e["peak_rss_mb"] for e in linear} == {0.0}
    quadratic = bench.exponents([_size(10_000, 1.0), _size(100_000, 100.0)])
    assert {e["wall_s"] for e in quadratic} == {2.0}
    assert quadratic[0]["rows"] == pytest.approx(round(math.log(10) / math.log(10), 2))


def test_the_table_has_a_row_per_step_and_a_column_per_size_and_growth():
    bench = _bench()
    result = {"sizes": [_size(10_000, 2.0), _size(100_000, 20.0)]}
    result["exponents"] = bench.exponents(result["sizes"])
    lines = bench.table(result).splitlines()
    assert len(lines) == 2 + len(bench.STEPS)
    assert "10,000 users" in lines[0] and "exponent 10,000 -> 100,000" in lines[0]
    assert lines[2 + bench.STEPS.index("candidates")].startswith("| candidates | 2.0 / 2.0 / 100 / 10,000 |")
    assert lines[-1].endswith("| 1.00 / 1.00 / 0.00 |")


def test_a_feature_step_alone_first_writes_the_days_steps_it_reads(tmp_path):
    bench = _bench()
    assert bench.upstream_steps(("features",)) == ["user_features", "item_features", "candidates"]
    assert bench.upstream_steps(("candidates", "features")) == ["user_features", "item_features"]
    assert bench.upstream_steps(("user_features", "drift")) == []
    (tmp_path / "step-candidates.json").write_text("{}")  # a kept world: written by an earlier run
    assert bench.upstream_steps(("features",), done=tmp_path.glob("step-*.json")) == ["user_features", "item_features"]
