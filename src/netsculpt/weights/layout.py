"""How a weight tensor becomes the points a codebook clusters, and back.

A weight of shape ``(out, ...)`` is read as one row per output channel. Rows are split into
``groups`` codebook groups of ``out / groups`` consecutive output channels (one codebook each), and
every row into vectors of ``vector_dim`` consecutive elements. The result, ``(groups, points, dim)``,
is what both DKM and k-means cluster, and what the packed format stores indices for, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from netsculpt.errors import ConfigError

MAX_BITS = 8


@dataclass(frozen=True)
class PaletteSpec:
    """One layer's codebook layout: ``2**bits`` centroids of ``vector_dim`` values per group."""

    bits: int
    group_size: int | None = None
    vector_dim: int = 1

    @property
    def k(self) -> int:
        return 2**self.bits

    def groups(self, shape: tuple[int, ...]) -> int:
        """Number of codebooks for a weight of ``shape`` (one per ``group_size`` output channels)."""
        return 1 if self.group_size is None else shape[0] // self.group_size

    def check(self, shape: tuple[int, ...], name: str) -> None:
        """Refuse layouts that do not tile the weight, naming the layer and the fix."""
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= MAX_BITS:
            raise ConfigError(f"{name}: bits must be an integer in 1..{MAX_BITS}, got {self.bits!r}")
        if len(shape) < 2:
            raise ConfigError(
                f"{name}: only weights with an output-channel dim can be palettized, got {shape}"
            )
        if self.group_size is not None and (self.group_size < 1 or shape[0] % self.group_size):
            raise ConfigError(
                f"{name}: group_size={self.group_size} must divide its {shape[0]} output channels "
                "(or use group_size=None for one codebook per tensor)"
            )
        row = _prod(shape[1:])
        if self.vector_dim < 1 or row % self.vector_dim:
            raise ConfigError(
                f"{name}: vector_dim={self.vector_dim} must divide its rows of {row} weights "
                f"(weight shape {tuple(shape)}); choose a divisor or vector_dim=1"
            )


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def to_points(weight: Tensor, spec: PaletteSpec) -> Tensor:
    """``(groups, points, vector_dim)`` view of ``weight`` (differentiable: it is a reshape)."""
    groups = spec.groups(tuple(weight.shape))
    return weight.reshape(groups, -1, spec.vector_dim)


def from_points(points: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Inverse of :func:`to_points`."""
    return points.reshape(shape)


def lookup(lut: Tensor, indices: Tensor) -> Tensor:
    """Gather ``lut[g, indices[g, i]]``: ``(G, k, d)`` and ``(G, n)`` -> ``(G, n, d)``."""
    index = indices.long().unsqueeze(-1).expand(-1, -1, lut.shape[-1])
    return torch.gather(lut, 1, index)
