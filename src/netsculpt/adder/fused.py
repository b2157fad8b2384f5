"""Fused CPU kernels for the adder layer's two expensive loops, compiled once per layer shape.

The adder forward ``-sum_j |X[r, j] - W[o, j]|`` and the input gradient
``sum_o g[r, o] * clamp(W[o, j] - X[r, j], -1, 1)`` are elementwise work over ``rows x out x patch``
with a reduction; neither is a matrix product. Eager PyTorch either materialises the broadcast
difference (memory-bound, the old backward) or calls ``torch.cdist(p=1)`` (a generic loop); both ran at
~1 G elements/s on one thread, 16-49x the time of ``nn.Conv2d``. ``torch.compile`` (inductor) turns each
into one vectorised C++ loop that never forms the difference tensor, ~5-10x faster (docs/adder.md).

Why the rules below:

- compiled only where it pays: on CPU, and when a call has at least ``FUSED_MIN_ELEMENTS`` elements
  (small shapes keep the eager path and never wait for a compiler);
- the kernels read and write ``F.unfold``'s own layout, (images, patch, positions), and ``F.fold``'s:
  no transposing copies around them (in the row layout those copies took more time than the kernels);
- one compile per ``(kernel, out, patch, positions, dtype, images per call)``: calls run on fixed-size
  blocks of images (the last block zero-padded), each key gets its own function object, so dynamo
  never re-specialises and never hits its recompile limit however many layer shapes a model has;
- any failure to compile (no C++ compiler, an unsupported dtype, an inductor bug) is caught once per
  key with a warning, and the caller falls back to the eager path: same result, only slower.

``NETSCULPT_ADDER_FUSED=0`` or :func:`fused_kernels` (``with fused_kernels(False): ...``) turns it off.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from netsculpt.errors import warn_user

#: below this many rows * out * patch elements per call the eager path is used (no compile)
FUSED_MIN_ELEMENTS = 1 << 20
#: target work of one compiled call (images per call = this / (out * patch * positions), a power of two)
FUSED_CALL_ELEMENTS = 1 << 24
_MAX_IMAGES = 256

_enabled = os.environ.get("NETSCULPT_ADDER_FUSED", "1") != "0"
_MISSING = object()
#: key -> compiled function, or None when compiling it failed (then the eager path is used)
_compiled: dict[tuple, Callable | None] = {}


def _neg_l1(cols: Tensor, weight: Tensor) -> Tensor:
    """(b, patch, L), (out, patch) -> (b, out, L): ``-sum_j |cols[b, j, l] - weight[o, j]|``."""
    return -(cols.unsqueeze(1) - weight.unsqueeze(0).unsqueeze(3)).abs().sum(2)


def _clipped_input_grad(cols: Tensor, weight: Tensor, grad_out: Tensor) -> Tensor:
    """(b, patch, L), (out, patch), (b, out, L) -> (b, patch, L): ``sum_o g * HardTanh(W - X)``."""
    clipped = (weight.unsqueeze(0).unsqueeze(3) - cols.unsqueeze(1)).clamp(-1.0, 1.0)
    return (grad_out.unsqueeze(2) * clipped).sum(1)


@contextmanager
def fused_kernels(enabled: bool) -> Iterator[None]:
    """Turn the compiled kernels on or off inside the block (benchmarks time both paths this way)."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def _prev_pow2(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def images_per_call(images: int, out: int, patch: int, positions: int) -> int:
    """Images of one compiled call: ~``FUSED_CALL_ELEMENTS`` of work, at most twice ``images``."""
    target = _prev_pow2(FUSED_CALL_ELEMENTS // max(1, out * patch * positions))
    fit = _prev_pow2(images) * (1 if _prev_pow2(images) == images else 2)  # next power of two >= images
    return max(1, min(target, fit, _MAX_IMAGES))


def usable(cols: Tensor, weight: Tensor) -> bool:
    """Whether the compiled kernels are on and worth it for unfolded ``cols`` (images, patch, L)."""
    return (
        _enabled
        and cols.device.type == "cpu"
        and cols.dtype in (torch.float32, torch.float64)
        and cols.dim() == 3
        and cols.numel() * weight.shape[0] >= FUSED_MIN_ELEMENTS
    )


def _kernel(fn: Callable, key: tuple) -> Callable | None:
    """The compiled ``fn`` for ``key``: a fresh code object per key, so each has its own dynamo cache."""
    compiled = _compiled.get(key, _MISSING)
    if compiled is _MISSING:
        name = f"{fn.__name__}_" + "_".join(str(k).replace("torch.", "") for k in key[1:])
        code = fn.__code__.replace(co_name=name)
        fresh = types.FunctionType(code, fn.__globals__, name)
        compiled = torch.compile(fresh, dynamic=False, fullgraph=True)
        _compiled[key] = compiled
    return compiled  # type: ignore[return-value]


def _blocks(fn: Callable, name: str, args: tuple[Tensor, ...], out_dim: int) -> Tensor | None:
    """Run ``fn`` over fixed-size image blocks of ``args[0]`` (and ``args[2]``); None if it can't compile."""
    cols, weight = args[0], args[1]
    images, patch, positions = cols.shape
    step = images_per_call(images, weight.shape[0], patch, positions)
    key = (name, weight.shape[0], patch, positions, cols.dtype, step)
    kernel = _kernel(fn, key)
    if kernel is None:
        return None
    result = torch.empty(images, out_dim, positions, dtype=cols.dtype)
    with torch.no_grad():
        for start in range(0, images, step):
            stop = min(images, start + step)
            block_args = [a if i == 1 else a[start:stop] for i, a in enumerate(args)]
            if stop - start < step:  # zero-pad the last block to the compiled shape
                block_args = [
                    a if i == 1 else torch.cat([a, a.new_zeros(step - (stop - start), *a.shape[1:])])
                    for i, a in enumerate(block_args)
                ]
            try:
                block = kernel(*block_args)
            except Exception as err:  # any compiler failure means: use the eager path
                _compiled[key] = None
                warn_user(
                    f"netsculpt.adder: compiling the fused {name} kernel failed ({type(err).__name__}: "
                    f"{str(err)[:200]}); using the slower eager path. Install a C++ compiler (gcc) for "
                    "torch.compile, or set NETSCULPT_ADDER_FUSED=0 to silence this.",
                    RuntimeWarning,
                )
                return None
            result[start:stop] = block[: stop - start]
    return result


def fused_neg_l1_distance(cols: Tensor, weight: Tensor) -> Tensor | None:
    """(images, patch, L), (out, patch) -> (images, out, L) by the compiled kernel; None: use eager."""
    args = (cols.detach().contiguous(), weight.detach().contiguous())
    return _blocks(_neg_l1, "neg_l1", args, weight.shape[0])


def fused_clipped_input_grad(cols: Tensor, weight: Tensor, grad_out: Tensor) -> Tensor | None:
    """(images, patch, L) input gradient ``sum_o g * clamp(W - X, -1, 1)``, or None (use eager)."""
    if grad_out.dtype != cols.dtype:
        return None
    args = (cols.detach().contiguous(), weight.detach().contiguous(), grad_out.detach().contiguous())
    return _blocks(_clipped_input_grad, "clipped_grad", args, cols.shape[1])
