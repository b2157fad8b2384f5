"""Solve for a plan that meets a target: a MACs fraction, a parameter fraction or a channel ratio.

Three strategies:
- ``uniform``: every group loses the same fraction; the fraction is found by bisection.
- ``global``: channels of all groups are ranked together after normalising each group's scores by their
  mean (so a layer with large raw scores cannot shield itself, and none is wiped out: each group keeps at
  least ``min_channels``); the shortest prefix of the ranking that meets the target is removed.
- ``fast``: ``global`` with each normalised score divided by the square root of the channel's share of
  the activation volume (:mod:`netsculpt.allocate.activations`): at the same MACs, cuts lean to channels
  that write many elements per MAC (early, high-resolution layers), which memory-bound layers and eager
  PyTorch turn into time. The target is met exactly as by ``global``.
Both land within ``tolerance`` (2%) of the target when the channel granularity allows, and otherwise say
what the closest achievable value is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from torch import nn

from netsculpt import checks
from netsculpt.allocate.cost import CostModel
from netsculpt.allocate.rebalance import rebalance, top_up
from netsculpt.allocate.shortfall import fixed_share, unreachable_error, warn_under
from netsculpt.allocate.uniform import keep_count, removal_order, select_keep
from netsculpt.errors import PruningError, warn_user
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.graph.groups import ChannelGroup
from netsculpt.surgery.plan import PrunePlan


@dataclass(frozen=True)
class Target:
    """What the pruned model should cost, as fractions of the original (0 < value <= 1).

    ``macs=0.5`` halves multiply-accumulates; ``params=0.3`` keeps 30% of parameters; ``channels=0.6``
    keeps 60% of the prunable channels; ``latency=0.5`` halves the latency predicted by a per-layer
    lookup table measured on this machine (:class:`netsculpt.measure.LatencyModel`). Give exactly one.
    """

    macs: float | None = None
    params: float | None = None
    channels: float | None = None
    latency: float | None = None

    def __post_init__(self) -> None:
        given = {k: v for k, v in self._fields() if v is not None}
        if len(given) != 1:
            raise PruningError(
                "Target takes exactly one of macs=, params=, channels=, latency= (a fraction in (0, 1])"
            )
        ((key, value),) = given.items()
        if not 0.0 < checks.number(value, key, "Target", PruningError) <= 1.0:
            raise PruningError(f"Target {key}={value!r} must be a fraction in (0, 1] of the original model")

    def _fields(self) -> list[tuple[str, float | None]]:
        return [
            ("macs", self.macs),
            ("params", self.params),
            ("channels", self.channels),
            ("latency", self.latency),
        ]

    @classmethod
    def coerce(cls, value: Any) -> Target:
        """A Target from ``Target(macs=0.5)``, ``"macs=0.5"`` or ``{"macs": 0.5}``: the spellings the CLI,
        recipes and search already accept, so ``ns.prune(..., target="macs=0.5")`` means what it says."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and "=" in value:
            key, _, number = value.partition("=")
            value = {key.strip(): number.strip()}
        if isinstance(value, dict) and len(value) == 1:
            ((key, number),) = value.items()
            if key not in {f.name for f in fields(cls)}:
                raise PruningError(f"unknown target {key!r}: use macs=, params=, channels= or latency=")
            try:
                fraction = float(number)
            except (TypeError, ValueError):
                raise PruningError(f"target {key}= needs a number, got {number!r}") from None
            return cls(**{key: fraction})
        raise PruningError(
            f"cannot read a target from {value!r}: use Target(macs=0.5), 'macs=0.5' or {{'macs': 0.5}}"
        )

    @property
    def metric(self) -> str:
        return next(k for k, v in self._fields() if v is not None)

    @property
    def value(self) -> float:
        return float(next(v for _, v in self._fields() if v is not None))


def _channel_fraction(graph: ChannelGraph, keep: dict[str, list[int]]) -> float:
    total = sum(g.n_prunable for g in graph.prunable_groups)
    removed = sum(g.size - len(keep[g.id]) for g in graph.prunable_groups if g.id in keep)
    return 1.0 - removed / max(total, 1)


def target_measure(
    graph: ChannelGraph, target: Target, cost: CostModel, latency: Any, scale: float = 1.0
) -> Callable[[dict[str, list[int]]], float]:
    """``keep -> fraction of the original`` in ``target``'s metric: what the exact solve and ``auto``'s
    re-solve both bisect and top up against, so they judge a plan identically. ``scale`` is the model's
    own cost as a fraction of the original's (an already pruned model: ``prune_iteratively``'s rounds)."""

    def measure(keep: dict[str, list[int]]) -> float:
        if target.metric == "channels":
            return scale * _channel_fraction(graph, keep)
        if target.metric == "latency":
            return scale * latency.fraction(graph, keep)
        return scale * cost.fraction(keep, target.metric)

    return measure


def group_floor(group: ChannelGroup, min_channels: int) -> int:
    """The fewest channels ``group`` may keep: its pinned ones, ``min_channels`` (capped at its size), 1."""
    return max(group.size - group.n_prunable, min(min_channels, group.size), 1)


def _uniform_keep(
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    ratio: float,
    steps: dict[str, int],
    min_channels: int,
) -> dict[str, list[int]]:
    keep = {}
    for g in graph.prunable_groups:
        k = keep_count(g, int(ratio * g.size), round_to=steps[g.id], min_channels=min_channels)
        if k < g.size:
            keep[g.id] = select_keep(g, scores[g.id], k)
    return keep


STRATEGIES = ("uniform", "global", "fast")


def _global_order(
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    min_channels: int,
    price: dict[str, np.ndarray] | None = None,
) -> list[tuple[str, int]]:
    """Removable channels of every group, least important first (group-mean-normalised scores, divided
    by ``price`` per channel when given: the ``"fast"`` strategy's activation price)."""
    entries = []
    for g in graph.prunable_groups:
        s = scores[g.id]
        norm = s / (np.abs(s).mean() + 1e-12)
        if price is not None:
            norm = norm / price[g.id]
        order = removal_order(g, norm)
        floor = group_floor(g, min_channels)
        for rank, ch in enumerate(order[: g.size - floor].tolist()):
            entries.append((float(norm[ch]), rank, g.id, ch))
    entries.sort()
    return [(gid, ch) for _, _, gid, ch in entries]


def _prefix_keep(
    graph: ChannelGraph,
    order: list[tuple[str, int]],
    n: int,
    steps: dict[str, int],
    scores: dict[str, np.ndarray],
) -> dict[str, list[int]]:
    removed: dict[str, set[int]] = {}
    for gid, ch in order[:n]:
        removed.setdefault(gid, set()).add(ch)
    keep = {}
    for gid, rm in removed.items():
        g = graph.group(gid)
        kept = g.size - len(rm)
        if steps[gid] > 1:  # round the kept count up, dropping the least important of the prefix's picks
            k = keep_count(g, g.size - kept, round_to=steps[gid])
            keep[gid] = select_keep(
                g, np.where(np.isin(np.arange(g.size), list(rm)), scores[gid] - 1e30, scores[gid]), k
            )
        else:
            keep[gid] = [i for i in range(g.size) if i not in rm]
    return keep


def _solve_plan(
    model: nn.Module,
    example_inputs: Any,
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    target: Target,
    *,
    strategy: str = "global",
    round_to: int | str = 1,
    min_channels: int = 1,
    tolerance: float = 0.02,
    cost: CostModel | None = None,
    latency: Any = None,
    meta: dict | None = None,
    runtime: str = "torch",
    threads: int = 1,
    scale: float = 1.0,
    on_floor: Callable[[dict[str, list[int]]], None] | None = None,
) -> PrunePlan:
    """A plan whose cost lands at or just under ``target`` (within ``tolerance`` of it when possible).

    Kept counts follow ``round_to`` (an integer step, ``"hw"`` or ``"auto"``; see
    :mod:`netsculpt.allocate.widths`). A latency target, and ``round_to="auto"``, are judged by
    ``latency`` (a :class:`netsculpt.measure.LatencyModel` of ``model``; one is measured here on
    ``runtime`` with ``threads`` threads when not given): each candidate's latency is the sum of its
    layers' timed costs, so the bisection times each new layer shape once, never whole models.
    ``scale`` (``model``'s cost as a fraction of an original it was pruned from) makes ``target`` and every
    value reported fractions of that original.
    """
    from netsculpt.allocate.widths import check_round_to, steps_for

    if strategy not in STRATEGIES:
        raise PruningError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    round_to = check_round_to(round_to)
    cost = cost or CostModel(model, graph, example_inputs)
    if (target.metric == "latency" or round_to == "auto") and latency is None:
        from netsculpt.allocate.auto import auto_latency_model

        latency = auto_latency_model(model, example_inputs, runtime, threads, fast=target.metric != "latency")
    if round_to == "auto":
        from netsculpt.allocate.auto import auto_plan

        return auto_plan(
            model, example_inputs, graph, scores, target, strategy=strategy, min_channels=min_channels,
            tolerance=tolerance, cost=cost, latency=latency, meta=meta, scale=scale,
        )  # fmt: skip
    steps = steps_for(graph, round_to)

    measure = target_measure(graph, target, cost, latency, scale)
    if strategy == "uniform":

        def candidate(x: float) -> dict[str, list[int]]:
            return _uniform_keep(graph, scores, x, steps, min_channels)

        lo, hi = 0.0, 0.999
    else:
        price = None
        if strategy == "fast":
            from netsculpt.allocate.activations import activation_price

            price = activation_price(graph)
        order = _global_order(graph, scores, min_channels, price)

        def candidate(x: float) -> dict[str, list[int]]:
            return _prefix_keep(graph, order, round(x * len(order)), steps, scores)

        lo, hi = 0.0, 1.0
    best = candidate(hi)
    floor_value = measure(best)
    if floor_value > target.value and round_to == "hw":  # exact widths may still reach it
        from netsculpt.errors import NetsculptWarning

        warn_user(  # the default grid is a heuristic: a reachable target wins over it, said out loud
            f"target {target.metric}={target.value:.3f} is out of reach on the round_to='hw' grid (it leaves "
            f"{floor_value:.3f}); using exact widths (round_to=1), which may run slower per MAC",
            NetsculptWarning,
        )
        return _solve_plan(
            model, example_inputs, graph, scores, target, strategy=strategy, round_to=1,
            min_channels=min_channels, tolerance=tolerance, cost=cost, latency=latency,
            meta={**(meta or {}), "round_to_fallback": "hw"}, scale=scale, on_floor=on_floor,
        )  # fmt: skip
    if floor_value > target.value + tolerance * target.value:
        if on_floor is not None:
            on_floor(best)  # the caller may measure the floor plan and refit the table first
        raise unreachable_error(
            graph, cost, target.metric, target.value, floor_value, strategy, min_channels, round_to,
            coarse=any(s > 1 for s in steps.values()), fixed_share=fixed_share(target.metric, latency),
        )  # fmt: skip
    for _ in range(40):  # bisection on the amount removed: cost is monotone in it
        mid = (lo + hi) / 2
        keep = candidate(mid)
        if measure(keep) <= target.value:
            hi, best = mid, keep
        else:
            lo = mid
        if hi - lo < 1e-4:
            break
    best = top_up(graph, scores, best, measure, target.value, tolerance, steps)
    if any(s > 1 for s in steps.values()) and measure(best) < target.value * (1 - tolerance):
        floors = {g.id: group_floor(g, min_channels) for g in graph.prunable_groups}
        best = rebalance(graph, scores, best, measure, target.value, tolerance, steps, floors)
        best = top_up(graph, scores, best, measure, target.value, tolerance, steps)
    if measure(best) < target.value * (1 - tolerance):
        exact = None
        if any(s > 1 for s in steps.values()):  # what exact widths would reach, for the warning
            exact = _exact_widths_value(
                model, example_inputs, graph, scores, target, strategy, min_channels, tolerance, cost,
                latency, scale,
            )  # fmt: skip
        warn_under(target.metric, target.value, measure(best), tolerance, round_to, exact)
    plan_meta = {
        "target": {target.metric: target.value},
        "strategy": strategy,
        "round_to": round_to,
        "predicted": measure(best),
        **(meta or {}),
    }
    return PrunePlan(best, {g.id: g.size for g in graph.groups}, plan_meta)


def target_plan(
    model: nn.Module,
    example_inputs: Any,
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    target: Target,
    *,
    refit: int = 2,
    **options: Any,
) -> PrunePlan:
    """A plan whose cost lands at or just under ``target`` (within ``tolerance`` of it when possible).

    Options as :func:`_solve_plan` (strategy, round_to, min_channels, tolerance, cost, latency, meta,
    runtime, threads, scale). A latency target on a measured table is then checked end to end: the
    pruned model is timed against the original in alternating rounds and, up to ``refit`` times, the
    table's line is refitted to what was measured and the plan solved again
    (:mod:`netsculpt.allocate.latency_refit`; ``refit=0`` trusts the table alone).
    """
    if target.metric != "latency" or refit <= 0 or options.get("round_to") == "auto":
        return _solve_plan(model, example_inputs, graph, scores, target, **options)
    from netsculpt.allocate.latency_refit import refit_plan

    return refit_plan(_solve_plan, model, example_inputs, graph, scores, target, refit, options)


def _exact_widths_value(
    model: nn.Module,
    example_inputs: Any,
    graph: ChannelGraph,
    scores: dict[str, np.ndarray],
    target: Target,
    strategy: str,
    min_channels: int,
    tolerance: float,
    cost: CostModel,
    latency: Any,
    scale: float = 1.0,
) -> float | None:
    """The value the same solve reaches with ``round_to=1`` (same cost model: no new measurement)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its own shortfall is reported by the caller's warning
        try:
            plan = _solve_plan(
                model, example_inputs, graph, scores, target, strategy=strategy, round_to=1,
                min_channels=min_channels, tolerance=tolerance, cost=cost, latency=latency, scale=scale,
            )  # fmt: skip
        except PruningError:
            return None
    return float(plan.meta["predicted"])


def widths_plan(
    graph: ChannelGraph, scores: dict[str, np.ndarray], widths: dict[str, int], *, meta: dict | None = None
) -> PrunePlan:
    """Keep exactly ``widths[name]`` channels of each named group (group id or its producing module),
    the best-scored ones — to reproduce a paper's architecture, e.g. LeNet-5 conv widths 2 and 3."""
    keep = {}
    for name, width in widths.items():
        g = _group_for(graph, name)
        if not isinstance(width, int) or not 1 <= width <= g.size:
            raise PruningError(f"width for {name!r} must be an integer in [1, {g.size}], got {width!r}")
        if width < g.size - g.n_prunable:
            raise PruningError(
                f"group {g.id!r} has {g.size - g.n_prunable} pinned channels: width {width} is too "
                f"small ({g.reasons[0] if g.reasons else ''})"
            )
        if width < g.size:
            keep[g.id] = select_keep(g, scores.get(g.id, np.zeros(g.size)), width)
    return PrunePlan(keep, {g.id: g.size for g in graph.groups}, {"widths": dict(widths), **(meta or {})})


def _group_for(graph: ChannelGraph, name: str):
    for g in graph.groups:
        if g.id == name:
            return g
    for g in graph.groups:  # a module name: the group it produces
        if any(m.module == name and m.role == "out" and m.dim == 0 for m in g.members):
            return g
    raise PruningError(
        f"no channel group or producing module called {name!r}; groups: "
        f"{', '.join(g.id for g in graph.prunable_groups)}"
    )
