"""Network slimming's sparsity term (Liu et al., ICCV 2017): ``lambda * sum |gamma|`` over BatchNorm scales.

Applied as the paper does, as a subgradient added to each scale's gradient after ``backward`` (``lambda *
sign(gamma)``, 0 at gamma = 0), not as a loss term: the loss value, and so the logged training loss and
the NaN check, stay the task's own. Every affine BatchNorm is penalised, not only those whose channels a
later prune may remove: ``train`` sees no example input to trace, and the paper penalises all of them too;
the few pinned channels (e.g. a stem feeding a fixed-width output) only shrink a little. The pruning step
that follows is ``criterion="bn_scale"`` (docs/training.md).
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.errors import ConfigError


def bn_scales(model: nn.Module, strength: float) -> list[nn.Parameter]:
    """The trainable BatchNorm scales ``strength`` > 0 applies to (none when it is 0); a model with none
    is refused, since the penalty would silently do nothing."""
    if strength == 0:
        return []
    scales = [
        m.weight
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and m.weight.requires_grad
    ]
    if not scales:
        raise ConfigError(
            f"bn_l1={strength} penalises BatchNorm scales, but {type(model).__name__} has no trainable "
            "affine BatchNorm layer; set bn_l1=0 (or add BatchNorm, or unfreeze its weights)"
        )
    return scales


@torch.no_grad()
def add_bn_l1_(scales: list[nn.Parameter], strength: float) -> None:
    """Add ``strength * sign(gamma)`` to each scale's gradient (creating it if backward left none)."""
    for w in scales:
        if w.grad is None:
            w.grad = torch.sign(w) * strength
        else:
            w.grad.add_(torch.sign(w), alpha=strength)
