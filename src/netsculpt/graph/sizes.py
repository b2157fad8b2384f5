"""Channel counts read from ``.shape`` and used as sizes elsewhere.

Model code often reads a channel count from one tensor and uses it to shape another:
``out.reshape(B, C, H, W)`` with ``B, C, H, W = x.shape`` (timm's LambdaLayer). The two counts are then
tied by the code, not by any op netsculpt sees, and pruning one side alone breaks the reshape. The
tracer hands the model a ``ChannelCount`` (an ``int`` that remembers which value and dim it was read
from) for dims that carry channels; after a size-taking call is traced, ``tie_sizes`` requires the
output dim to hold the same channels as the source dim (in any order: a channel shuffle is fine), or
pins both. ``//`` and ``*`` on a count give a ``DerivedCount`` (``C // heads``), which must hold the same
set of channels; other arithmetic returns a plain ``int`` and is not followed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from netsculpt.graph.builder import GraphBuilder, Value
from netsculpt.graph.labels import along
from netsculpt.graph.plain_int import PlainInt
from netsculpt.graph.registry import Call, tensor_methods
from netsculpt.graph.rules.common import set_output, size_args


class _Counted(PlainInt):
    value_id: int
    dim: int

    def __new__(cls, n: int, value_id: int, dim: int) -> _Counted:
        self = super().__new__(cls, n)
        self.value_id, self.dim = value_id, dim
        return self

    def _derive(self, n: object) -> object:
        # an int the head-count marks derived (heads.DerivedSize) still follows this count's channels
        plain = isinstance(n, int) and not isinstance(n, bool | _Counted)
        return DerivedCount(int(n), self.value_id, self.dim) if plain else n

    def __floordiv__(self, other: object) -> object:
        return self._derive(int(self) // other)  # type: ignore[operator]

    def __mul__(self, other: object) -> object:
        return self._derive(int(self) * other)  # type: ignore[operator]

    __rmul__ = __mul__


class ChannelCount(_Counted):
    """``int`` read from dim ``dim`` of traced value ``value_id`` (a dim that carries channels)."""


class DerivedCount(_Counted):
    """``C // heads`` or ``C * 2`` of a ``ChannelCount``: a size that follows that dim's channels."""


def wrap_shape(out: Any, v: Value, dim: int | None = None) -> Any:
    """``torch.Size`` / ``int`` from ``v.shape`` / ``v.size(dim)`` with channel dims as ``ChannelCount``."""
    if isinstance(out, torch.Size):
        return torch.Size(ChannelCount(n, v.id, d) if v.labels.shape[d] > 1 else n for d, n in enumerate(out))
    if isinstance(out, int) and dim is not None and v.ndim:
        d = dim % v.ndim
        return ChannelCount(out, v.id, d) if v.labels.shape[d] > 1 else out
    return out


# new tensors whose size arguments are the output's dims, and whether they start as zeros
# (``empty`` holds whatever memory held: not zero, so a consumer that mixes it is soft-pinned)
_FRESH = {f: True for f in tensor_methods("zeros", "new_zeros")}
_FRESH.update(
    {f: False for f in tensor_methods("empty", "new_empty", "ones", "full", "new_ones", "new_full")}
)
_FRESH.update({f: False for f in tensor_methods("rand", "randn")})

# calls whose size arguments are the output's dims, in order
SIZE_TAKING = set(
    tensor_methods("view", "reshape", "expand", "new_zeros", "new_ones", "new_empty", "new_full")
    + tensor_methods("zeros", "ones", "empty", "full", "rand", "randn")
)


def _counts_in(items: Any) -> list[_Counted]:
    found: list[_Counted] = []
    for a in items:
        if isinstance(a, _Counted):
            found.append(a)
        elif isinstance(a, list | tuple):
            found += _counts_in(a)
    return found


def counted_atoms(v: Value, dim: int) -> np.ndarray:
    """The channels a count of ``v.shape[dim]`` counts: the atoms along ``dim`` at index 0 of every other dim.

    Attention reads ``value.shape[-1]`` from a (batch, heads, length, head_dim) tensor whose head-dim
    positions are channels in every head. Any head's row stands for all of them: the split that made the
    heads tied their positions, and a layout in which heads could lose different positions is pinned as
    ragged when the trace is resolved (groups.py), so the count shrinks by the same channels in every head.
    """
    dim %= v.ndim
    row = v.labels[tuple(slice(None) if d == dim else 0 for d in range(v.ndim))]
    return np.broadcast_to(row, (v.shape[dim],)).copy() if row.size == 1 else row.copy()


def tie_sizes(ctx: GraphBuilder, call: Call) -> None:
    """Tie (or pin) channels whose count the model's code copied into another tensor's shape."""
    counts = _counts_in([*call.args, *call.kwargs.values()])
    if not counts:
        return
    sizes = size_args(call) if call.func in SIZE_TAKING and call.outputs else []
    out = call.outputs[0] if call.outputs else None
    for count in counts:
        src = ctx.values[count.value_id]
        reason = f"{call.where} sizes a tensor with the channel count of {src.origin}"
        src_atoms = counted_atoms(src, count.dim)
        positions = [j for j, s in enumerate(sizes) if s is count]
        if out is None or len(sizes) != out.ndim or len(positions) != 1:
            ctx.block(src_atoms, f"{reason} in a way netsculpt does not follow")
            continue
        j = positions[0]
        if out.labels.shape[j] == 1 or (out.labels < 0).all():
            if call.func in _FRESH and isinstance(count, ChannelCount) and len(counts) == 1:
                # torch.zeros(B, C, ...) with C read from x.shape: a buffer that holds x's channels
                # (torchvision's MultiScaleRoIAlign fills one per pyramid level); pruned, it shrinks too
                set_output(out, along(src_atoms, j, out.ndim), _FRESH[call.func])
                continue
            ctx.block(src_atoms, reason)  # e.g. a new tensor sized by a count derived from C
            continue
        if isinstance(count, DerivedCount):  # e.g. C // heads: the same channels, whatever the layout
            ctx.tie_count(src_atoms, out.labels.ravel(), reason, same_set=True)
        else:
            ctx.tie_count(src_atoms, counted_atoms(out, j), reason)
