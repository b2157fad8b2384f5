"""The adder convolution of AdderNet (Chen et al., "AdderNet: Do we really need multiplications in deep
learning?", CVPR 2020): the output is the negative L1 distance between each input patch and each filter,

    Y[n, o, p] = -sum_j |X[n, j, p] - W[o, j]|      (j runs over in_channels * kh * kw)

so a forward pass needs only additions and subtractions. The paper's backward pass replaces the sign
gradients of ``|.|`` (which barely move the filters) with

    dY/dW = X - W                     (full precision, for the filters)
    dY/dX = HardTanh(W - X)           (clipped, for the inputs: keeps gradients from exploding in depth)

and rescales each layer's filter gradient to a norm of ``eta * sqrt(numel(W))`` (the paper's adaptive
learning rate, Eq. 12), because the magnitudes of adder gradients differ widely from layer to layer.

On CPU the forward and the input gradient run as fused kernels compiled by ``torch.compile``
(``netsculpt.adder.fused``: no difference tensor, ~5-10x faster); where that is off, unavailable or not
worth it (small shapes), the eager path below computes the same: the forward is ``torch.cdist(p=1)``
and the backward's broadcast ``(rows, out, patch)`` clipped difference is formed a chunk of patch rows
at a time, so memory stays bounded. The filter gradient is two matrix products either way.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netsculpt.adder.fused import fused_clipped_input_grad, fused_neg_l1_distance
from netsculpt.adder.fused import usable as fused_usable
from netsculpt.errors import ConfigError

#: cap on the elements of one chunk's (rows, out, patch) difference tensor: 4M floats = 16 MB
CHUNK_ELEMENTS = 1 << 22
#: the reference implementation's eta (the paper's hyper-parameter in Eq. 12)
DEFAULT_ETA = 0.2


def _rows_per_chunk(out_channels: int, patch: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, out_channels * patch))


def neg_l1_distance(cols: Tensor, weight: Tensor) -> Tensor:
    """``-sum_j |cols[r, j] - weight[o, j]|`` for rows ``r`` of ``cols`` (rows, patch) → (rows, out)."""
    # torch.cdist's p=1 kernel forms no (rows, out, patch) difference tensor: ~5x faster than the
    # broadcast form on one CPU thread (LeNet-5 conv2, batch 64), equal up to float rounding
    return -torch.cdist(cols.unsqueeze(0), weight.unsqueeze(0), p=1).squeeze(0)


def _eager_input_grad(cols: Tensor, weight: Tensor, grad_out: Tensor, exact: bool = False) -> Tensor:
    """Rows layout (rows, patch), (out, patch), (rows, out): the clipped differences chunk by chunk
    (``exact``: their signs, the true derivative of -|x - w|)."""
    grad_cols = torch.empty_like(cols)
    step = _rows_per_chunk(weight.shape[0], weight.shape[1])
    for start in range(0, cols.shape[0], step):
        block = cols[start : start + step]
        diff = weight.unsqueeze(0) - block.unsqueeze(1)
        clipped = diff.sign_() if exact else diff.clamp_(-1.0, 1.0)  # HardTanh
        grad_cols[start : start + step] = torch.einsum("ro,roj->rj", grad_out[start : start + step], clipped)
    return grad_cols


def _rows(t: Tensor) -> Tensor:
    """(images, c, L) -> (images * L, c): the eager path's patch-row layout."""
    return t.transpose(1, 2).reshape(-1, t.shape[1])


class _AdderFunction(torch.autograd.Function):
    """Forward: negative L1 distance; backward: the paper's surrogate gradients (module docstring).

    Works in ``F.unfold``'s layout: cols (images, patch, L) -> output (images, out, L).
    """

    @staticmethod
    def forward(ctx: Any, cols: Tensor, weight: Tensor, eta: float, exact: bool = False) -> Tensor:
        ctx.save_for_backward(cols, weight)
        ctx.eta, ctx.exact = eta, exact
        out = fused_neg_l1_distance(cols, weight) if fused_usable(cols, weight) else None
        if out is None:
            n, _, positions = cols.shape
            out = neg_l1_distance(_rows(cols), weight).reshape(n, positions, -1).transpose(1, 2)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        cols, weight = ctx.saved_tensors
        grad_cols = grad_weight = None
        if ctx.needs_input_grad[1]:
            # sum_r g[r, o] * (X[r, j] - W[o, j]) = (g^T X)[o, j] - W[o, j] * sum_r g[r, o]
            grad_weight = torch.matmul(grad_out, cols.transpose(1, 2)).sum(0)
            grad_weight = grad_weight - weight * grad_out.sum(dim=(0, 2)).unsqueeze(1)
            if ctx.eta > 0:
                norm = grad_weight.norm().clamp_min(1e-12)
                grad_weight = grad_weight * (ctx.eta * math.sqrt(weight.numel()) / norm)
        if ctx.needs_input_grad[0] and not ctx.exact and fused_usable(cols, weight):
            grad_cols = fused_clipped_input_grad(cols, weight, grad_out)
        if ctx.needs_input_grad[0] and grad_cols is None:  # the eager path: same result, slower
            n, patch, positions = cols.shape
            grad_rows = _eager_input_grad(_rows(cols), weight, _rows(grad_out), ctx.exact)
            grad_cols = grad_rows.reshape(n, positions, patch).transpose(1, 2)
        return grad_cols, grad_weight, None, None


class AdderConv2d(nn.Module):
    """A drop-in for an ungrouped ``nn.Conv2d`` that computes ``-||patch - filter||_1`` (no multiplies).

    ``eta`` scales the adaptive learning rate of the filters (0 turns the rescaling off and keeps the
    plain full-precision gradient). Follow it with batch norm: its outputs are large negative numbers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = False,
        eta: float = DEFAULT_ETA,
    ) -> None:
        super().__init__()
        pair = nn.modules.utils._pair
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        if not eta >= 0:
            raise ConfigError(f"AdderConv2d eta must be >= 0 (0.2 in the paper), got {eta!r}")
        self.eta = float(eta)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # one unbatched image (C, H, W), as nn.Conv2d accepts
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4:
            raise ConfigError(
                f"AdderConv2d takes (N, C, H, W) or (C, H, W) input, got shape {tuple(x.shape)}"
            )
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
            raise ConfigError(
                "an AdderNet cannot be exported to ONNX / OpenVINO: those runtimes have no adder "
                "(L1-distance) op; time it on PyTorch (--runtimes torch)"
            )
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        out_h = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (n, patch, L)
        weight = self.weight.reshape(self.out_channels, -1)
        out = _AdderFunction.apply(cols, weight, self.eta, getattr(self, "exact_input_grad", False))
        out = out.reshape(n, self.out_channels, out_h, out_w)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}, eta={self.eta}"
        )


@contextlib.contextmanager
def exact_input_gradients(model: nn.Module) -> Iterator[None]:
    """Inside the block every adder layer back-propagates the true derivative of -|x - w| (its sign)
    instead of AdderNet's HardTanh training surrogate: what gradient-based explanations (Grad-CAM) need.
    The flag lives on the layers only for the block, so nothing is left in the model."""
    layers = [m for m in model.modules() if isinstance(m, AdderConv2d)]
    for layer in layers:
        layer.exact_input_grad = True
    try:
        yield
    finally:
        for layer in layers:
            del layer.exact_input_grad
