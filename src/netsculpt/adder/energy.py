"""Count a model's multiplications and additions and estimate their energy from published figures.

Per-operation energies are Horowitz's 45 nm figures ("Computing's energy problem (and what we can do
about it)", ISSCC 2014, Fig. 1.1.9), the ones the AdderNet paper cites: 32-bit float multiply 3.7 pJ,
add 0.9 pJ; 32-bit integer multiply 3.1 pJ, add 0.1 pJ. Only the arithmetic of conv, linear and adder
layers is counted (memory traffic, which often dominates, is not), and batch norm is left out because it
folds into the neighbouring layer at inference. A conv MAC counts one multiply and one add; an adder
layer's element counts two adds (``|x - w|`` and the running sum) and no multiply.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from netsculpt.adder.layer import AdderConv2d

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


def count_ops(model: nn.Module, example: torch.Tensor) -> OpCounts:
    """Run ``example`` (a batch of one) through ``model`` and count its layers' arithmetic."""
    totals = {"mults": 0, "adds": 0}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        per_image = out[0].numel()  # outputs of one image
        if isinstance(module, AdderConv2d):
            patch = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            totals["adds"] += 2 * patch * per_image
        elif isinstance(module, nn.Conv2d):
            patch = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            totals["mults"] += patch * per_image
            totals["adds"] += patch * per_image
        elif isinstance(module, nn.Linear):
            totals["mults"] += module.in_features * per_image
            totals["adds"] += module.in_features * per_image

    kinds = (AdderConv2d, nn.Conv2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return OpCounts(totals["mults"], totals["adds"])
