"""What happens to calls netsculpt has no rule for: nothing they touch is ever pruned."""

from __future__ import annotations

import numpy as np
import torch

from netsculpt.graph.builder import GraphBuilder
from netsculpt.graph.labels import NO_CHANNEL
from netsculpt.graph.registry import FUNCTION_RULES, Call, register_function_rule, tensor_methods
from netsculpt.graph.rules import heads


def unknown(ctx: GraphBuilder, call: Call) -> None:
    """Pin every channel flowing into an op without a rule; its outputs carry no channels."""
    for v in call.inputs:
        ctx.block(
            v.labels,
            f"it flows into {call.where}, which netsculpt has no channel rule for — pass ignored=[...] "
            "or register a rule (docs/engine.md)",
        )
    for out in call.outputs:
        out.labels = np.full((1,) * out.ndim, NO_CHANNEL, np.int64)
        out.zero = np.zeros((1,) * out.ndim, bool)


FUNCTION_RULES["__unknown__"] = unknown


@register_function_rule(
    *tensor_methods("new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "zeros", "ones", "full"),
    *tensor_methods("empty", "arange", "rand", "randn", "randint", "tensor", "as_tensor", "eye", "linspace"),
    torch.Tensor.__bool__ if hasattr(torch.Tensor, "__bool__") else torch.zeros,
)
def constant(ctx: GraphBuilder, call: Call) -> None:
    """New tensors whose size comes from plain numbers: they carry no channels. One sized by a head
    count attribute is the exception (heads.py): it follows the heads it meets."""
    for out in call.outputs:
        out.labels = np.full((1,) * out.ndim, NO_CHANNEL, np.int64)
        out.zero = np.zeros((1,) * out.ndim, bool)
    if len(call.outputs) == 1:
        heads.constant_per_head(ctx, call, call.outputs[0])
