"""Network slimming's sparsity term (Liu et al., ICCV 2017): ``lambda * sum |gamma|`` over BatchNorm scales.

Applied as the paper does, as a subgradient added to each scale's gradient after ``backward`` (``lambda *
sign(gamma)``, 0 at gamma = 0), not as a loss term: the loss value, and so the logged training loss and
the NaN check, stay the task's own. Only the BatchNorms whose channels a later prune can remove are
penalised (those in a prunable channel group of the traced model, as the paper and Torch-Pruning do): a
BatchNorm pinned by a fixed-width output or an ignored layer would only lose accuracy. The trace needs an
example input, the first training batch (:func:`first_inputs`); without one, or when the model does not
trace, every affine BatchNorm is penalised, with a warning. The pruning step that follows is
``criterion="bn_scale"`` (docs/training.md).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from netsculpt.errors import ConfigError, warn_user


def bn_scales(model: nn.Module, strength: float, example: Any = None) -> list[nn.Parameter]:
    """The trainable BatchNorm scales ``strength`` > 0 applies to (none when it is 0): those in prunable
    channel groups when ``model`` traces on ``example``, else all. A model with none is refused, since the
    penalty would silently do nothing."""
    if strength == 0:
        return []
    norms = {
        name: m.weight
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and m.weight.requires_grad
    }
    if not norms:
        raise ConfigError(
            f"bn_l1={strength} penalises BatchNorm scales, but {type(model).__name__} has no trainable "
            "affine BatchNorm layer; set bn_l1=0 (or add BatchNorm, or unfreeze its weights)"
        )
    prunable = prunable_modules(model, example)
    if prunable is None:
        return list(norms.values())
    chosen = [w for name, w in norms.items() if name in prunable]
    if not chosen:
        raise ConfigError(
            f"bn_l1={strength} penalises the BatchNorm scales a prune can remove, but no channel of "
            f"{type(model).__name__}'s BatchNorms ({', '.join(list(norms)[:4])}) can be pruned (ns.trace "
            "says why); set bn_l1=0"
        )
    return chosen


def prunable_modules(model: nn.Module, example: Any) -> set[str] | None:
    """Names of the modules with a parameter in a prunable channel group, or None (with a warning
    saying what is penalised instead) when there is no example input or the model does not trace."""
    fallback = "so bn_l1 penalises every affine BatchNorm, also those whose channels no prune can remove"
    if example is None:
        warn_user(
            f"bn_l1: the first training batch holds no input tensor to trace the model with, {fallback}"
        )
        return None
    from netsculpt.graph import trace

    try:
        with warnings.catch_warnings():  # what the trace says about pruning is for a prune, not this run
            warnings.simplefilter("ignore")
            graph = trace(model, example)
    except Exception as exc:  # a model netsculpt cannot trace still trains, as before 2026-12-07
        first = str(exc).splitlines()[0] if str(exc) else ""
        warn_user(f"bn_l1: {type(model).__name__} did not trace ({type(exc).__name__}: {first}), {fallback}")
        return None
    return {m.module for g in graph.prunable_groups for m in g.members}


def first_inputs(loader: Any, device: torch.device | None = None) -> Any:
    """Two samples of the loader's first batch as one tensor (two: a train-mode trace of a BatchNorm
    needs more than one value per channel), or None when the inputs are not one tensor or stackable."""
    batch = next(iter(loader), None)
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        return None
    inputs = batch[0]
    if isinstance(inputs, list | tuple) and inputs and all(isinstance(t, torch.Tensor) for t in inputs):
        shapes = {tuple(t.shape) for t in inputs[:2]}
        inputs = torch.stack(list(inputs[:2])) if len(shapes) == 1 else None
    if not isinstance(inputs, torch.Tensor) or inputs.dim() == 0:
        return None
    return inputs[:2].to(device) if device is not None else inputs[:2]


@torch.no_grad()
def add_bn_l1_(scales: list[nn.Parameter], strength: float) -> None:
    """Add ``strength * sign(gamma)`` to each scale's gradient (creating it if backward left none)."""
    for w in scales:
        if w.grad is None:
            w.grad = torch.sign(w) * strength
        else:
            w.grad.add_(torch.sign(w), alpha=strength)
