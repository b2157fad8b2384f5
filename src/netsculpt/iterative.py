"""Iterative pruning: rounds of score -> prune -> fine-tune towards one target of the original model."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from netsculpt import checks
from netsculpt.allocate import Target
from netsculpt.allocate.shortfall import ShortfallWarning
from netsculpt.allocate.widths import DEFAULT_ROUND_TO
from netsculpt.errors import ConfigError, PruningError, warn_user
from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.channel_graph import ignored_module_names

if TYPE_CHECKING:
    from netsculpt.surgery import PrunePlan

WHERE = "ns.prune_iteratively"
RoundHook = Callable[[nn.Module, int, "PrunePlan | None"], None]  # the pruned model, its round, the plan
TOLERANCE = 0.02  # what target_plan holds a one-shot target to


def prune_iteratively(
    model: nn.Module,
    example_inputs: Any,
    *,
    steps: int,
    target: Target | str | dict[str, float] | None = None,
    finetune: Callable[[nn.Module, int], None] | None = None,
    on_round: RoundHook | None = None,
    **options: Any,
) -> nn.Module:
    """Reach ``target`` (a fraction of ``model``) in ``steps`` rounds of score -> prune -> ``finetune(model,
    step)``; scores are recomputed on the partly pruned, fine-tuned network each round.

    Each round aims at an equal geometric share of what is left between the cost reached so far and the
    target, both fractions of the *original* model: a round that lands under its share (channels come in
    grid steps) is made up by the later ones, and the last solves for ``target`` itself, as closely as
    one-shot ``ns.prune(target=...)``. Warnings give values as fractions of the original.

    ``ratios=`` (with ``ratio=`` for the other groups) instead of a target follows the same geometric
    schedule layer by layer and ends at exactly the widths one-shot ``ns.prune(ratios=...)`` gives.

    ``on_round(model, step, plan)`` sees each round's pruned model and the plan it applied (``None``
    when the round removed nothing) before ``finetune``: ``netsculpt prune --steps`` prints a line per
    round from it and composes the rounds' plans into one plan of the original.
    """
    steps = checks.whole(steps, "steps", WHERE, error=PruningError)
    checks.function(finetune, "finetune", WHERE, PruningError)
    checks.function(on_round, "on_round", WHERE, PruningError)
    from netsculpt.prune import apply_plan, check_ratios, plan_defaults, plan_pruning, scaled_plan

    checks.known_options(options, plan_pruning, WHERE, PruningError, drop=("target", "widths", "graph"))
    if options.get("ratios") is not None:
        check_ratios(options["ratios"], target, None, options.get("round_to", DEFAULT_ROUND_TO))
        return ratio_rounds(model, example_inputs, steps, finetune, options, on_round)
    if "ratio" in options:
        raise PruningError(
            f"{WHERE} takes ratio= only with ratios= (what the groups no key names lose); give target= "
            "alone, or ratios= with ratio="
        )
    if target is None:
        raise ConfigError(
            f"{WHERE} needs target=: what the pruned model should cost, as a fraction of this one "
            "(target='macs=0.4', 'params=0.5', 'channels=0.6' or ns.Target(macs=0.4)), or ratios= (a ratio "
            "per layer, ratio= for the rest); for the same ratio in every layer prune once with "
            "ns.prune(model, x, ratio=R)"
        )
    target = Target.coerce(target)
    if target.metric == "latency":
        raise PruningError(
            "prune_iteratively takes macs=, params= or channels= targets; for a latency target prune once "
            "with ns.prune(..., target=Target(latency=F)) or search widths with netsculpt.search"
        )
    tracing, planning = split_options(model, options)
    original = _cost(model, example_inputs, trace(model, example_inputs, **tracing), target.metric)
    current = model
    for step in range(1, steps + 1):
        graph, plan = trace(current, example_inputs, **tracing), None
        reached = _cost(current, example_inputs, graph, target.metric) / original
        # an equal geometric share of what is left: target.value itself in the last round
        goal = reached * (target.value / reached) ** (1 / (steps - step + 1))
        if goal < reached:  # an earlier round that pruned past the target leaves nothing to remove
            with warnings.catch_warnings():
                if step < steps:  # a shortfall here is made up by the later rounds
                    warnings.simplefilter("ignore", ShortfallWarning)
                step_options = {**plan_defaults(), **planning, "graph": graph}
                step_options["target"] = Target(**{target.metric: goal})
                plan, graph = scaled_plan(current, example_inputs, reached, **step_options)
            current = apply_plan(current, plan, example_inputs, graph=graph)
            plan = plan if plan.keep else None
        elif step == steps and reached < target.value * (1 - TOLERANCE):
            warn_user(
                f"target {target.metric}={target.value:.3f} lands at {reached:.3f} of the original, "
                f"{1 - reached / target.value:.1%} under: an earlier round's width steps went past it",
                ShortfallWarning,
            )
        if on_round is not None:
            on_round(current, step, plan)
        if finetune is not None:
            finetune(current, step)
    return current


def ratio_rounds(
    model: nn.Module,
    example_inputs: Any,
    steps: int,
    finetune: Callable[[nn.Module, int], None] | None,
    options: dict[str, Any],
    on_round: RoundHook | None = None,
) -> nn.Module:
    """``ratios=`` in ``steps`` rounds: the one-shot widths are worked out once, on the original, and
    round ``i`` keeps ``size * (final / size) ** (i / steps)`` of each group (rounded up to its grid), the
    geometric schedule a target's rounds follow, so the last round lands on the one-shot widths."""
    from netsculpt.allocate import check_ratio
    from netsculpt.allocate.per_layer import ratio_widths
    from netsculpt.allocate.widths import check_round_to
    from netsculpt.prune import apply_plan, plan_defaults, scaled_plan

    tracing, planning = split_options(model, options)
    settings = {**plan_defaults(), **planning}
    ratios, default = settings.pop("ratios"), settings.pop("ratio")  # each round plans by widths
    round_to, min_channels = check_round_to(settings["round_to"]), settings["min_channels"]
    graph = trace(model, example_inputs, **tracing)
    default = 0.0 if default is None else check_ratio(default)
    final = ratio_widths(model, graph, ratios, default, round_to=round_to, min_channels=min_channels)
    sizes = {g.id: g.size for g in graph.prunable_groups}
    current = model
    for step in range(1, steps + 1):
        graph = graph if step == 1 else trace(current, example_inputs, **tracing)
        widths = {gid: scheduled_width(sizes[gid], k, step, steps, round_to) for gid, k in final.items()}
        plan, graph = scaled_plan(
            current,
            example_inputs,
            1.0,
            **{**settings, "widths": widths, "graph": graph, "ratio": None, "ratios": None},
        )
        if plan.keep:
            current = apply_plan(current, plan, example_inputs, graph=graph)
        if on_round is not None:
            on_round(current, step, plan if plan.keep else None)
        if finetune is not None:
            finetune(current, step)
    return current


def scheduled_width(size: int, final: int, step: int, steps: int, round_to: int | str) -> int:
    """Channels a group of ``size`` keeps after round ``step`` of ``steps`` on its way to ``final``:
    never fewer than ``final`` (reached in the last round exactly), never more than the round before."""
    from netsculpt.allocate.widths import group_step

    if step >= steps:
        return final
    grid = group_step(size, round_to)
    width = math.ceil(size * (final / size) ** (step / steps) - 1e-9)
    return min(size, max(final, math.ceil(width / grid) * grid))


def split_options(model: nn.Module, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options every round traces with, and those it plans with. ``ignored`` becomes names, once:
    each round prunes a copy, in which the caller's module objects are not found."""
    defaults = {"ignored": (), "allow_inexact": False}
    tracing = {k: options.get(k, v) for k, v in defaults.items()}
    tracing["ignored"] = ignored_module_names(model, tracing["ignored"])  # globs and classes expanded there
    return tracing, {k: v for k, v in options.items() if k != "ignored"}


def _cost(model: nn.Module, example_inputs: Any, graph: ChannelGraph, metric: str) -> float:
    """``model``'s cost in ``metric`` (for channels, the prunable ones ``Target(channels=...)`` counts)."""
    if metric == "channels":
        return float(sum(g.n_prunable for g in graph.prunable_groups))
    if metric == "params":
        return float(sum(p.numel() for p in model.parameters()))
    from netsculpt.measure import count_macs

    return float(count_macs(model, example_inputs)[0])


class PlanRecorder:
    """An ``on_round`` hook that keeps each round's plan, so :func:`compose_plans` can give the plan of
    the original model afterwards (the recipe's iterative prune stage writes it as ``plan.json``)."""

    def __init__(self) -> None:
        self.plans: list[PrunePlan] = []

    def __call__(self, model: nn.Module, step: int, plan: PrunePlan | None) -> None:
        if plan is not None:
            self.plans.append(plan)

    def composed(self) -> PrunePlan | None:
        return compose_plans(self.plans) if self.plans else None


def compose_plans(plans: list[PrunePlan]) -> PrunePlan | None:
    """One plan of the original model from the rounds' plans (each of the model the round before left):
    a group's kept indices are followed back through every round that pruned it. Group ids are the
    producing module's name, which pruning keeps; a round whose sizes do not chain gives ``None``."""
    keep: dict[str, list[int]] = {}
    sizes = dict(plans[0].sizes) if plans else {}  # every group of the original, as one-shot lists them
    for plan in plans:
        for gid, kept in plan.keep.items():
            before = keep.get(gid, list(range(plan.sizes[gid])))
            if len(before) != plan.sizes[gid]:
                return None
            sizes.setdefault(gid, plan.sizes[gid])
            keep[gid] = [before[i] for i in kept]
    meta = {k: v for k, v in plans[-1].meta.items() if k != "predicted"} if plans else {}
    from netsculpt.surgery import PrunePlan

    return PrunePlan(keep, sizes, meta)
