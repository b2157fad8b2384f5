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
- one compile per ``(kernel, out, patch, dtype, rows per call)``: calls run on fixed-size row blocks
  (the last block zero-padded), each key gets its own function object, so dynamo never re-specialises
  and never hits its recompile limit however many layer shapes a model has;
- any failure to compile (no C++ compiler, an unsupported dtype, an inductor bug) is caught once per
  key with a warning, and the caller falls back to the eager path: same result, only slower.

``NETSCULPT_ADDER_FUSED=0`` or :func:`fused_kernels` (``with fused_kernels(False): ...``) turns it off.
"""

from __future__ import annotations

import os
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

#: below this many rows * out * patch elements per call the eager path is used (no compile)
FUSED_MIN_ELEMENTS = 1 << 20
#: target work of one compiled call (rows per call = this / (out * patch), a power of two)
FUSED_CALL_ELEMENTS = 1 << 24
_MIN_ROWS, _MAX_ROWS = 32, 4096

_enabled = os.environ.get("NETSCULPT_ADDER_FUSED", "1") != "0"
_MISSING = object()
#: key -> compiled function, or None when compiling it failed (then the eager path is used)
_compiled: dict[tuple, Callable | None] = {}


def _neg_l1(cols: Tensor, weight: Tensor) -> Tensor:
    return -(cols.unsqueeze(1) - weight.unsqueeze(0)).abs().sum(2)


def _clipped_input_grad(cols: Tensor, weight: Tensor, grad_out: Tensor) -> Tensor:
    return (grad_out.unsqueeze(2) * (weight.unsqueeze(0) - cols.unsqueeze(1)).clamp(-1.0, 1.0)).sum(1)


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


def rows_per_call(rows: int, out: int, patch: int) -> int:
    """Rows of one compiled call: ~``FUSED_CALL_ELEMENTS`` of work, at most twice ``rows`` (padding)."""
    target = _prev_pow2(FUSED_CALL_ELEMENTS // max(1, out * patch))
    fit = _prev_pow2(rows) * (1 if _prev_pow2(rows) == rows else 2)  # next power of two >= rows
    return max(_MIN_ROWS, min(target, fit, _MAX_ROWS))


def _usable(cols: Tensor, weight: Tensor) -> bool:
    return (
        _enabled
        and cols.device.type == "cpu"
        and cols.dtype in (torch.float32, torch.float64)
        and cols.shape[0] * weight.shape[0] * weight.shape[1] >= FUSED_MIN_ELEMENTS
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


def _blocks(fn: Callable, name: str, args: tuple[Tensor, ...], out_cols: int) -> Tensor | None:
    """Run ``fn`` over fixed-size row blocks of ``args[0]`` (and ``args[2]``); None if it can't compile."""
    cols, weight = args[0], args[1]
    rows = cols.shape[0]
    step = rows_per_call(rows, weight.shape[0], weight.shape[1])
    key = (name, weight.shape[0], weight.shape[1], cols.dtype, step)
    kernel = _kernel(fn, key)
    if kernel is None:
        return None
    result = torch.empty(rows, out_cols, dtype=cols.dtype)
    with torch.no_grad():
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            row_args = [a[start:stop] if i != 1 else a for i, a in enumerate(args)]
            if stop - start < step:  # zero-pad the last block to the compiled shape
                row_args = [
                    a if i == 1 else torch.cat([a, a.new_zeros(step - (stop - start), a.shape[1])])
                    for i, a in enumerate(row_args)
                ]
            try:
                block = kernel(*row_args)
            except Exception as err:  # any compiler failure means: use the eager path
                _compiled[key] = None
                warnings.warn(
                    f"netsculpt.adder: compiling the fused {name} kernel failed ({type(err).__name__}: "
                    f"{str(err)[:200]}); using the slower eager path. Install a C++ compiler (gcc) for "
                    "torch.compile, or set NETSCULPT_ADDER_FUSED=0 to silence this.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return None
            result[start:stop] = block[: stop - start]
    return result


def fused_neg_l1_distance(cols: Tensor, weight: Tensor) -> Tensor | None:
    """``-||cols[r] - weight[o]||_1`` (rows, out) by the compiled kernel, or None (use the eager one)."""
    if not _usable(cols, weight):
        return None
    return _blocks(
        _neg_l1, "neg_l1", (cols.detach().contiguous(), weight.detach().contiguous()), weight.shape[0]
    )


def fused_clipped_input_grad(cols: Tensor, weight: Tensor, grad_out: Tensor) -> Tensor | None:
    """``sum_o grad_out[r, o] * clamp(weight[o] - cols[r], -1, 1)`` (rows, patch), or None (eager)."""
    if not _usable(cols, weight) or grad_out.dtype != cols.dtype:
        return None
    args = (cols.detach().contiguous(), weight.detach().contiguous(), grad_out.detach().contiguous())
    return _blocks(_clipped_input_grad, "clipped_grad", args, cols.shape[1])
