"""Pareto fronts on hand-made points whose front can be read off by eye."""

from __future__ import annotations

import math

import pytest

from netsculpt.errors import ConfigError
from netsculpt.report import non_dominated, pareto_front

# (name, cost, accuracy). B beats C (cheaper and more accurate); E equals B exactly; D is the most accurate;
# A is the cheapest; F costs more than D for less accuracy; G has no accuracy and cannot be placed.
POINTS = [
    {"name": "A", "macs": 1.0, "accuracy": 0.50},
    {"name": "B", "macs": 2.0, "accuracy": 0.70},
    {"name": "C", "macs": 3.0, "accuracy": 0.60},
    {"name": "D", "macs": 4.0, "accuracy": 0.90},
    {"name": "E", "macs": 2.0, "accuracy": 0.70},
    {"name": "F", "macs": 5.0, "accuracy": 0.85},
    {"name": "G", "macs": 0.5, "accuracy": None},
]


def test_front_keeps_non_dominated_points_sorted_by_cost() -> None:
    front = pareto_front(POINTS, "macs")
    assert [p["name"] for p in front] == ["A", "B", "E", "D"]


def test_equal_cost_keeps_only_the_more_accurate() -> None:
    points = [{"macs": 1, "accuracy": 0.4}, {"macs": 1, "accuracy": 0.6}]
    assert pareto_front(points, "macs") == [points[1]]


def test_attributes_and_callables_work_as_keys() -> None:
    class P:
        def __init__(self, cost: float, acc: float) -> None:
            self.latency_ms, self.accuracy = cost, acc

    pts = [P(3.0, 0.9), P(1.0, 0.8), P(2.0, 0.7)]  # the 2.0 ms point is slower and worse than the 1.0 ms one
    assert pareto_front(pts, "latency_ms") == [pts[1], pts[0]]
    assert pareto_front(pts, cost=lambda p: p.latency_ms, score=lambda p: p.accuracy) == [pts[1], pts[0]]


def test_missing_and_non_finite_values_are_left_out() -> None:
    points = [
        {"macs": math.nan, "accuracy": 0.99},
        {"macs": None, "accuracy": 0.99},
        {"macs": 9, "accuracy": 0.1},
    ]
    assert pareto_front(points, "macs") == [points[2]]
    assert pareto_front([], "macs") == []


def test_non_dominated_in_three_objectives() -> None:
    # (accuracy up, MACs down, latency down): row 2 loses to row 0 on all three; rows 0, 1, 3 each win one.
    rows = [(0.9, 10, 5), (0.8, 5, 6), (0.85, 12, 7), (0.7, 8, 1)]
    assert non_dominated(rows, maximize=(True, False, False)) == [0, 1, 3]


def test_non_dominated_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="rows of 2 objectives"):
        non_dominated([(1, 2, 3)], maximize=(True, False))
    with pytest.raises(ConfigError, match="finite"):
        non_dominated([(1, math.inf)], maximize=(True, False))
