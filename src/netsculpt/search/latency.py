"""Check a latency model against end-to-end measurement of random pruned variants of its model.

The table predicts a variant from layers timed in isolation; this measures the variants themselves, on
the same runtime, clock and thread count, and reports the relative errors (median and worst). All
variants are measured in interleaved rounds, so a machine that slows down halfway slows every variant
alike instead of biasing the last ones.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from netsculpt.graph import ChannelGraph, trace
from netsculpt.measure.latency_model import LatencyModel
from netsculpt.surgery import PrunePlan


@dataclass
class LatencyCheck:
    """Predicted vs measured milliseconds per variant.

    ``error`` is |predicted - measured| / measured. ``fraction_error`` compares the same for latency as
    a fraction of the unpruned model's, whose latency is measured in the same interleaved rounds: what a
    search uses, and independent of how fast the machine happened to be when the table was measured (on
    a shared machine the speed drifts by tens of percent over minutes).
    """

    runtime: str
    clock: str
    base_measured_ms: float = float("nan")
    variants: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> list[float]:
        return [v["error"] for v in self.variants]

    @property
    def median_error(self) -> float:
        return statistics.median(self.errors)

    @property
    def worst_error(self) -> float:
        return max(self.errors)

    @property
    def median_spread(self) -> float:
        """Median over variants of (slowest round / fastest round - 1): the measurement noise floor."""
        return statistics.median(v["spread"] for v in self.variants)

    @property
    def fraction_errors(self) -> list[float]:
        return [v["fraction_error"] for v in self.variants]

    @property
    def median_fraction_error(self) -> float:
        return statistics.median(self.fraction_errors)

    @property
    def worst_fraction_error(self) -> float:
        return max(self.fraction_errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "clock": self.clock,
            "base_measured_ms": self.base_measured_ms,
            "median_error": self.median_error,
            "worst_error": self.worst_error,
            "median_fraction_error": self.median_fraction_error,
            "worst_fraction_error": self.worst_fraction_error,
            "median_spread": self.median_spread,
            "variants": self.variants,
        }


def random_keep(
    graph: ChannelGraph, rng: np.random.Generator, low: float = 0.3, round_to: int | str = 1
) -> dict[str, list[int]]:
    """Random channels kept in every prunable group: a uniform fraction in [low, 1] of each, rounded to
    a multiple of ``round_to`` (an integer, or each group's "hw"/"auto" step; capped at its size)."""
    from netsculpt.allocate.widths import group_step

    keep = {}
    for g in graph.prunable_groups:
        pinned = np.flatnonzero(~g.prunable)
        step = group_step(g.size, round_to)
        k = round(g.size * rng.uniform(low, 1.0) / step) * step
        k = min(g.size, max(1, step, len(pinned), k))
        kept = np.concatenate(
            [pinned, rng.choice(np.flatnonzero(g.prunable), k - len(pinned), replace=False)]
        )
        if len(kept) < g.size:
            keep[g.id] = sorted(int(i) for i in kept)
    return keep


def _variants(
    model: nn.Module, example_inputs: Any, graph: ChannelGraph, count: int, seed: int, round_to: int | str
):
    from netsculpt.prune import apply_plan

    rng = np.random.default_rng(seed)
    sizes = {g.id: g.size for g in graph.groups}
    keeps = [random_keep(graph, rng, round_to=round_to) for _ in range(count)]
    return keeps, [apply_plan(model, PrunePlan(k, sizes), example_inputs, graph=graph) for k in keeps]


def _measure_interleaved(latency: LatencyModel, models: list[nn.Module], rounds: int) -> list[list[float]]:
    """Each model's latency in each of ``rounds`` passes over all of them."""
    times: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, m in enumerate(models):
            times[i].append(latency.measure_model(m))
    return times


def calibrate_latency_model(
    latency: LatencyModel,
    model: nn.Module,
    example_inputs: Any,
    *,
    variants: int = 3,
    rounds: int = 3,
    seed: int = 0,
    round_to: int | str = 1,
    graph: ChannelGraph | None = None,
) -> None:
    """Fit the table's scale and offset to the base model and ``variants`` random prunings of it,
    measured end to end. Isolated layers miss what happens between them (ONNX Runtime converts layouts
    once per network but once per layer timed alone), and a fitted line absorbs most of that."""
    graph = graph or trace(model, example_inputs)
    keeps, models = _variants(model, example_inputs, graph, variants, seed + 10_000, round_to)
    measured = [statistics.median(t) for t in _measure_interleaved(latency, [model, *models], rounds)]
    sums = [latency.base_sum] + [latency.table_sum_keep(graph, k) for k in keeps]
    latency.calibrate(sums, measured)


def validate_latency_model(
    latency: LatencyModel,
    model: nn.Module,
    example_inputs: Any,
    *,
    variants: int = 8,
    rounds: int = 3,
    seed: int = 0,
    round_to: int | str = 1,
    graph: ChannelGraph | None = None,
) -> LatencyCheck:
    """Measure ``variants`` random prunings of ``model`` end to end (``rounds`` interleaved passes of
    ``latency.runs`` timed runs each, median per variant) and compare with the table's predictions.
    (Calibration variants, if any, come from another seed: these are held out.) ``round_to=8`` draws
    channel counts in multiples of 8, the widths CPU runtimes' blocked layouts (ONNX Runtime's NCHWc)
    need: other counts make it convert layouts between layers, which layers timed alone cannot show."""
    graph = graph or trace(model, example_inputs)
    keeps, models = _variants(model, example_inputs, graph, variants, seed, round_to)
    base_times, *times = _measure_interleaved(latency, [model, *models], rounds)
    base_ms = statistics.median(base_times)
    base_predicted = latency.predict_keep(graph, {})
    check = LatencyCheck(latency.runtime, latency.clock, base_ms)
    for keep, small, samples in zip(keeps, models, times):
        measured = statistics.median(samples)
        predicted = latency.predict_keep(graph, keep)
        fraction, measured_fraction = predicted / base_predicted, measured / base_ms
        check.variants.append(
            {
                "measured_ms": measured,
                "predicted_ms": predicted,
                "predicted_from_model_ms": latency.predict_model(small),
                "error": abs(predicted - measured) / measured,
                "fraction_error": abs(fraction - measured_fraction) / measured_fraction,
                "spread": max(samples) / min(samples) - 1,  # how much the rounds disagree: the noise
                "kept": {gid: len(k) for gid, k in keep.items()},
            }
        )
    return check
