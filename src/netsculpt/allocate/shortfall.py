"""What ``target_plan`` says when a target cannot be met as asked.

Two cases, both naming the value that *is* reachable (the module docstring of
:mod:`netsculpt.allocate.targets` promises it): a target below what the pinned channels allow is an
error that names the costliest pinned layers and the knob that would open them (``allow_inexact=True``
for normalised / attention channels, a channel rule for an op netsculpt has none for, ``ignored=``);
a plan that lands more than the tolerance under the target is returned with a warning.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from netsculpt.allocate.cost import CostModel
from netsculpt.errors import NetsculptWarning, PruningError, warn_user
from netsculpt.graph.channel_graph import ChannelGraph

_INTERFACE = ("reads network input", "it is a network output")


class ShortfallWarning(NetsculptWarning):
    """A plan landed further under its target than the tolerance (``prune_iteratively`` silences it for
    its early rounds, whose shortfall the later ones make up)."""


_NO_RULE = re.compile(r"flows into (`[^`]+`) in `([^`]+)`, which netsculpt has no channel rule for")


@dataclass(frozen=True)
class _Pinned:
    group: str
    share: float  # of the metric, held by the layers these channels belong to
    reason: str
    inexact_only: bool  # allow_inexact=True alone would open every pinned channel of the group


def _pinned(graph: ChannelGraph, cost: CostModel, metric: str) -> list[_Pinned]:
    """Groups with pinned channels (not the model's interface), costliest layers first."""
    res = graph.resolution
    weight = {
        name: float(math.prod(shape)) * (1.0 if metric == "params" else float(rate))
        for name, (shape, _), rate in zip(cost.names, cost.tensors, cost.rates, strict=True)
    }
    total = sum(weight.values()) if metric == "params" else float(cost.base_macs)
    found = []
    for g in graph.groups:
        pinned = g.components[~g.prunable].tolist()
        if not pinned or not g.reasons or all(any(s in r for s in _INTERFACE) for r in g.reasons):
            continue
        held = sum(weight.get(name, 0.0) for name in {m.name for m in g.members})
        inexact_only = (
            not graph.allow_inexact
            and not any("is in ignored" in r for r in g.reasons)
            and all(c in res.soft and c not in res.hard for c in pinned)
        )
        found.append(_Pinned(g.id, held / max(total, 1.0), g.reasons[0], inexact_only))
    return sorted(found, key=lambda p: -p.share)


def fixed_share(metric: str, latency: Any) -> float | None:
    """The share of a latency table's base prediction that is a fixed offset (None for other targets)."""
    if metric != "latency" or not hasattr(latency, "offset_ms"):
        return None
    base = latency.scale * latency.base_sum + latency.offset_ms
    return latency.offset_ms / base if base > 0 else None


def unreachable_error(
    graph: ChannelGraph,
    cost: CostModel,
    metric: str,
    value: float,
    floor_value: float,
    strategy: str,
    min_channels: int,
    round_to: int | str,
    coarse: bool,
    fixed_share: float | None = None,
) -> PruningError:
    """The error for a target below the floor: the floor, what pins it, and what would open it.
    ``fixed_share`` (latency targets) is the part of the predicted latency no width changes: often the
    floor's real cause, which pinned channels alone would not explain."""
    pinned = _pinned(graph, cost, metric)
    hints = []
    if fixed_share is not None and fixed_share >= 0.05:
        hints.append(
            f"{fixed_share:.0%} of the predicted latency is fixed cost that no width changes (per-call "
            "overhead of the runtime and Python between the layers): a runtime without it "
            "(runtime='onnxruntime'), larger inputs or batches, or removing blocks (ns.prune_depth) "
            "lower the floor"
        )
    inexact = [p for p in pinned if p.inexact_only]
    if inexact:
        names = ", ".join(f"`{p.group}`" for p in inexact[:3]) + (" ..." if len(inexact) > 3 else "")
        hints.append(
            f"allow_inexact=True opens {len(inexact)} group(s) pinned only because removing their channels "
            f"is not exact, normalised or attention-scaled ones ({names}; fine-tune afterwards)"
        )
    no_rule: dict[str, list[str]] = {}  # op -> where it runs
    for p in pinned:
        for op, where in _NO_RULE.findall(p.reason):
            no_rule.setdefault(op, []).append(where)
    for op, where in list(no_rule.items())[:3]:
        more = f" and {len(where) - 1} more" if len(where) > 1 else ""
        hints.append(f"register a channel rule for {op} (in `{where[0]}`{more}; docs/engine.md)")
    if any("is in ignored" in p.reason for p in pinned):
        hints.append("take layers out of ignored=[...]")
    if coarse:
        hints.append(f"round_to={round_to!r} keeps one width step per group; round_to=1 can prune further")
    top = "; ".join(
        f"`{p.group}` (its layers hold {p.share:.0%} of {metric}): {p.reason}"
        for p in [p for p in pinned if p.share >= 0.01][:3]
    )
    hints.append(f"ask for {metric}>={floor_value:.3f}")
    return PruningError(
        f"target {metric}={value:.3f} is unreachable: the most this model can be pruned "
        f"({strategy}, min_channels={min_channels}) leaves {metric}={floor_value:.3f} of the original"
        + (f". Pinned channels: {top}" if top else "")
        + ". What would help: "
        + "; or ".join(hints)
        + " (ns.trace(model, inputs) lists every pinned group; docs/engine.md says what each reason needs)"
    )


def warn_under(
    metric: str, value: float, reached: float, tolerance: float, round_to: int | str, exact: float | None
) -> None:
    """Say so when a plan lands further under its target than ``tolerance``: channels come in steps
    (of the width grid, or single channels worth several percent of a small model), and the closest plan
    at or under the target is what is returned."""
    if exact is not None and exact > reached:
        how = (
            "chose the fastest measured candidate"
            if round_to == "auto"
            else "moves each group by a whole width step"
        )
        why = f"round_to={round_to!r} {how}; exact widths (round_to=1) reach {exact:.3f}"
    else:
        why = "one more channel of any group would overshoot it; this is the closest plan under the target"
    warn_user(
        f"target {metric}={value:.3f} lands at {reached:.3f}, {(1 - reached / value):.1%} under (more than "
        f"the {tolerance:.0%} tolerance): {why}",
        ShortfallWarning,
    )
