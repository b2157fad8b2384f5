"""``round_to="auto"``: widths snapped to what is fast on the target runtime, then re-solved to the target.

1. Solve the target exactly (``round_to=1``).
2. Per group, time a handful of widths at or below the allocated one (the exact one and the multiples of
   4, 8 and 16 just under it) in the runtime's per-layer lookup table
   (:class:`netsculpt.measure.LatencyModel`), and keep the one with the lowest ``latency - rho * MACs``:
   ``rho`` is the unpruned model's milliseconds per MAC, the rate at which the re-solve spends the MACs a
   narrower width frees on other groups. A ragged width that costs more time than its MACs are worth
   snaps down; a width that runs at the model's average rate stays.
3. Re-solve: give channels back, one grid step at a time, while the target still holds.
4. The snapped plan, the exact plan, the ``"hw"`` plan and the ``round_to=16`` plan (all with the
   caller's strategy) are built and timed end to end on the runtime (interleaved rounds, median), and
   the fastest is kept. The table predicts
   layers in isolation; layout conversions between ragged layers (ONNX Runtime's NCHWc reorders) only
   show end to end, so the last word is a measurement, and auto is never slower than ``round_to=1`` or
   ``16`` beyond measurement noise.

On ``torch.compile`` (:data:`END_TO_END_ONLY`) a per-layer table would compile every layer shape, so
steps 2-3 are skipped and only the whole candidate plans of step 4 are compiled and timed.
"""

from __future__ import annotations

import statistics
import warnings
from typing import Any

import numpy as np
from torch import nn

from netsculpt.allocate.cost import CostModel
from netsculpt.allocate.uniform import select_keep
from netsculpt.errors import NetsculptWarning, PruningError
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.surgery.plan import PrunePlan

SNAP_STEPS = (4, 8, 16)
ROUNDS = 3  # end-to-end check: interleaved rounds over the candidate plans
CHECK_RUNS = 5  # timed runs per candidate per round


# runtimes whose per-layer table costs more than auto saves: ``torch.compile`` compiles every new layer
# shape (seconds each, hundreds of shapes for the snap step); there auto times whole candidate plans only
END_TO_END_ONLY = ("compile",)


class EndToEnd:
    """``auto``'s timer on an :data:`END_TO_END_ONLY` runtime: whole models, prepared through the runtime
    registry, median of ``runs`` on the thread CPU clock; no per-layer table, so no snapped candidate."""

    def __init__(self, runtime: str, example_inputs: Any, threads: int, warmup: int = 2) -> None:
        from netsculpt.measure._inputs import as_tuple
        from netsculpt.runtimes import get_runtime

        self.impl = get_runtime(runtime)
        self.impl.check()
        self.runtime, self.threads, self.warmup = self.impl.name, threads, warmup
        self.inputs = as_tuple(example_inputs)
        self.prepared: dict[int, tuple[nn.Module, Any]] = {}  # compiled once, timed in every round

    def measure_model(self, model: nn.Module, runs: int | None = None) -> float:
        from netsculpt.measure.latency_model import median_time_ms

        if id(model) not in self.prepared:
            self.prepared[id(model)] = (model, self.impl.prepare(model.eval(), self.inputs, self.threads))
        return median_time_ms(self.prepared[id(model)][1].call, runs or CHECK_RUNS, self.warmup, "thread")

    def release(self) -> None:
        for _, prepared in self.prepared.values():
            prepared.close()
        self.prepared.clear()


def auto_latency_model(model: nn.Module, example_inputs: Any, runtime: str, threads: int, fast: bool) -> Any:
    """The per-layer table ``auto`` and latency targets read, on ``runtime``. ``fast`` (rounding only,
    no latency target) times each layer with fewer runs: auto compares widths, and its last word is an
    end-to-end measurement; on :data:`END_TO_END_ONLY` runtimes it is the only measurement."""
    from netsculpt.measure.latency_model import LatencyModel

    if fast and runtime in END_TO_END_ONLY:
        return EndToEnd(runtime, example_inputs, threads)
    if fast:
        return LatencyModel(model, example_inputs, runtime=runtime, threads=threads, runs=7, warmup=2)
    return LatencyModel(model, example_inputs, runtime=runtime, threads=threads)


def snap_candidates(width: int, floor: int) -> list[int]:
    """The exact width and the multiples of 4, 8, 16 just under it, not below ``floor``."""
    cands = {width}
    for step in SNAP_STEPS:
        c = (width // step) * step
        if c >= max(floor, 1):
            cands.add(c)
    return sorted(cands)


def snap_keep(
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    keep: dict[str, list[int]],
    cost: CostModel,
    latency: Any,
    min_channels: int,
) -> dict[str, list[int]]:
    """Step 2: per pruned group, the candidate width with the lowest ``latency - rho * MACs`` (ties keep
    the wider), other groups held at their current widths."""
    from netsculpt.allocate.targets import group_floor

    rho = latency.base_sum / max(cost.base_macs, 1.0)
    keep = {k: list(v) for k, v in keep.items()}
    for gid in list(keep):
        g = graph.group(gid)
        floor = group_floor(g, min_channels)
        best, best_value = None, None
        for width in reversed(snap_candidates(len(keep[gid]), floor)):  # widest first: ties keep it
            trial = dict(keep)
            trial[gid] = select_keep(g, scores[gid], width) if width < len(keep[gid]) else keep[gid]
            value = latency.table_sum_keep(graph, trial) - rho * cost.macs(trial)
            if best_value is None or value < best_value - 1e-9:
                best, best_value = trial[gid], value
        keep[gid] = best
    return keep


def measure_plans(
    model: nn.Module, example_inputs: Any, graph: ChannelGraph, plans: dict[str, PrunePlan], latency: Any
) -> dict[str, float]:
    """Median end-to-end milliseconds of each plan's pruned model on ``latency``'s runtime, measured in
    ``ROUNDS`` interleaved rounds (a machine that slows down slows every candidate alike)."""
    from netsculpt.prune import apply_plan

    models = {name: apply_plan(model, plan, example_inputs, graph=graph) for name, plan in plans.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, m in models.items():
            times[name].append(float(latency.measure_model(m, runs=CHECK_RUNS)))
    getattr(latency, "release", lambda: None)()
    return {name: statistics.median(t) for name, t in times.items()}


def auto_plan(
    model: nn.Module,
    example_inputs: Any,
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    target: Any,
    *,
    strategy: str,
    min_channels: int,
    tolerance: float,
    cost: CostModel,
    latency: Any,
    meta: dict | None = None,
    scale: float = 1.0,
) -> PrunePlan:
    """The fastest measured of the snapped, exact, ``"hw"`` and ``round_to=16`` plans for ``target``
    (``scale``: as in :func:`netsculpt.allocate.targets.target_plan`)."""
    from netsculpt.allocate.rebalance import top_up
    from netsculpt.allocate.shortfall import warn_under
    from netsculpt.allocate.targets import target_measure, target_plan
    from netsculpt.allocate.widths import steps_for

    measure = target_measure(graph, target, cost, latency, scale)
    common = dict(strategy=strategy, min_channels=min_channels, tolerance=tolerance, cost=cost,
                  latency=latency, meta=meta, scale=scale)  # fmt: skip
    with warnings.catch_warnings():  # a candidate's shortfall is not the chosen plan's: said at the end
        warnings.simplefilter("ignore", NetsculptWarning)
        exact = target_plan(model, example_inputs, graph, scores, target, round_to=1, **common)
        plans: dict[str, PrunePlan] = {"1": exact}
        # widths only: every candidate keeps the caller's strategy (the activation-priced "fast" ranking is
        # faster on eager/OpenVINO but changes which channels go, and cost accuracy: docs/engine.md)
        for name, step in (("hw", "hw"), ("16", 16)):
            try:
                plans[name] = target_plan(
                    model, example_inputs, graph, scores, target, round_to=step, **common
                )
            except PruningError:  # the coarse grid cannot reach the target: not a candidate
                continue
    if hasattr(latency, "table_sum_keep"):  # a per-layer table: the snapped candidate
        snapped = snap_keep(graph, scores, exact.keep, cost, latency, min_channels)
        # channels back on each group's 8/16 grid while the target holds
        snapped = top_up(graph, scores, snapped, measure, target.value, tolerance, steps_for(graph, "hw"))
        if measure(snapped) <= target.value * (1 + 1e-9):
            sizes = {g.id: g.size for g in graph.groups}
            plans["snap"] = PrunePlan(snapped, sizes, dict(exact.meta))
    unique: dict[str, PrunePlan] = {}
    for name, plan in plans.items():  # identical plans are timed once
        if not any(plan.keep == other.keep for other in unique.values()):
            unique[name] = plan
    timed = measure_plans(model, example_inputs, graph, unique, latency) if len(unique) > 1 else {"1": 0.0}
    chosen = min(timed, key=lambda name: timed[name])
    plan = unique[chosen]
    if measure(plan.keep) < target.value * (1 - tolerance):
        exact_value = measure(exact.keep)
        warn_under(
            target.metric, target.value, measure(plan.keep), tolerance, "auto",
            exact_value if chosen != "1" else None,
        )  # fmt: skip
    plan.meta = {
        **plan.meta,
        "round_to": "auto",
        "predicted": measure(plan.keep),
        "auto": {"runtime": latency.runtime, "chosen": chosen, "measured_ms": timed},
    }
    return plan
