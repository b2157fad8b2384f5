"""``ns.prune_depth``: remove whole residual blocks; ``ns.fold``: merge layers exactly for deployment.

Both record a plain-data edit (``prune_depth`` / ``fold``, :mod:`netsculpt.edits.depth`) so ``ns.save``
/ ``ns.load`` rebuild the model, and both compose with width pruning in either order (each edit is
replayed on the model the previous one left).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netsculpt import checks
from netsculpt.allocate import Target
from netsculpt.errors import PruningError
from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.depth import DepthUnit
from netsculpt.graph.tracing import as_tuple
from netsculpt.modes import module_modes, restore_modes
from netsculpt.spec import append_step, ensure_base
from netsculpt.surgery.depth import remove_blocks_, replacement
from netsculpt.surgery.fold import fold_, merge_grows, why_not


class BudgetError(PruningError):
    """No set of removable blocks reaches the target; ``closest`` is the best fraction reachable."""

    def __init__(self, message: str, closest: float) -> None:
        super().__init__(message)
        self.closest = closest


@dataclass
class DepthPlan:
    """Which blocks go, and what the choice costs (fractions of the model it was planned on)."""

    blocks: list[dict[str, Any]]
    scores: dict[str, float]
    cost: float | None = None  # reached fraction of the target metric


def remove_blocks(model: nn.Module, blocks: list[dict[str, Any]], *, inplace: bool = False) -> nn.Module:
    """Apply block specs (``{"name", "shortcut", "post"}``) and record the ``prune_depth`` edit."""
    target = model if inplace else copy.deepcopy(model)
    ensure_base(target)
    remove_blocks_(target, blocks)
    append_step(target, {"kind": "prune_depth", "blocks": [dict(b) for b in blocks]})
    return target


def _named(graph: ChannelGraph, names: list[str]) -> list[DepthUnit]:
    units = {u.name: u for u in graph.blocks}
    chosen = []
    for name in names:
        if name not in units:
            close = difflib.get_close_matches(name, list(units), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise PruningError(
                f"{name!r} is not a residual block of this model.{hint} Blocks: see ns.trace(...)"
            )
        if not units[name].removable:
            raise PruningError(f"block {name!r} cannot be removed: {units[name].reason}")
        chosen.append(units[name])
    return chosen


def block_macs(model: nn.Module, example_inputs: Any, units: list[DepthUnit]) -> tuple[int, dict[str, int]]:
    """Model MACs and the MACs each block's branch runs (what removing it saves)."""
    from netsculpt.measure.macs import count_macs

    total, layers = count_macs(model, example_inputs)
    saved = {}
    for u in units:
        skip = f"{u.name}.{u.shortcut}" if u.shortcut else None
        saved[u.name] = sum(
            layer.macs
            for layer in layers
            if layer.name.startswith(u.name + ".")
            and not (skip and (layer.name == skip or layer.name.startswith(skip + ".")))
        )
    return total, saved


@torch.no_grad()
def block_latency(
    model: nn.Module, example_inputs: Any, units: list[DepthUnit], runs: int = 20
) -> tuple[float, dict[str, float]]:
    """Measured model latency (ms, one thread) and each block's latency minus its replacement's."""
    from netsculpt.measure.latency import measure_latency
    from netsculpt.measure.latency_model import median_time_ms

    modules = dict(model.named_modules())
    captured: dict[str, tuple] = {}

    def keep_input(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:  # returns None: output kept
            captured.setdefault(name, args)

        return hook

    handles = [modules[u.name].register_forward_hook(keep_input(u.name)) for u in units]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    modes = module_modes(model)
    model.eval()
    try:
        model(*as_tuple(example_inputs))
        for h in handles:
            h.remove()
        base = measure_latency(model, example_inputs, runs=runs)
        saved = {}
        for u in units:
            block, args = modules[u.name], captured[u.name]
            short = replacement(copy.deepcopy(block), u.to_dict()).eval()
            full = median_time_ms(lambda b=block, a=args: b(*a), runs, 3, "thread")
            rest = median_time_ms(lambda s=short, a=args: s(*a), runs, 3, "thread")
            saved[u.name] = max(full - rest, 0.0)
    finally:
        torch.set_num_threads(threads)
        restore_modes(modes)
    return base, saved


def plan_depth(
    model: nn.Module,
    example_inputs: Any,
    *,
    blocks: int | str | list[str] | None = None,
    target: Target | str | dict[str, float] | None = None,
    criterion: str = "output_change",
    data: Any = None,
    calib_batches: int | None = None,
    graph: ChannelGraph | None = None,
) -> DepthPlan:
    """Choose blocks: the named ones, the ``blocks`` lowest-scoring, or as few as reach ``target``.

    ``target`` takes the spellings ``ns.prune`` takes (``Target(macs=0.5)``, ``"macs=0.5"``,
    ``{"macs": 0.5}``); ``blocks`` a count, one block name or a list of names."""
    from netsculpt.depth.criteria import block_scores

    if not isinstance(criterion, str) and not callable(getattr(criterion, "score", None)):
        raise checks.refuse(
            "criterion",
            criterion,
            "'output_change', 'sensitivity', a channel criterion (ns.list_criteria()) or a criterion object",
            "ns.prune_depth",
            PruningError,
        )
    checks.optional_whole(calib_batches, "calib_batches", "ns.prune_depth", error=PruningError)
    if (blocks is None) == (target is None):
        raise PruningError("give exactly one of blocks= (a count or block names) or target=Target(...)")
    blocks = _read_blocks(blocks)
    target = Target.coerce(target) if target is not None else None
    graph = graph or trace(model, example_inputs)
    if isinstance(blocks, list):
        chosen = _named(graph, blocks)
        return DepthPlan([u.to_dict() for u in chosen], {})
    units = [u for u in graph.blocks if u.removable]
    if not units:
        raise PruningError(
            "this model has no removable residual blocks (print ns.trace(model, x) to see why)"
        )
    scores = block_scores(model, graph, units, criterion, data, as_tuple(example_inputs), calib_batches)
    order = sorted(units, key=lambda u: (scores[u.name], u.name))
    if isinstance(blocks, int):
        if not 0 < blocks <= len(units):
            raise PruningError(
                f"blocks={blocks}: this model has {len(units)} removable blocks; ask for 1..{len(units)}"
            )
        return DepthPlan([u.to_dict() for u in order[:blocks]], scores)
    return _plan_target(model, example_inputs, order, scores, target)


def _read_blocks(blocks: Any) -> int | list[str] | None:
    """A count, or block names: one name is a list of one, anything else is refused here rather than
    failing deep inside the planner."""
    if blocks is None or (isinstance(blocks, int) and not isinstance(blocks, bool)):
        return blocks
    if isinstance(blocks, str):
        return [blocks]
    if isinstance(blocks, list | tuple) and all(isinstance(b, str) for b in blocks):
        return list(blocks)
    raise PruningError(
        f"blocks={blocks!r}: give a count (blocks=2), a block name ('layer1.1') or a list of names "
        "(see ns.trace(model, x).blocks)"
    )


def _plan_target(
    model: nn.Module, example_inputs: Any, order: list[DepthUnit], scores: dict[str, float], target: Target
) -> DepthPlan:
    if target.metric == "macs":
        total, saved = block_macs(model, example_inputs, order)
    elif target.metric == "latency":
        total, saved = block_latency(model, example_inputs, order)
    elif target.metric == "params":
        from netsculpt.measure.macs import count_params

        total = count_params(model)
        saved = {
            u.name: count_params(model.get_submodule(u.name)) - _shortcut_params(model, u) for u in order
        }
    else:
        raise PruningError("prune_depth takes Target(macs=), Target(params=) or Target(latency=)")
    left, chosen = float(total), []
    for u in order:
        if left <= target.value * total:
            break
        chosen.append(u)
        left -= saved[u.name]
    reached = left / total
    if reached > target.value + 1e-9:
        raise BudgetError(
            f"removing every removable block ({len(order)}) leaves {reached:.3f} of the {target.metric}; the "
            f"target {target.value} is out of reach by depth alone: closest achievable is {reached:.3f}. "
            "Combine with width pruning (ns.prune) or compound scaling (netsculpt.depth.compound).",
            reached,
        )
    return DepthPlan([u.to_dict() for u in chosen], scores, reached)


def _shortcut_params(model: nn.Module, unit: DepthUnit) -> int:
    from netsculpt.measure.macs import count_params

    return count_params(model.get_submodule(f"{unit.name}.{unit.shortcut}")) if unit.shortcut else 0


def prune_depth(model: nn.Module, example_inputs: Any, *, inplace: bool = False, **options: Any) -> nn.Module:
    """Return a copy of ``model`` with whole residual blocks removed (see :func:`plan_depth` for options:
    ``blocks``, ``target``, ``criterion``, ``data``, ``calib_batches``). Each removed block becomes its
    shortcut (identity or projection) and the activations after its add: exactly the model with that
    block's branch output zeroed."""
    checks.known_options(options, plan_depth, "ns.prune_depth", PruningError)
    checks.flag(inplace, "inplace", "ns.prune_depth", PruningError)
    plan = plan_depth(model, example_inputs, **options)
    return remove_blocks(model, plan.blocks, inplace=inplace)


def fold_plan(
    model: nn.Module, example_inputs: Any, *, convs: bool = True, grouped: bool = False
) -> list[dict[str, Any]]:
    """Exact merges of the traced model: every conv/linear -> BN pair, then conv -> conv pairs (chains
    too). ``grouped=True`` also merges grouped/depthwise convs into dense ones (DepthShrinker): exact, but
    the dense conv can cost more MACs than the pair, so it is asked for, not done by default."""
    graph = trace(model, example_inputs)
    modules = dict(model.named_modules())
    merges = []
    for u in graph.depth:
        if u.kind == "fold-bn" and u.removable and not why_not(modules[u.name], modules[u.second], "bn"):
            merges.append({"op": "bn", "first": u.name, "second": u.second})
    if convs:
        merges += _conv_merges(model, example_inputs, merges, grouped)
    return merges


def _conv_merges(
    model: nn.Module, example_inputs: Any, bn_merges: list[dict[str, Any]], grouped: bool
) -> list[dict[str, Any]]:
    """Conv pairs adjacent once BatchNorms are folded; repeated on the merged model until no pair is
    left, so a chain (1×1 → depthwise → 1×1, k×k → 1×1 → 1×1) ends as one conv. Each round's pairs are
    disjoint; the merged conv keeps the first name, so later rounds' pairs replay in order."""
    trial = fold_(copy.deepcopy(model), bn_merges) if bn_merges else model
    out: list[dict[str, Any]] = []
    while True:
        graph = trace(trial, example_inputs)
        modules = dict(trial.named_modules())
        found, used = [], set()
        for u in graph.depth:
            if u.kind != "fold-conv" or not u.removable or u.name in used or u.second in used:
                continue
            first, second = modules[u.name], modules[u.second]
            if not grouped and (getattr(first, "groups", 1) > 1 or getattr(second, "groups", 1) > 1):
                continue
            if not why_not(first, second, "conv") and (grouped or not merge_grows(first, second)):
                found.append({"op": "conv", "first": u.name, "second": u.second})
                used |= {u.name, u.second}
        if not found:
            return out
        trial = fold_(trial if trial is not model else copy.deepcopy(model), found)
        out += found


def fold(
    model: nn.Module,
    example_inputs: Any,
    *,
    inplace: bool = False,
    convs: bool = True,
    grouped: bool = False,
) -> nn.Module:
    """Fold every BatchNorm into the layer before it and merge adjacent linear convs (eval mode, exact);
    ``grouped=True`` merges depthwise/grouped convs into dense ones as well (see :func:`fold_plan`)."""
    checks.flag(convs, "convs", "ns.fold", PruningError)
    checks.flag(inplace, "inplace", "ns.fold", PruningError)
    checks.flag(grouped, "grouped", "ns.fold", PruningError)
    merges = fold_plan(model, example_inputs, convs=convs, grouped=grouped)
    target = model if inplace else copy.deepcopy(model)
    ensure_base(target)
    if merges:
        fold_(target, merges)
        append_step(target, {"kind": "fold", "merges": merges})
    return target.eval()
