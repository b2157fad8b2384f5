"""Layers the eval-mode trace never ran: trace training's branches too, or say what was left out.

Tracing follows one forward pass in eval mode. GoogLeNet's and Inception-v3's auxiliary heads (built by
default when a user calls ``torchvision.models.googlenet()``) run only in train mode, so an eval trace
does not see that they read ``inception4a``'s channels: pruning those channels left ``aux1``'s first conv
at its old width, and the pruned model crashed at its first training step. When layers with parameters
did not run, the model is traced again in train mode (flags and buffers restored afterwards); if that
pass runs them, its graph is used, since training's forward contains inference's plus the extra branches.
Layers that neither pass runs (unused leftovers, or a train-mode forward that needs targets) are named in
a warning: netsculpt leaves them as they are, which is exact only as long as they never run.
"""

from __future__ import annotations

from typing import Any

import torch

from netsculpt.errors import TraceError, warn_user
from netsculpt.graph.builder import GraphBuilder
from netsculpt.graph.tracing import run_trace

SHOWN = 6  # layer names a warning lists before "and N more"


def unrun_layers(model: torch.nn.Module, builder: GraphBuilder) -> list[str]:
    """Modules holding parameters of their own that the traced forward neither called nor read (a
    weight used directly, ``F.linear(x, self.embed.weight)``, counts as read)."""
    ran = set(builder.module_calls)
    read = {v.param for v in builder.values if v.param is not None}
    names = []
    for name, module in model.named_modules():
        own = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
        if name and own and name not in ran and not read.intersection(own):
            names.append(name)
    return names


def with_training_branches(
    model: torch.nn.Module, example_inputs: Any, execute: str, builder: GraphBuilder
) -> tuple[GraphBuilder, bool]:
    """``builder``, or a train-mode trace when that one also runs layers the eval trace missed."""
    missed = unrun_layers(model, builder)
    if not missed:
        return builder, False
    try:
        trained = run_trace(model, example_inputs, execute, training=True)
    except TraceError:
        trained = None
    still = missed if trained is None else unrun_layers(model, trained)
    use_training = trained is not None and len(still) < len(missed)
    if still:
        more = f" and {len(still) - SHOWN} more" if len(still) > SHOWN else ""
        warn_user(
            f"layers with parameters never ran while tracing{' in eval or train mode' if trained else ''}: "
            f"{', '.join(still[:SHOWN])}{more}. netsculpt cannot see which channels they read and leaves "
            "them unchanged, which is exact only while they never run; if they do run (another input or "
            "mode), trace with inputs that reach them or pass ignored=[...] for the layers that feed them",
            UserWarning,
        )
    return (trained, True) if use_training else (builder, False)


def refuse_detached_forward(model: torch.nn.Module, builder: GraphBuilder) -> None:
    """Refuse a model whose forward called none of its own layers and gave no channel group, before
    anything else runs it.

    ultralytics' ``YOLO`` engine object is an ``nn.Module`` whose forward runs its predictor on a fused
    copy of the network and returns ``Results``: the trace saw no layer of the model run (only their
    weights read, to fuse them), gave an empty graph, and
    the train-mode retrace for unrun layers then started a YOLO training run. There is nothing to prune
    in such an object; the network it holds is the model to pass.
    """
    from netsculpt.graph.groups import build_groups, resolve

    layers = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    if not layers or any(n in builder.module_calls for n in layers):
        return
    if build_groups(builder, resolve(builder), allow_inexact=True, ignored=()):
        return  # its layers' weights are used directly (``F.conv2d(x, self.conv.weight)``): a network
    raise detached_forward_error(model)


def detached_forward_error(model: torch.nn.Module, doing: str = "follow or prune") -> TraceError:
    """The refusal for a forward that ran none of the model's own layers, naming the network to pass
    (shared by tracing and ``count_macs`` / ``ns.measure``)."""
    children = [(n, c, sum(p.numel() for p in c.parameters())) for n, c in model.named_children()]
    name, child, count = max(children, key=lambda item: item[2], default=("", model, 0))
    instead = (
        f"Pass the network it holds instead: `.{name}` ({type(child).__name__}, {count:,} parameters); "
        "for ultralytics that is YOLO(...).model, and the pruned network goes back in with yolo.model = small"
        if name
        else "Check that its forward computes its outputs with its own layers"
    )
    return TraceError(
        f"the forward of {type(model).__name__} ran none of its own layers (it runs a "
        f"copy of its network, or one held outside it), so there is nothing netsculpt can {doing} "
        f"in it. {instead}"
    )
