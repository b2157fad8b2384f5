"""Physically remove channels: slice every member tensor, then make module attributes true again.

Surgery is in place and tensor by tensor, so the extra memory it needs is one sliced tensor at a time,
never a second copy of the model.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from netsculpt.errors import PruningError
from netsculpt.graph.builder import ROLE_OUT
from netsculpt.graph.channel_graph import ChannelGraph
from netsculpt.surgery.fixups import ModuleShapes, fixup
from netsculpt.surgery.plan import PrunePlan


def validate_plan(graph: ChannelGraph, plan: PrunePlan) -> None:
    """Refuse plans that do not fit this graph, empty a group, or remove a pinned channel."""
    by_id = {g.id: g for g in graph.groups}
    for gid, kept in plan.keep.items():
        g = by_id.get(gid)
        if g is None:
            raise PruningError(
                f"the plan names group {gid!r}, which this model does not have (was the plan made "
                "for another architecture?)"
            )
        if plan.sizes.get(gid, g.size) != g.size:
            raise PruningError(f"group {gid!r} has {g.size} channels but the plan expects {plan.sizes[gid]}")
        if len(kept) == 0:
            raise PruningError(
                f"the plan would leave group {gid!r} with 0 channels; keep at least 1 of {g.size}"
            )
        if len(set(kept)) != len(kept) or min(kept) < 0 or max(kept) >= g.size:
            raise PruningError(f"group {gid!r}: kept indices must be unique and in [0, {g.size})")
        gone = np.ones(g.size, dtype=bool)
        gone[np.asarray(kept, dtype=np.int64)] = False
        pinned = np.flatnonzero(gone & ~g.prunable)
        if pinned.size:
            why = g.reasons[0] if g.reasons else "it is pinned"
            raise PruningError(f"group {gid!r}: channel {int(pinned[0])} cannot be removed: {why}")


def _positions_to_remove(graph: ChannelGraph, plan: PrunePlan, roles: tuple[str, ...] | None = None) -> dict:
    out: dict[tuple[str, int], set[int]] = defaultdict(set)
    for g in graph.groups:
        kept = plan.keep.get(g.id)
        if kept is None or len(kept) == g.size:
            continue
        gone = np.ones(g.size, dtype=bool)
        gone[np.asarray(kept, dtype=np.int64)] = False
        for m in g.members:
            if roles is not None and m.role not in roles:
                continue
            out[(m.name, m.dim)].update(m.positions[gone[m.channels]].tolist())
    return out


def _owners(model: nn.Module) -> dict[int, list[tuple[nn.Module, str, bool]]]:
    """Every (module, attribute) that holds each parameter/buffer object (shared weights included)."""
    owners: dict[int, list[tuple[nn.Module, str, bool]]] = defaultdict(list)
    for m in model.modules():
        for attr, p in m._parameters.items():
            if p is not None:
                owners[id(p)].append((m, attr, True))
        for attr, b in m._buffers.items():
            if b is not None:
                owners[id(b)].append((m, attr, False))
    return owners


def _memory_format(tensor: torch.Tensor) -> torch.memory_format:
    """The layout a pruned copy should keep: a ``channels_last`` model stays channels-last."""
    if tensor.is_contiguous():
        return torch.contiguous_format
    for layout, dims in ((torch.channels_last, 4), (torch.channels_last_3d, 5)):
        if tensor.dim() == dims and tensor.is_contiguous(memory_format=layout):
            return layout
    return torch.contiguous_format


def apply_plan_(model: nn.Module, graph: ChannelGraph, plan: PrunePlan) -> nn.Module:
    """Remove the channels ``plan`` drops from ``model`` in place and return it."""
    validate_plan(graph, plan)
    removals = _positions_to_remove(graph, plan)
    if not removals:
        return model
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    owners = _owners(model)
    per_tensor: dict[str, list[tuple[int, set[int]]]] = defaultdict(list)
    for (name, dim), positions in removals.items():
        per_tensor[name].append((dim, positions))
    changed_modules: set[str] = set()
    with torch.no_grad():
        for name, dims in per_tensor.items():
            old = tensors.pop(name)  # drop our reference so the old tensor is freed once replaced
            new = old.detach()
            for dim, positions in dims:
                keep_mask = np.ones(new.shape[dim], dtype=bool)
                keep_mask[np.fromiter(positions, dtype=np.int64, count=len(positions))] = False
                new = new.index_select(dim, torch.from_numpy(np.flatnonzero(keep_mask)))
            new = new.contiguous(memory_format=_memory_format(old))  # index_select made it contiguous
            for module, attr, is_param in owners[id(old)]:
                if is_param:
                    module._parameters[attr] = nn.Parameter(new, requires_grad=old.requires_grad)
                else:
                    module._buffers[attr] = new
            changed_modules.add(name.rpartition(".")[0])
            del old, new
    del tensors
    removed = graph.removed_components(plan.keep)
    builder = graph.builder
    modules = dict(model.named_modules())
    _follow_attributes(modules, graph, removed)  # before the fixups, which may read a head count
    # a block whose inner layers were sliced keeps its boundary shapes but may store an inner width
    # (``self.width = self.proj.out_channels``), so the modules holding a sliced one get their fixup too
    touched = {".".join(n.split(".")[:k]) for n in changed_modules for k in range(n.count(".") + 2)}
    for mname, (ins, outs) in builder.module_io.items():
        new_in = [graph.new_shape(i, removed) for i in ins]
        new_out = [graph.new_shape(o, removed) for o in outs]
        old_in = [builder.values[i].shape for i in ins]
        old_out = [builder.values[o].shape for o in outs]
        if mname in touched or new_in != old_in or new_out != old_out:
            module = modules.get(mname)
            if module is not None:
                fixup(module, ModuleShapes(new_in, new_out))
    for mname in touched - set(builder.module_io):
        if mname in modules:
            fixup(modules[mname], ModuleShapes([], []))
    return model


def _follow_attributes(modules: dict[str, nn.Module], graph: ChannelGraph, removed: np.ndarray) -> None:
    """Rewrite the int attributes the model's code writes as view sizes (``self.num_heads``, found by
    graph/rules/heads.py) to the pruned sizes, so the next forward reshapes to the heads that are left."""
    sizes: dict[tuple[str, str], int] = {}
    for mname, attr, value_id, dim in graph.builder.attr_sizes:
        n = graph.new_shape(value_id, removed)[dim]
        if sizes.setdefault((mname, attr), n) != n:
            raise PruningError(
                f"`{mname}.{attr}` sizes two dims that this plan prunes to {sizes[(mname, attr)]} and {n}; "
                "netsculpt rewrites such an attribute to the pruned size, which must be one number: keep "
                f"the groups those dims hold whole (ignored=[{mname!r}])"
            )
    for (mname, attr), n in sizes.items():
        if mname in modules:
            setattr(modules[mname], attr, n)


def mask_(model: nn.Module, graph: ChannelGraph, plan: PrunePlan) -> nn.Module:
    """Zero the producing slices of every channel ``plan`` removes (the reference pruning must match)."""
    validate_plan(graph, plan)
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    with torch.no_grad():
        for (name, dim), positions in _positions_to_remove(graph, plan, roles=(ROLE_OUT,)).items():
            idx = torch.as_tensor(sorted(positions), dtype=torch.long)
            tensors[name].index_fill_(dim, idx, 0.0)
    return model
