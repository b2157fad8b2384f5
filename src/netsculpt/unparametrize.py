"""Take a ``weight`` parametrization off a layer and leave the plain layer a user built.

Sparsity masks and DKM clustering both live on a layer as ``torch.nn.utils.parametrize``
parametrizations while training. ``parametrize.remove_parametrizations`` has two side effects netsculpt
must not leave behind: it re-registers ``weight`` after ``bias`` (the state-dict order changes, so a saved
torchvision / timm model no longer matches its builder and the packed format's layout hash moves), and
it deletes the ``weight`` property from the parametrized class, which a deep copy of the model shares
(the copy, or the original, then has no ``weight``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def drop_weight_parametrization_(module: nn.Module, *, bake: bool) -> None:
    """Remove ``module``'s ``weight`` parametrization. ``bake`` keeps the parametrized values (else
    the original tensor's). The trainable parameter object is kept, so optimizers and tied weights
    still hold it; ``weight`` goes back first among the layer's parameters."""
    if len(module.parametrizations) > 1:  # other tensors stay parametrized: the class must stay too
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=bake)
    else:
        original = module.parametrizations.weight.original
        if bake:
            with torch.no_grad():
                original.copy_(module.weight)
        del module._modules["parametrizations"]
        module.__class__ = module.__class__.__bases__[0]
        module.register_parameter("weight", original)
    weight_first_(module)


def weight_first_(module: nn.Module) -> None:
    """Put ``weight`` back first among ``module``'s parameters, where a layer registers it."""
    params = module._parameters
    module._parameters = type(params)(sorted(params.items(), key=lambda item: item[0] != "weight"))
