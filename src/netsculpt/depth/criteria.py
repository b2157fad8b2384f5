"""Block criteria: how much a residual block matters (low = removed first).

``output_change``: the block's relative output change when its branch is removed, on calibration data
(one pass, hooks only). ``sensitivity``: accuracy drop on held-out data when the block alone is removed
(one evaluation per block). Any channel criterion (``l1``, ``taylor``, ``chip`` ...): LayerPrune-style,
the mean of that criterion's per-channel scores over the channel groups produced inside the block's
branch, each group normalised by the mean over all groups so criteria of any scale compare.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.errors import PruningError
from netsculpt.graph import ChannelGraph
from netsculpt.graph.depth import DepthUnit
from netsculpt.modes import module_modes, restore_modes
from netsculpt.progress import track
from netsculpt.surgery.depth import remove_blocks_, replacement

BLOCK_CRITERIA = ("output_change", "sensitivity")


def _inputs_of(batch: Any) -> tuple:
    if isinstance(batch, list | tuple) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        return (batch[0],)
    return batch if isinstance(batch, tuple) else (batch,)


@torch.no_grad()
def output_change(
    model: nn.Module, units: list[DepthUnit], data: Any, example_inputs: tuple, batches: int = 4
) -> dict[str, float]:
    """``||block(x) - removed(x)||² / ||block(x)||²`` summed over ``batches`` calibration batches."""
    modules = dict(model.named_modules())
    sums = {u.name: [0.0, 0.0] for u in units}
    # the replacements in eval mode as well: a copy taken in train mode kept its downsample's batch norm
    # on batch statistics (other scores; at batch 1 "Expected more than 1 value per channel")
    repl = {u.name: replacement(copy.deepcopy(modules[u.name]), u.to_dict()).eval() for u in units}

    def hook(name: str):
        def run(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            short = repl[name](*args)
            sums[name][0] += float((output - short).pow(2).sum())
            sums[name][1] += float(output.pow(2).sum())

        return run

    handles = [modules[u.name].register_forward_hook(hook(u.name)) for u in units]
    modes = module_modes(model)
    model.eval()
    try:
        source = itertools.islice(data, batches) if data is not None else [example_inputs]
        for batch in track(list(source), "block output change"):
            model(*_inputs_of(batch))
    finally:
        for h in handles:
            h.remove()
        restore_modes(modes)
    return {n: a / max(b, 1e-12) for n, (a, b) in sums.items()}


def sensitivity(
    model: nn.Module, units: list[DepthUnit], data: Any, batches: int | None = None
) -> dict[str, float]:
    """Held-out accuracy drop with each block removed on its own."""
    from netsculpt.train.evaluate import evaluate

    if data is None:
        raise PruningError(
            "criterion 'sensitivity' evaluates accuracy: pass data= (held-out (inputs, labels))"
        )
    base, _ = evaluate(model, data, max_batches=batches)
    out = {}
    for u in track(units, "block sensitivity"):
        trial = remove_blocks_(copy.deepcopy(model), [u.to_dict()])
        acc, _ = evaluate(trial, data, max_batches=batches)
        out[u.name] = base - acc
    return out


def channel_aggregate(
    model: nn.Module,
    graph: ChannelGraph,
    units: list[DepthUnit],
    criterion: str,
    data: Any,
    batches: int | None,
) -> dict[str, float]:
    """A channel criterion's scores averaged over the groups that live inside each block's branch."""
    from netsculpt.importance import get_criterion

    crit = get_criterion(criterion)
    if batches is not None and hasattr(crit, "calib_batches"):
        crit.calib_batches = batches
    if crit.needs - {"weights"} and data is None:
        raise PruningError(f"criterion {criterion!r} needs data=: pass calibration (inputs, labels) batches")
    scores = crit.score(model, graph, data)
    means = {g.id: float(np.mean(scores[g.id])) for g in graph.groups if g.id in scores and len(scores[g.id])}
    scale = float(np.mean(list(means.values()))) if means else 1.0
    out = {}
    for u in units:
        skip = f"{u.name}.{u.shortcut}" if u.shortcut else None
        inside = []
        for g in graph.groups:
            producers = {m.name.rpartition(".")[0] for m in g.members if m.role == "out"}
            if (
                g.id in means
                and producers
                and all(
                    p.startswith(u.name + ".") and not (skip and (p == skip or p.startswith(skip + ".")))
                    for p in producers
                )
            ):
                inside.append(means[g.id] / max(scale, 1e-12))
        out[u.name] = float(np.mean(inside)) if inside else 0.0
    return out


def block_scores(
    model: nn.Module,
    graph: ChannelGraph,
    units: list[DepthUnit],
    criterion: str,
    data: Any,
    example_inputs: tuple,
    batches: int | None = None,
) -> dict[str, float]:
    """One score per removable block: low scores are removed first."""
    if criterion == "output_change":
        return output_change(model, units, data, example_inputs, batches or 4)
    if criterion == "sensitivity":
        return sensitivity(model, units, data, batches)  # the smallest accuracy drop goes first
    return channel_aggregate(model, graph, units, criterion, data, batches)
