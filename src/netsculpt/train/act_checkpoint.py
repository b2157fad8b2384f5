"""Activation checkpointing for any model: keep block inputs only, recompute the rest in backward.

``train(..., TrainConfig(checkpoint_activations=True))`` (CLI: ``train --checkpoint-activations``) runs
each *block* of the model under ``torch.utils.checkpoint`` (non-reentrant): its forward keeps no
intermediate tensors, and the backward pass runs the block's forward again to get them. Memory for
activations drops to the block inputs plus one block's intermediates, for about one extra forward.

What a block is, found from the module tree (no configuration needed for the zoo or torchvision):

* a non-container child of an ``nn.Sequential`` / ``nn.ModuleList`` that has submodules (a ResNet
  ``BasicBlock``, a MobileNetV2 ``InvertedResidual``, a transformer layer);
* an ``nn.Sequential`` of plain layers only (VGG's ``features``) is cut into about sqrt(L) segments.

A ``ReversibleSequence`` already keeps no activations and is left alone.

The recomputation must not change the run: random layers (dropout) get the generator state they saw
(``preserve_rng_state``), and batch-norm running statistics are not updated a second time (momentum 0
and the batch counter put back while the block is recomputed), so a checkpointed run trains the same
weights as an ordinary one. The patch lives only inside :func:`activation_checkpointing`: afterwards
the model holds nothing of netsculpt (``forward`` is the class's again).
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from netsculpt.errors import ConfigError
from netsculpt.models.reversible import ReversibleSequence

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def checkpoint_units(model: nn.Module) -> list[nn.Module]:
    """The modules whose forward runs checkpointed (blocks and plain-layer Sequentials), outermost first."""
    units: list[nn.Module] = []
    seen: set[int] = set()

    def visit(module: nn.Module) -> None:
        if id(module) in seen or isinstance(module, ReversibleSequence):
            return
        seen.add(id(module))
        children = list(module.children())
        if isinstance(module, _CONTAINERS):
            if (
                isinstance(module, nn.Sequential)
                and len(children) >= 4
                and not any(_has_children(c) for c in children)
            ):
                units.append(module)
                return
            for child in children:
                if _has_children(child) and not isinstance(child, (*_CONTAINERS, ReversibleSequence)):
                    if id(child) not in seen:
                        seen.add(id(child))
                        units.append(child)
                else:
                    visit(child)
            return
        for child in children:
            visit(child)

    visit(model)
    return units


def _has_children(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


@contextmanager
def activation_checkpointing(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Run ``model``'s blocks checkpointed while inside; yields how many units were patched.

    Raises ConfigError when ``enabled`` and the model has no block to checkpoint (a forward written
    layer by layer, like LeNet-5's): there is nothing to save, and silently training as usual would
    misreport the memory the user asked to save.
    """
    if not enabled:
        yield 0
        return
    units = checkpoint_units(model)
    if not units:
        raise ConfigError(
            f"{type(model).__name__} has no blocks to checkpoint (no nn.Sequential / nn.ModuleList of "
            "modules): its forward calls its layers one by one. Train without checkpoint_activations, or "
            "group the layers into an nn.Sequential"
        )
    patched: list[tuple[nn.Module, Any]] = []
    try:
        for unit in units:
            previous = unit.__dict__.get("forward")
            unit.forward = types.MethodType(_checkpointed_forward, unit)  # type: ignore[method-assign]
            patched.append((unit, previous))
        yield len(units)
    finally:
        for unit, previous in patched:
            del unit.forward
            if previous is not None:
                unit.forward = previous  # type: ignore[method-assign]


def _checkpointed_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    original = _original_forward(self)
    if not (self.training and torch.is_grad_enabled()):
        return original(*args, **kwargs)
    if isinstance(self, nn.Sequential) and not kwargs and len(args) == 1:
        x = args[0]
        for index, segment in enumerate(segments(list(self))):
            run = _run_layers_on_copy if index == 0 and _in_place(segment[0]) else _run_layers
            x = checkpoint(run, segment, x, **_options(segment))
        return x
    return checkpoint(original, *args, **kwargs, **_options([self]))


def segments(layers: list[nn.Module]) -> list[list[nn.Module]]:
    """About sqrt(L) runs of consecutive layers. No run starts with an in-place layer (ReLU, Dropout with
    ``inplace=True``): its input is the previous run's output, which the checkpoint keeps to recompute
    from, and overwriting it fails the backward pass; such a layer stays with the one before it."""
    size = math.ceil(len(layers) / math.ceil(math.sqrt(len(layers))))
    out: list[list[nn.Module]] = []
    for layer in layers:
        if out and (len(out[-1]) < size or _in_place(layer)):
            out[-1].append(layer)
        else:
            out.append([layer])
    return out


def _in_place(layer: nn.Module) -> bool:
    return getattr(layer, "inplace", False) is True


def _run_layers_on_copy(layers: list[nn.Module], x: Any) -> Any:
    """The first run, when it starts in place: on a copy, so the kept input stays as it came in."""
    return _run_layers(layers, x.clone())


def _original_forward(module: nn.Module) -> Any:
    return types.MethodType(type(module).forward, module)


def _run_layers(layers: list[nn.Module], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def _options(modules: list[nn.Module]) -> dict[str, Any]:
    bns = [m for unit in modules for m in unit.modules() if _updates_stats(m)]
    context = (lambda: (nullcontext(), _frozen_stats(bns))) if bns else None
    options: dict[str, Any] = {"use_reentrant": False, "preserve_rng_state": True}
    if context is not None:
        options["context_fn"] = context
    return options


def _updates_stats(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats


@contextmanager
def _frozen_stats(bns: list[nn.Module]) -> Iterator[None]:
    """Recompute without touching running statistics: momentum 0 leaves them as they are (exactly:
    ``(1 - 0) * r + 0 * batch``), and the batch counter is put back. Not a copy-and-restore of the
    statistics: batch_norm's backward checks their version, which a restore would bump."""
    saved = [(m, m.momentum, m.num_batches_tracked.clone()) for m in bns]  # type: ignore[union-attr]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)  # type: ignore[union-attr]
