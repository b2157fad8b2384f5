"""torchvision's detection layers: RoI pooling keeps channels; ``FrozenBatchNorm2d`` is a per-channel affine.

Registered only when torchvision is installed (Hugging Face's copies of ``FrozenBatchNorm2d`` are
registered by class path in rules/huggingface.py). NMS and box decoding need no rule: they read the head's
box and class outputs, whose channels are pinned by the unknown-op fallback (the model's contract).
"""

from __future__ import annotations

import numpy as np
import torch

from netsculpt.graph.builder import ROLE_OUT, ROLE_STAT, GraphBuilder
from netsculpt.graph.labels import NO_CHANNEL, along
from netsculpt.graph.registry import Call, register_function_rule, register_module_rule
from netsculpt.graph.rules.common import channel_atoms, channel_zero, set_output


def _ops(*names: str) -> list[object]:
    """The op packets and their default overloads (the tracer may see either)."""
    try:
        import torchvision  # noqa: F401  (registers torch.ops.torchvision)
    except ImportError:
        return []
    found: list[object] = []
    for name in names:
        packet = getattr(torch.ops.torchvision, name, None)
        if packet is not None:
            found += [packet, *(getattr(packet, o) for o in packet.overloads())]
    return found


def roi_pool(ctx: GraphBuilder, call: Call) -> None:
    """``(N, C, H, W)`` features and ``(K, 5)`` boxes -> ``(K, C, h, w)``: each channel is pooled on
    its own, and a masked (zero) channel pools to zero. Channels along other dims are pinned."""
    x, out = call.inputs[0], call.outputs[0]
    if any(x.labels.shape[d] > 1 for d in (0, 2, 3)):
        ctx.block(x.labels, f"{call.where} pools positions that carry channels")
    atoms = channel_atoms(ctx, x, 1, call.where)
    zero = channel_zero(x, 1).reshape(1, -1, 1, 1)
    set_output(out, along(atoms, 1, out.ndim), zero)
    for extra in call.outputs[1:]:  # roi_pool's argmax indices
        set_output(extra, np.full((1,) * extra.ndim, NO_CHANNEL, np.int64), False)


# position-sensitive pooling (ps_roi_*) maps groups of channels to bins: no rule, so it is pinned
for _op in _ops("roi_align", "roi_pool"):
    register_function_rule(_op)(roi_pool)


def frozen_batch_norm(ctx: GraphBuilder, call: Call) -> None:
    """``x * w / sqrt(var + eps) + (b - mean * scale)`` per channel, from buffers (what torchvision puts in
    pretrained detector backbones). Masking zeroes ``weight`` and ``bias``, so a masked channel's output
    is exactly zero, as for eval-mode BatchNorm; the statistics are sliced with the channel."""
    x, out = call.inputs[0], call.outputs[0]
    atoms = channel_atoms(ctx, x, 1, call.where)
    for name, role in (
        ("weight", ROLE_OUT),
        ("bias", ROLE_OUT),
        ("running_mean", ROLE_STAT),
        ("running_var", ROLE_STAT),
    ):
        buf = call.params.get(name)
        if buf is not None:
            member = ctx.member(buf, 0, role, buffer_produces=role == ROLE_OUT)
            ctx.couple(atoms, member, f"{call.where} scales a non-channel input")
    out.labels, out.zero = x.labels, np.ones_like(x.zero)


try:
    from torchvision.ops import FrozenBatchNorm2d
except ImportError:
    pass
else:
    register_module_rule(FrozenBatchNorm2d)(frozen_batch_norm)
