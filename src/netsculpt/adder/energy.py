"""Count a model's multiplications and additions and estimate their energy from published figures.

Per-operation energies are Horowitz's 45 nm figures ("Computing's energy problem (and what we can do
about it)", ISSCC 2014, Fig. 1.1.9), the ones the AdderNet paper cites: 32-bit float multiply 3.7 pJ,
add 0.9 pJ; 32-bit integer multiply 3.1 pJ, add 0.1 pJ. Only the arithmetic of conv, linear and adder
layers is counted (memory traffic, which often dominates, is not), and batch norm is left out because it
folds into the neighbouring layer at inference. A conv MAC counts one multiply and one add; an adder
layer's element counts two adds (``|x - w|`` and the running sum) and no multiply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from netsculpt.adder.layer import AdderConv2d
from netsculpt.errors import ConfigError
from netsculpt.modes import module_modes, restore_modes

#: picojoules per operation, Horowitz ISSCC 2014 (45 nm)
ENERGY_PJ = {"fp32": {"mult": 3.7, "add": 0.9}, "int32": {"mult": 3.1, "add": 0.1}}


@dataclass(frozen=True)
class OpCounts:
    """Multiplications and additions of one forward pass of one input."""

    mults: int
    adds: int

    def energy_uj(self, precision: str = "fp32") -> float:
        """Arithmetic energy in microjoules at ``precision`` ("fp32" or "int32")."""
        pj = ENERGY_PJ[precision]
        return (self.mults * pj["mult"] + self.adds * pj["add"]) * 1e-6


def count_ops(model: nn.Module, example: Any) -> OpCounts:
    """Run ``example`` through ``model`` and count its layers' arithmetic for one input: a tensor (its
    first item is used), or a tuple / dict of them for a model with several inputs (the first item of
    each tensor)."""
    totals = {"mults": 0, "adds": 0}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        per_image = out[0].numel()  # outputs of one image
        if isinstance(module, AdderConv2d):
            patch = module.in_channels * math.prod(module.kernel_size)
            totals["adds"] += 2 * patch * per_image
        elif isinstance(module, nn.modules.conv._ConvTransposeNd):  # each input scatters into a patch
            scatter = module.out_channels // module.groups * math.prod(module.kernel_size)
            totals["mults"] += scatter * args[0][0].numel()
            totals["adds"] += scatter * args[0][0].numel()
        elif isinstance(module, nn.modules.conv._ConvNd):  # Conv1d, Conv2d, Conv3d
            patch = module.in_channels // module.groups * math.prod(module.kernel_size)
            totals["mults"] += patch * per_image
            totals["adds"] += patch * per_image
        elif isinstance(module, nn.Linear):
            totals["mults"] += module.in_features * per_image
            totals["adds"] += module.in_features * per_image

    kinds = (AdderConv2d, nn.modules.conv._ConvNd, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad():
            _run_one(model, example)
    finally:
        restore_modes(modes)
        for handle in handles:
            handle.remove()
    return OpCounts(totals["mults"], totals["adds"])


def _run_one(model: nn.Module, example: Any) -> None:
    def first(value: Any) -> Any:
        return value[:1] if isinstance(value, torch.Tensor) and value.dim() else value

    if isinstance(example, torch.Tensor):
        model(first(example))
    elif isinstance(example, (tuple, list)):
        model(*[first(v) for v in example])
    elif isinstance(example, dict):
        model(**{k: first(v) for k, v in example.items()})
    else:
        raise ConfigError(
            f"count_ops takes an example input: a tensor, or a tuple / dict of tensors; got "
            f"{type(example).__name__}"
        )
