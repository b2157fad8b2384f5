"""Block removal: a residual block becomes its shortcut followed by the activations after its add.

The replacement is made of plain torch modules (``nn.Identity``, ``nn.Sequential``, ``nn.ReLU`` ...)
and the block's own shortcut child, kept under its original name, so nothing of netsculpt stays in the
model and the state-dict keys of what remains do not change. A block spec is plain data
(``{"name", "shortcut", "post"}``, see :class:`netsculpt.graph.depth.DepthUnit`), which is what the
``prune_depth`` edit records and replays.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from netsculpt.errors import PruningError

POST: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def replacement(block: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """What ``block`` computes once its residual branch outputs zeros."""
    parts: list[tuple[str, nn.Module]] = []
    if spec.get("shortcut"):
        parts.append((spec["shortcut"], block.get_submodule(spec["shortcut"])))
    for i, name in enumerate(spec.get("post", [])):
        if name not in POST:
            raise PruningError(f"unknown activation {name!r} after a removed block; known: {', '.join(POST)}")
        parts.append((f"post{i}" if parts else name, POST[name]()))
    if not parts:
        return nn.Identity()
    if len(parts) == 1 and spec.get("shortcut") is None:
        return parts[0][1]
    return nn.Sequential(OrderedDict(parts))


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    if isinstance(owner, nn.Sequential | nn.ModuleList) and attr.isdigit():
        owner[int(attr)] = new
    else:
        setattr(owner, attr, new)


def remove_blocks_(model: nn.Module, specs: Iterable[dict[str, Any]]) -> nn.Module:
    """Replace every block named in ``specs`` (in place) by :func:`replacement`."""
    modules = dict(model.named_modules())
    for spec in specs:
        name = spec["name"]
        if name not in modules or not name:
            raise PruningError(f"block {name!r} is not a module of this model")
        shortcut = spec.get("shortcut")
        if shortcut is not None and f"{name}.{shortcut}" not in modules:
            raise PruningError(f"block {name!r} has no child {shortcut!r} to keep as its shortcut")
        set_module(model, name, replacement(modules[name], spec))
    return model
