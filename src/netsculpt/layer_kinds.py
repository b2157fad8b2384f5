"""Which modules are linear / convolution layers, and their weight in the (out, in) layout, for the
weight-compression code (sparsity, clustering, low-rank) that must not care who wrote the layer.

Hugging Face's ``transformers.pytorch_utils.Conv1D`` (GPT-2 and GPT-era models) is a Linear whose weight
is stored transposed, ``(in, out)``, with ``nx`` / ``nf`` for ``in_features`` / ``out_features``. It is
recognised by class path (itself or a subclass), so netsculpt never imports transformers; code that
reads a layer's rows as its outputs goes through :func:`out_in` / :func:`stored`.
"""

from __future__ import annotations

from torch import Tensor, nn

HF_CONV1D = "transformers.pytorch_utils.Conv1D"
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_hf_conv1d(module: nn.Module) -> bool:
    """``module`` is a Hugging Face ``Conv1D`` or a subclass of it."""
    return any(f"{c.__module__}.{c.__qualname__}" == HF_CONV1D for c in type(module).__mro__)


def is_linear(module: nn.Module) -> bool:
    """An ``nn.Linear`` or a layer computing the same thing from a transposed weight."""
    return isinstance(module, nn.Linear) or is_hf_conv1d(module)


def is_weight_layer(module: nn.Module) -> bool:
    """A convolution or a linear layer: what sparsity and clustering select by default."""
    return isinstance(module, CONVS) or is_linear(module)


def transposed(module: nn.Module) -> bool:
    """True when ``module.weight`` is stored ``(in, out)`` rather than torch's ``(out, in, ...)``."""
    return is_hf_conv1d(module)


def out_in(module: nn.Module, weight: Tensor) -> Tensor:
    """``weight`` (of ``module``'s stored layout) as ``(out, in, ...)``: a view, no copy."""
    return weight.t() if transposed(module) else weight


def stored(module: nn.Module, weight: Tensor) -> Tensor:
    """Inverse of :func:`out_in`: an ``(out, in, ...)`` tensor in ``module``'s stored layout."""
    return weight.t() if transposed(module) else weight


def linear_features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a layer :func:`is_linear` accepts."""
    out, inp = out_in(module, module.weight).shape
    return int(inp), int(out)
