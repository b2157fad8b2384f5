"""Iterative pruning: rounds of score -> prune -> fine-tune towards one target of the original model."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from netsculpt import checks
from netsculpt.allocate import Target
from netsculpt.allocate.shortfall import ShortfallWarning
from netsculpt.errors import ConfigError, PruningError, warn_user
from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.channel_graph import ignored_module_names

WHERE = "ns.prune_iteratively"
TOLERANCE = 0.02  # what target_plan holds a one-shot target to


def prune_iteratively(
    model: nn.Module,
    example_inputs: Any,
    *,
    steps: int,
    target: Target | str | dict[str, float] | None = None,
    finetune: Callable[[nn.Module, int], None] | None = None,
    **options: Any,
) -> nn.Module:
    """Reach ``target`` (a fraction of ``model``) in ``steps`` rounds of score -> prune -> ``finetune(model,
    step)``; scores are recomputed on the partly pruned, fine-tuned network each round.

    Each round aims at an equal geometric share of what is left between the cost reached so far and the
    target, both fractions of the *original* model: a round that lands under its share (channels come in
    grid steps) is made up by the later ones, and the last solves for ``target`` itself, as closely as
    one-shot ``ns.prune(target=...)``. Warnings give values as fractions of the original.
    """
    if target is None:
        raise ConfigError(
            f"{WHERE} needs target=: what the pruned model should cost, as a fraction of this one "
            "(target='macs=0.4', 'params=0.5', 'channels=0.6' or ns.Target(macs=0.4)); for the same ratio "
            "in every layer prune once with ns.prune(model, x, ratio=R)"
        )
    steps = checks.whole(steps, "steps", WHERE, error=PruningError)
    checks.function(finetune, "finetune", WHERE, PruningError)
    from netsculpt.prune import apply_plan, plan_defaults, plan_pruning, scaled_plan

    checks.known_options(
        options, plan_pruning, WHERE, PruningError, drop=("ratio", "target", "widths", "graph")
    )
    target = Target.coerce(target)
    if target.metric == "latency":
        raise PruningError(
            "prune_iteratively takes macs=, params= or channels= targets; for a latency target prune once "
            "with ns.prune(..., target=Target(latency=F)) or search widths with netsculpt.search"
        )
    defaults = {"ignored": (), "allow_inexact": False}
    tracing = {k: options.get(k, v) for k, v in defaults.items()}
    # as names, once: each round prunes a copy, in which the caller's module objects are not found
    tracing["ignored"] = ignored_module_names(model, tracing["ignored"])  # globs and classes expanded there
    planning = {k: v for k, v in options.items() if k != "ignored"}
    original = _cost(model, example_inputs, trace(model, example_inputs, **tracing), target.metric)
    current = model
    for step in range(1, steps + 1):
        graph = trace(current, example_inputs, **tracing)
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
        elif step == steps and reached < target.value * (1 - TOLERANCE):
            warn_user(
                f"target {target.metric}={target.value:.3f} lands at {reached:.3f} of the original, "
                f"{1 - reached / target.value:.1%} under: an earlier round's width steps went past it",
                ShortfallWarning,
            )
        if finetune is not None:
            finetune(current, step)
    return current


def _cost(model: nn.Module, example_inputs: Any, graph: ChannelGraph, metric: str) -> float:
    """``model``'s cost in ``metric`` (for channels, the prunable ones ``Target(channels=...)`` counts)."""
    if metric == "channels":
        return float(sum(g.n_prunable for g in graph.prunable_groups))
    if metric == "params":
        return float(sum(p.numel() for p in model.parameters()))
    from netsculpt.measure import count_macs

    return float(count_macs(model, example_inputs)[0])
