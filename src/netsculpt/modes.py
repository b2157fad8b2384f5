"""Each module's own train/eval flag, remembered and put back.

``model.train(was_training)`` sets every submodule alike, so a user's deliberately frozen batch norm
(eval inside a training model) would come back in training mode after netsculpt merely looked at the
model. Everything that switches a user's model to eval for a moment restores the flags through here.

Flags are set on every submodule directly, never through the model's own ``train()`` / ``eval()``: a
class may give those another meaning. ultralytics' ``YOLO`` engine object is an ``nn.Module`` whose
``train()`` starts a training run (it wrote ``runs/detect/train`` and fetched a data set when netsculpt
traced it), and ``nn.Module.eval()`` calls ``self.train(False)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

Modes = list[tuple[nn.Module, bool]]


def module_modes(model: nn.Module) -> Modes:
    """Every submodule with its current ``training`` flag."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(modes: Modes) -> None:
    """Put back the flags :func:`module_modes` recorded, module by module."""
    for module, training in modes:
        module.training = training


def set_training(model: nn.Module, mode: bool) -> None:
    """``model.train(mode)``'s flags on every submodule, without running a ``train`` method the model's
    class may have overridden to do something else."""
    for module in model.modules():
        module.training = mode


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every submodule in eval mode inside the block; each one's own flag afterwards."""
    modes = module_modes(model)
    set_training(model, False)
    try:
        yield model
    finally:
        restore_modes(modes)
