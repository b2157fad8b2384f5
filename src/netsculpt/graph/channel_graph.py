"""``ChannelGraph``: the result of tracing — groups, plus what surgery needs to keep modules true."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from netsculpt.graph.builder import GraphBuilder
from netsculpt.graph.depth import DepthUnit, find_depth_units
from netsculpt.graph.groups import ChannelGroup, Resolution, build_groups, resolve
from netsculpt.graph.tracing import as_tuple, run_trace
from netsculpt.graph.unrun import refuse_detached_forward, with_training_branches


@dataclass
class ChannelGraph:
    """Coupled channel groups of one model, found from one traced forward pass."""

    groups: list[ChannelGroup]
    builder: GraphBuilder
    resolution: Resolution
    input_shapes: list[tuple[int, ...]]
    allow_inexact: bool
    depth: list[DepthUnit] = field(default_factory=list)  # removable blocks, foldable pairs (graph/depth.py)
    traced_training: bool = False  # traced in train mode: some layers run only in training (graph/unrun.py)

    @property
    def blocks(self) -> list[DepthUnit]:
        return [u for u in self.depth if u.kind == "block"]

    def group(self, gid: str) -> ChannelGroup:
        for g in self.groups:
            if g.id == gid:
                return g
        from netsculpt.errors import PruningError

        raise PruningError(
            f"no channel group {gid!r}; groups are: {', '.join(g.id for g in self.groups[:20])} ..."
        )

    @property
    def prunable_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.n_prunable > 0]

    def __str__(self) -> str:
        n_ch = sum(g.size for g in self.groups)
        n_pr = sum(g.n_prunable for g in self.groups)
        lines = [
            f"ChannelGraph: {len(self.groups)} groups, {len(self.prunable_groups)} prunable, "
            f"{n_pr}/{n_ch} channels removable"
            + (
                ""
                if self.allow_inexact
                else " (exact mode; allow_inexact=True unlocks normalised/attention dims)"
            )
        ]
        lines.extend(str(g) for g in self.groups)
        if self.depth:
            n_rm = sum(u.removable for u in self.blocks)
            lines.append(f"Depth units: {len(self.blocks)} residual blocks, {n_rm} removable")
            lines.extend(str(u) for u in self.depth)
        return "\n".join(lines)

    __repr__ = __str__

    # -- shapes after pruning ---------------------------------------------------------------------
    def removed_components(self, keep: dict[str, Iterable[int]]) -> np.ndarray:
        """Boolean mask over components: True for every channel ``keep`` drops."""
        removed = np.zeros(int(self.resolution.comp.max(initial=-1)) + 1, dtype=bool)
        for g in self.groups:
            if g.id in keep:
                mask = np.ones(g.size, dtype=bool)
                mask[np.asarray(list(keep[g.id]), dtype=np.int64)] = False
                removed[g.components[mask]] = True
        return removed

    def new_shape(self, value_id: int, removed: np.ndarray) -> tuple[int, ...]:
        """Shape of a traced value once the components marked in ``removed`` are gone."""
        v = self.builder.values[value_id]
        shape = list(v.shape)
        lab = v.labels
        if lab.size == 1 or not removed.any():
            return tuple(shape)
        gone = (lab >= 0) & removed[self.resolution.comp[np.maximum(lab, 0)]]
        if not gone.any():
            return tuple(shape)
        for d in range(lab.ndim):
            if lab.shape[d] > 1:
                others = tuple(i for i in range(lab.ndim) if i != d)
                shape[d] -= int(gone.all(axis=others).sum())
        return tuple(shape)


def trace(
    model: torch.nn.Module,
    example_inputs: Any,
    *,
    ignored: Iterable[str | torch.nn.Module] = (),
    allow_inexact: bool = False,
    execute: str = "shapes",
) -> ChannelGraph:
    """Trace ``model`` once and find every group of coupled channels.

    ``ignored`` selects modules whose parameters must keep all channels: names, globs (``"layer4.*"``),
    classes (``nn.Linear``) or module objects, read as ``ns.prune`` reads them.
    ``allow_inexact`` also opens channels whose removal changes the function beyond masking them to zero
    (LayerNorm/GroupNorm statistics, attention scaling); leave it off for exact pruning.
    ``execute="real"`` runs every op for real while tracing (see ``run_trace``).
    """
    if not isinstance(model, torch.nn.Module):
        from netsculpt.errors import TraceError

        raise TraceError(
            f"expected a torch.nn.Module, got {type(model).__name__} {model!r:.40}; build it first "
            "(e.g. ns.create_model(name) or torchvision.models.resnet18())"
        )
    from netsculpt.checks import flag

    flag(allow_inexact, "allow_inexact", "ns.trace")
    ignored_names = ignored_module_names(model, ignored)
    _check_ignored(model, ignored_names)
    builder = run_trace(model, example_inputs, execute)
    refuse_detached_forward(model, builder)  # before the train-mode retrace runs the model again
    builder, training = with_training_branches(model, example_inputs, execute, builder)
    res = resolve(builder)
    groups = build_groups(builder, res, allow_inexact=allow_inexact, ignored=ignored_names)
    shapes = [tuple(t.shape) for t in as_tuple(example_inputs) if isinstance(t, torch.Tensor)]
    depth = find_depth_units(builder)
    return ChannelGraph(groups, builder, res, shapes, allow_inexact, depth, traced_training=training)


def ignored_module_names(model: torch.nn.Module, ignored: Any) -> tuple[str, ...]:
    """``ignored`` as module names: one name or module is a list of one (a string was read a character
    at a time: ``ignored="conv1"`` became 'c', 'o', ...), and a module object must be in the model.
    Globs and classes are expanded here, by the one ``expand_ignored`` every entry point shares."""
    from netsculpt.allocate.per_layer import expand_ignored
    from netsculpt.errors import PruningError

    ignored = expand_ignored(model, ignored)

    if ignored is None:  # no module ignored, as the default () says
        ignored = []
    if isinstance(ignored, str | torch.nn.Module):
        ignored = [ignored]
    if not isinstance(ignored, Iterable) or isinstance(ignored, dict):
        from netsculpt.checks import refuse

        raise refuse(
            "ignored",
            ignored,
            "module names, globs ('layer4.*'), classes or module objects (one, or a list), or None",
            "",
            PruningError,
        )

    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for item in ignored:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, torch.nn.Module) and id(item) in names:
            out.append(names[id(item)])
        else:
            what = type(item).__name__ if isinstance(item, torch.nn.Module) else repr(item)
            raise PruningError(
                f"ignored: {what} is not a module of this model; pass module names (as in "
                "model.named_modules()) or the model's own module objects"
            )
    return tuple(out)


def _check_ignored(model: torch.nn.Module, ignored: tuple[str, ...]) -> None:
    from netsculpt.errors import PruningError

    known = {n for n, _ in model.named_modules()}
    for n in ignored:
        if n not in known:
            import difflib

            close = difflib.get_close_matches(n, list(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise PruningError(f"ignored module {n!r} is not in the model.{hint}")
