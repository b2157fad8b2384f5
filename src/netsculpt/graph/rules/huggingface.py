"""Hugging Face layers, named by class path so netsculpt never imports ``transformers``.

``transformers.pytorch_utils.Conv1D`` (GPT-2, GPT, ... ) is a Linear whose weight is stored transposed,
``(in, out)``, and whose forward reshapes with the stored out width: ``x.view(size[:-1] + (self.nf,))``.
Traced op by op, that ``view`` writes the width as a constant and pins every channel it produces; as one
step it is ``x @ weight + bias``, and the surgery fixup keeps ``nf`` / ``nx`` equal to the sliced weight.

The detection models' copies of torchvision's ``FrozenBatchNorm2d`` (DETR and its descendants) compute
torchvision's affine from four buffers; traced op by op, ``weight * rsqrt(var + eps)`` is arithmetic on
buffers, which pinned every channel of their backbones. They get torchvision's frozen-BN rule.
"""

from __future__ import annotations

import string

import numpy as np

from netsculpt.graph.builder import ROLE_OUT, GraphBuilder, Value
from netsculpt.graph.labels import NO_CHANNEL
from netsculpt.graph.registry import Call, register_module_rule
from netsculpt.graph.rules.common import set_output
from netsculpt.graph.rules.contract import contract
from netsculpt.graph.rules.vision import frozen_batch_norm

CONV1D = "transformers.pytorch_utils.Conv1D"


@register_module_rule(CONV1D)
def hf_conv1d(ctx: GraphBuilder, call: Call) -> None:
    """Input features couple with weight rows (dim 0), output features are weight columns (dim 1)."""
    x, out = call.inputs[0], call.outputs[0]
    w, b = call.params.get("weight"), call.params.get("bias")
    if w is None:  # a parametrization or weight norm computes it in forward: no parameter slice to remove
        reason = (
            f"{call.where} uses a weight computed in forward, not a parameter: remove the parametrization "
            "first (torch.nn.utils.parametrize.remove_parametrizations)"
        )
        ctx.block(x.labels, reason)
        if isinstance(b, Value):
            ctx.block(ctx.member(b, 0, ROLE_OUT), reason)
        set_output(out, np.full((1,) * out.ndim, NO_CHANNEL, np.int64), False)
        return
    batch = string.ascii_lowercase[: x.ndim - 1]
    contract(ctx, [(x, batch + "z"), (w, "zy")], batch + "y", out, call.where)
    if isinstance(b, Value):
        ctx.union(ctx.member(b, 0, ROLE_OUT), ctx.member(w, 1, ROLE_OUT))
    if w.param is not None:
        ctx.output_dims[w.param] = 1  # its hidden units are group `c_fc`, as a Linear's would be


# every copy in transformers 5.25 has the same forward (eps 1e-5, buffers weight / bias / running_mean /
# running_var): DETR's own, and those "Copied from" it
_FROZEN_BN = {
    "detr": "Detr",
    "conditional_detr": "ConditionalDetr",
    "deformable_detr": "DeformableDetr",
    "dab_detr": "DabDetr",
    "table_transformer": "TableTransformer",
    "rt_detr": "RTDetr",
    "rt_detr_v2": "RTDetrV2",
    "d_fine": "DFine",
    "deimv2": "Deimv2",
    "grounding_dino": "GroundingDino",
    "mm_grounding_dino": "MMGroundingDino",
    "pp_doclayout_v2": "PPDocLayoutV2",
    "pp_doclayout_v3": "PPDocLayoutV3",
    "pp_doclayout_v4": "PPDocLayoutV4",
}
register_module_rule(
    *(f"transformers.models.{m}.modeling_{m}.{c}FrozenBatchNorm2d" for m, c in _FROZEN_BN.items())
)(frozen_batch_norm)
