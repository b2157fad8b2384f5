"""Keep module attributes true after their tensors were sliced (``in_channels``, ``num_features`` ...).

Fixups are a registry keyed by module type, so a custom layer that stores a width needs a few lines::

    @register_fixup(MyLayer)
    def _(module, shapes):
        module.width = module.weight.shape[0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from netsculpt.graph.registry import check_module_types, class_name

FIXUPS: dict[type, Callable[[nn.Module, ModuleShapes], None]] = {}
FIXUPS_BY_NAME: dict[str, Callable[[nn.Module, ModuleShapes], None]] = {}  # "package.module.Class"


@dataclass
class ModuleShapes:
    """Shapes of a module's first traced call, after pruning."""

    inputs: list[tuple[int, ...]]
    outputs: list[tuple[int, ...]]


def register_fixup(*types: type | str) -> Callable:
    """Register ``fn(module, shapes)`` to re-derive what modules of these types store about widths.

    A type may be given by its full dotted name (``"transformers.pytorch_utils.Conv1D"``): netsculpt
    never imports such a library itself."""
    check_module_types(types, "ns.register_fixup")

    def add(fn: Callable[[nn.Module, ModuleShapes], None]) -> Callable:
        for t in types:
            if isinstance(t, str):
                FIXUPS_BY_NAME[t] = fn
            else:
                FIXUPS[t] = fn
        return fn

    return add


def fixup(module: nn.Module, shapes: ModuleShapes) -> None:
    for cls in type(module).__mro__:
        fn = FIXUPS.get(cls) or FIXUPS_BY_NAME.get(class_name(cls))
        if fn is not None:
            fn(module, shapes)
            return
    _normalized_shape(module)


def _normalized_shape(module: nn.Module) -> None:
    """Norm layers written outside torch (timm's RmsNorm, SimpleNorm ...) pass their stored
    ``normalized_shape`` to ``F.layer_norm``/``F.rms_norm``: keep it equal to the sliced weight."""
    shape, weight = getattr(module, "normalized_shape", None), getattr(module, "weight", None)
    sized = isinstance(shape, tuple | list | torch.Size) and isinstance(weight, torch.Tensor)
    if sized and weight.dim() == len(shape):
        module.normalized_shape = tuple(weight.shape)


@register_fixup(nn.modules.conv._ConvNd)
def _conv(m: nn.modules.conv._ConvNd, shapes: ModuleShapes) -> None:
    w = m.weight
    if m.transposed:
        if m.groups > 1 and m.groups == m.in_channels:  # depthwise: the group count follows its channels
            m.groups = w.shape[0]
        m.in_channels = w.shape[0]
        m.out_channels = w.shape[1] * m.groups
        return
    m.out_channels = w.shape[0]
    if shapes.inputs:
        c_dim = len(shapes.inputs[0]) - w.dim() + 1
        m.in_channels = shapes.inputs[0][c_dim]
    else:
        m.in_channels = w.shape[1] * m.groups
    m.groups = max(1, m.in_channels // w.shape[1])


@register_fixup(nn.Linear)
def _linear(m: nn.Linear, shapes: ModuleShapes) -> None:
    m.out_features, m.in_features = m.weight.shape


@register_fixup("transformers.pytorch_utils.Conv1D")
def _hf_conv1d(m: nn.Module, shapes: ModuleShapes) -> None:
    """Hugging Face's transposed Linear (GPT-2) reshapes its output with the stored ``nf``."""
    m.nx, m.nf = m.weight.shape


@register_fixup(nn.Bilinear)
def _bilinear(m: nn.Bilinear, shapes: ModuleShapes) -> None:
    m.out_features, m.in1_features, m.in2_features = m.weight.shape


@register_fixup(nn.modules.batchnorm._NormBase)
def _norm(m: nn.modules.batchnorm._NormBase, shapes: ModuleShapes) -> None:
    for t in (m.weight, m.running_mean):
        if isinstance(t, torch.Tensor):
            m.num_features = t.shape[0]
            return
    if shapes.inputs:
        m.num_features = shapes.inputs[0][1]


@register_fixup(nn.GroupNorm)
def _group_norm(m: nn.GroupNorm, shapes: ModuleShapes) -> None:
    """Several groups lose whole groups (graph/rules/layers.py), so the group size stays and the count
    follows; one group stays one group."""
    channels = m.weight.shape[0] if m.weight is not None else shapes.inputs[0][1]
    if m.num_groups > 1:
        m.num_groups = channels // (m.num_channels // m.num_groups)
    m.num_channels = channels


@register_fixup(nn.LayerNorm)
def _layer_norm(m: nn.LayerNorm, shapes: ModuleShapes) -> None:
    k = len(m.normalized_shape)
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)
    elif shapes.inputs:
        m.normalized_shape = tuple(shapes.inputs[0][-k:])


@register_fixup(nn.RMSNorm)
def _rms_norm(m: nn.RMSNorm, shapes: ModuleShapes) -> None:
    if m.weight is not None:
        m.normalized_shape = tuple(m.weight.shape)
    elif shapes.inputs:
        m.normalized_shape = tuple(shapes.inputs[0][-len(m.normalized_shape) :])


@register_fixup(nn.PReLU)
def _prelu(m: nn.PReLU, shapes: ModuleShapes) -> None:
    m.num_parameters = m.weight.numel()


@register_fixup(nn.Embedding)
def _embedding(m: nn.Embedding, shapes: ModuleShapes) -> None:
    m.num_embeddings, m.embedding_dim = m.weight.shape


@register_fixup(nn.MultiheadAttention)
def _mha(m: nn.MultiheadAttention, shapes: ModuleShapes) -> None:
    e = m.in_proj_weight.shape[1] if m.in_proj_weight is not None else m.q_proj_weight.shape[1]
    m.embed_dim = m.kdim = m.vdim = e
    m.head_dim = e // m.num_heads  # ``num_heads`` was rewritten first when whole heads went


@register_fixup(nn.RNNBase)
def _recurrent(m: nn.RNNBase, shapes: ModuleShapes) -> None:
    """Widths from the sliced weights; surgery set the parameters behind ``RNNBase.__setattr__``, so the
    ``_flat_weights`` list torch's kernel reads still held the old tensors until rebuilt here."""
    gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
    m.input_size = m.weight_ih_l0.shape[1]
    m.hidden_size = m.weight_hh_l0.shape[0] // gates
    if m.proj_size:
        m.proj_size = m.weight_hr_l0.shape[0]
    m._init_flat_weights()


@register_fixup(nn.Transformer)
def _transformer(m: nn.Transformer, shapes: ModuleShapes) -> None:
    """``nn.Transformer.forward`` refuses inputs whose width is not its stored ``d_model``; the attention
    layers inside hold the pruned width (every one reads it: their widths are coupled)."""
    attn = next((a for a in m.modules() if isinstance(a, nn.MultiheadAttention)), None)
    if attn is not None:
        m.d_model = (
            attn.in_proj_weight.shape[1] if attn.in_proj_weight is not None else attn.q_proj_weight.shape[1]
        )
