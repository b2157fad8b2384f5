"""The grow step of Grow-Push-Prune: give a layer more output channels without changing what the model
computes, so push and prune can then choose among old and new channels.

Growing works on the channel graph that pruning uses, in the other direction: every tensor slice a
channel owns gets ``k`` more channels, right after the layer's own channels (at the end of a plain
tensor; at the layer's offset in a concatenation, as an Inception branch or a DenseNet layer feeds it).
Producing slices (the layer's filters, the filters of every layer tied to it, such as a residual stage)
get fresh random values at the existing weights' scale
(biases 0, norm scales at their mean, running statistics 0 / 1); consuming slices (the next layer's
input weights) get zeros. New channels therefore reach nothing until training moves those zeros: the
grown model computes what the original computed (checked on the example inputs; a layer that mixes
channels otherwise, such as a LayerNorm over them, makes ``grow`` refuse). The result is plain torch
modules, saved and reloaded by the ``grow`` edit (:mod:`netsculpt.edits.grow`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from netsculpt.edits.grow import MAX_GROW  # channels added to one layer in one step
from netsculpt.edits.inputs import layout_of
from netsculpt.errors import ConfigError
from netsculpt.graph.channel_graph import ChannelGraph, trace
from netsculpt.graph.groups import ChannelGroup, GroupMember
from netsculpt.graph.tracing import as_tuple
from netsculpt.spec import append_step, ensure_base
from netsculpt.surgery.fixups import ModuleShapes, fixup


def _group_of(graph: ChannelGraph, layer: str) -> ChannelGroup:
    for group in graph.groups:
        for m in group.members:
            if m.role == "out" and m.dim == 0 and m.module == layer and m.name.endswith(".weight"):
                return group
    growable = sorted(
        {
            m.module
            for g in graph.groups
            for m in g.members
            if m.role == "out" and m.dim == 0 and m.name.endswith(".weight")
        }
    )
    raise ConfigError(
        f"cannot grow {layer!r}: it is not a layer whose output channels the channel graph tracks; "
        f"growable layers: {', '.join(growable[:20])}{' ...' if len(growable) > 20 else ''}"
    )


def _block_layout(member: GroupMember, size: int) -> tuple[int, int]:
    """``(start, m)`` when ``member``'s channels lie one after another from ``start``, ``m`` positions
    each (channel c owns ``[start + c*m, start + (c+1)*m)``). ``start`` is 0 unless the tensor is a
    concatenation (an Inception branch, a DenseNet layer), where the group's block sits at its offset."""
    slices = member.slices(size)
    widths = {len(positions) for positions in slices}
    if len(widths) != 1:
        raise ConfigError(
            f"cannot grow through {member.name}[{member.dim}]: its channels own unequal numbers of positions"
        )
    m = widths.pop()
    start = int(min(int(np.min(positions)) for positions in slices)) if m else 0
    for c, positions in enumerate(slices):
        if not np.array_equal(np.sort(positions), np.arange(start + c * m, start + (c + 1) * m)):
            raise ConfigError(
                f"cannot grow through {member.name}[{member.dim}]: its positions are not laid out one "
                "channel after another (channels-last flatten?), so added channels would not line up"
            )
    return start, m


def _new_slice(
    member: GroupMember, old: torch.Tensor, shape: list[int], gen: torch.Generator
) -> torch.Tensor:
    """Values for the appended positions: producers random at the tensor's scale, consumers zero."""
    attr = member.name.rpartition(".")[2]
    if member.role == "in":
        return old.new_zeros(shape)
    if member.role == "stat":
        return old.new_ones(shape) if attr == "running_var" else old.new_zeros(shape)
    if old.dim() >= 2:
        std = float(old.detach().float().std()) if old.numel() > 1 else 1.0
        return (torch.randn(shape, generator=gen) * (std or 1.0)).to(old.dtype)
    if attr == "weight":  # a norm layer's scale: new channels start like a typical old one
        return old.new_full(shape, float(old.detach().float().mean()))
    return old.new_zeros(shape)


def grow_(model: nn.Module, graph: ChannelGraph, layers: Mapping[str, int], seed: int = 0) -> set[str]:
    """Append ``layers[name]`` output channels to each named layer in place; returns changed modules."""
    groups: dict[str, tuple[ChannelGroup, int]] = {}
    for layer, extra in layers.items():
        if not isinstance(extra, int) or isinstance(extra, bool) or not 1 <= extra <= MAX_GROW:
            raise ConfigError(
                f"grow {layer!r}: the number of channels to add must be 1..{MAX_GROW}, got {extra!r}"
            )
        group = _group_of(graph, layer)
        if group.id in groups:
            raise ConfigError(
                f"{layer!r} shares its channels with another named layer (group {group.id}); name it once"
            )
        groups[group.id] = (group, extra)
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    owners: dict[int, list[tuple[nn.Module, str, bool]]] = {}
    for module in model.modules():
        for attr, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append((module, attr, True))
        for attr, b in module._buffers.items():
            if b is not None:
                owners.setdefault(id(b), []).append((module, attr, False))
    modules = dict(model.named_modules())
    gen = torch.Generator().manual_seed(seed)
    new_values: dict[str, torch.Tensor] = {}
    inserted: dict[tuple[str, int], list[tuple[int, int]]] = {}  # (tensor, dim) -> (first position, count)
    changed: set[str] = set()
    for group, extra in groups.values():
        for member in group.members:
            grouped = modules.get(member.module)
            if isinstance(grouped, nn.modules.conv._ConvNd) and grouped.groups > 1:
                raise ConfigError(f"cannot grow through the grouped convolution {member.module!r}")
            old = new_values.get(member.name, tensors[member.name])
            start, per_channel = _block_layout(member, group.size)
            end = start + group.size * per_channel  # the new channels go right after the group's block
            done = inserted.setdefault((member.name, member.dim), [])
            at = end + sum(count for position, count in done if position <= end)
            done.append((end, extra * per_channel))
            shape = list(old.shape)
            shape[member.dim] = extra * per_channel
            added = _new_slice(member, old, shape, gen).to(old.device)
            head, tail = old.detach().split([at, old.shape[member.dim] - at], member.dim)
            new_values[member.name] = torch.cat([head, added, tail], member.dim)
            changed.add(member.module)
    with torch.no_grad():
        for name, value in new_values.items():
            old = tensors[name]
            for module, attr, is_param in owners[id(old)]:
                if is_param:
                    module._parameters[attr] = nn.Parameter(value, requires_grad=old.requires_grad)
                else:
                    module._buffers[attr] = value
    for name in changed:
        if name in modules:
            fixup(modules[name], ModuleShapes([], []))
    return changed


def grow(
    model: nn.Module, example_inputs: Any, layers: Mapping[str, int], *, seed: int = 0, inplace: bool = False,
    atol: float = 1e-5,
) -> nn.Module:  # fmt: skip
    """A copy of ``model`` (or ``model`` itself) with ``layers[name]`` more output channels per layer,
    computing the same outputs on ``example_inputs`` (checked to ``atol`` relative to the output scale).

    ``ns.prune`` can then choose among old and new channels; ``ns.save``/``ns.load`` replay the growth."""
    inputs = as_tuple(example_inputs)
    graph = trace(model, inputs)
    target = model if inplace else copy.deepcopy(model)
    ensure_base(target)
    was = target.training
    target.eval()
    with torch.no_grad():
        before = target(*inputs)
    grow_(target, graph, layers, seed)
    with torch.no_grad():
        after = target(*inputs)
    target.train(was)
    _check_same(before, after, atol, list(layers))
    step: dict[str, Any] = {"kind": "grow", "layers": dict(layers), "seed": seed,
                            "input_shapes": [list(s) for s in graph.input_shapes]}  # fmt: skip
    layout = layout_of(inputs)
    if layout is not None:
        step["inputs"] = layout
    append_step(target, step)
    return target


def _check_same(before: Any, after: Any, atol: float, layers: list[str]) -> None:
    pairs = [(before, after)]
    while pairs:
        a, b = pairs.pop()
        if isinstance(a, torch.Tensor):
            if a.shape != b.shape:
                raise ConfigError(f"growing {', '.join(layers)} changed the shape of the model's output")
            scale = max(1.0, float(a.abs().max())) if a.numel() else 1.0
            if a.numel() and float((a - b).abs().max()) > atol * scale:
                raise ConfigError(
                    f"growing {', '.join(layers)} changed the model's output: a layer mixes the grown "
                    "channels into the others (a LayerNorm or GroupNorm over them?); grow a layer before it"
                )
        elif isinstance(a, list | tuple):
            pairs += list(zip(a, b))
        elif isinstance(a, dict):
            pairs += [(a[k], b[k]) for k in a]
