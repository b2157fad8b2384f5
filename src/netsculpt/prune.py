"""The pruning entry points: trace -> score -> allocate -> surgery, in one call."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from netsculpt.allocate import check_ratio, uniform_plan
from netsculpt.errors import PruningError
from netsculpt.graph import ChannelGraph, trace
from netsculpt.graph.tracing import as_tuple
from netsculpt.importance import get_criterion
from netsculpt.spec import append_plan
from netsculpt.surgery import PrunePlan, apply_plan_


def plan_pruning(
    model: nn.Module,
    example_inputs: Any,
    *,
    criterion: str = "l1",
    ratio: float = 0.5,
    data: Iterable[Any] | None = None,
    ignored: Iterable[str | nn.Module] = (),
    allow_inexact: bool = False,
    round_to: int = 1,
    min_channels: int = 1,
    graph: ChannelGraph | None = None,
) -> tuple[PrunePlan, ChannelGraph]:
    """Decide what to remove without touching ``model``: returns the plan and the traced graph."""
    check_ratio(ratio)
    graph = graph or trace(model, example_inputs, ignored=ignored, allow_inexact=allow_inexact)
    crit = get_criterion(criterion)
    if crit.needs - {"weights"} and data is None:
        raise PruningError(
            f"criterion {criterion!r} needs {', '.join(sorted(crit.needs - {'weights'}))}: pass data= "
            "(an iterable of (inputs, labels) batches, e.g. a DataLoader)"
        )
    scores = crit.score(model, graph, data)
    meta = {
        "criterion": criterion if isinstance(criterion, str) else type(criterion).__name__,
        "ratio": ratio,
        "allow_inexact": allow_inexact,
    }
    plan = uniform_plan(graph, scores, ratio, round_to=round_to, min_channels=min_channels, meta=meta)
    return plan, graph


def apply_plan(
    model: nn.Module,
    plan: PrunePlan,
    example_inputs: Any,
    *,
    inplace: bool = False,
    graph: ChannelGraph | None = None,
) -> nn.Module:
    """Replay ``plan`` on ``model`` (re-tracing it) and return the smaller model."""
    graph = graph or trace(model, example_inputs, allow_inexact=bool(plan.meta.get("allow_inexact", False)))
    target = model if inplace else copy.deepcopy(model)
    apply_plan_(target, graph, plan)
    append_plan(target, plan.to_dict(), graph.input_shapes)
    _check_runs(target, example_inputs)
    return target


def prune(
    model: nn.Module,
    example_inputs: Any,
    *,
    criterion: str = "l1",
    ratio: float = 0.5,
    data: Iterable[Any] | None = None,
    ignored: Iterable[str | nn.Module] = (),
    allow_inexact: bool = False,
    round_to: int = 1,
    min_channels: int = 1,
    inplace: bool = False,
) -> nn.Module:
    """Return a physically smaller copy of ``model`` with ``ratio`` of every prunable group removed.

    Channels are ranked by ``criterion`` (see ``ns.list_criteria()``); ``ignored`` modules keep all their
    channels. The original model is left untouched unless ``inplace=True``.
    """
    plan, graph = plan_pruning(
        model,
        example_inputs,
        criterion=criterion,
        ratio=ratio,
        data=data,
        ignored=ignored,
        allow_inexact=allow_inexact,
        round_to=round_to,
        min_channels=min_channels,
    )
    return apply_plan(model, plan, example_inputs, inplace=inplace, graph=graph)


def _check_runs(model: nn.Module, example_inputs: Any) -> None:
    """Run the pruned model once: a width hard-coded in a layer's code fails here, not in the user's hands."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*as_tuple(example_inputs))
    except Exception as exc:
        raise PruningError(
            f"the pruned model no longer runs ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "A module probably "
            "stores a channel count in its own code; pass ignored=[that module] or register a fixup "
            "(netsculpt.surgery.register_fixup)."
        ) from exc
    finally:
        model.train(was_training)
