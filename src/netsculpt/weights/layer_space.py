"""What every per-layer weight-width space shares: its layers, their names and the float weights.

:class:`~netsculpt.weights.bit_space.BitSpace` (palette bits) and
:class:`~netsculpt.weights.int_space.IntSpace` (int4 / int8) differ in how a layer is priced and which
weights are swapped in; both keep a snapshot of the float weights taken before any candidate is scored,
so a swap can always be undone exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from torch import Tensor, nn


class _Layer(Protocol):
    name: str
    module: nn.Module


L = TypeVar("L", bound=_Layer)


class LayerSpace(Generic[L]):
    """Per-layer choices for ``layers`` of ``model``; snapshots their float weights."""

    def __init__(self, model: nn.Module, layers: list[L]) -> None:
        self.model = model
        self.layers = layers
        self._original: dict[str, Tensor] = {
            layer.name: layer.module.weight.detach().clone() for layer in layers
        }

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer_bits(self, bits: Iterable[int]) -> dict[str, int]:
        """Layer name -> its width in the vector ``bits`` (the form results and exports take)."""
        return {layer.name: int(b) for layer, b in zip(self.layers, bits)}
