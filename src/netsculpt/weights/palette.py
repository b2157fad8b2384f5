"""A palettized weight: an fp16 lookup table per codebook plus one small index per weight (or vector).

After clustering, a layer's weight *is* ``lut[indices]``: the float weight kept in the module is exactly
that lookup (fp16 table values widened to float32), so the model runs unchanged in PyTorch, ONNX or
anything else, while :mod:`netsculpt.weights.storage` saves only the table and the bit-packed indices.
The record rides on the module as a plain attribute, so ``deepcopy`` keeps it and ``state_dict`` never
sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from netsculpt.weights.layout import PaletteSpec, from_points, lookup, to_points

PALETTES_ATTR = "netsculpt_palettes"


@dataclass
class Palette:
    """``lut``: ``(groups, 2**bits, vector_dim)`` float16; ``indices``: ``(groups, points)`` uint8."""

    lut: Tensor
    indices: Tensor
    bits: int
    shape: tuple[int, ...]

    @property
    def spec(self) -> PaletteSpec:
        groups = self.lut.shape[0]
        return PaletteSpec(
            bits=self.bits,
            group_size=None if groups == 1 else self.shape[0] // groups,
            vector_dim=self.lut.shape[-1],
        )

    def weight(self) -> Tensor:
        """The float32 weight this palette encodes (exact: fp16 values widen to float32 losslessly)."""
        return from_points(lookup(self.lut.float(), self.indices), self.shape)


def assign(points: Tensor, lut: Tensor, chunk: int = 1 << 16) -> Tensor:
    """Index of the nearest ``lut`` entry for every point, ``(G, n)`` uint8, in chunks of points."""
    out = torch.empty(points.shape[:2], dtype=torch.uint8)
    with torch.no_grad():
        for start in range(0, points.shape[1], chunk):
            part = points[:, start : start + chunk].float()
            dist = torch.cdist(part, lut.float(), compute_mode="donot_use_mm_for_euclid_dist")  # exact
            out[:, start : start + chunk] = dist.argmin(-1).to(torch.uint8)
    return out


def palette_from_centroids(weight: Tensor, centroids: Tensor, spec: PaletteSpec) -> Palette:
    """Hard-assign ``weight`` to ``centroids`` rounded to fp16: the palette the layer will store."""
    lut = centroids.detach().to(torch.float16)
    points = to_points(weight.detach(), spec)
    return Palette(lut=lut, indices=assign(points, lut), bits=spec.bits, shape=tuple(weight.shape))


def set_palette_(module: nn.Module, name: str, palette: Palette) -> None:
    """Make ``module.<name>`` exactly ``palette.weight()`` and remember the palette for saving."""
    param = getattr(module, name)
    with torch.no_grad():
        param.copy_(palette.weight().to(param.dtype))
    palettes = dict(getattr(module, PALETTES_ATTR, {}))
    palettes[name] = palette
    setattr(module, PALETTES_ATTR, palettes)


def module_palettes(module: nn.Module) -> dict[str, Palette]:
    return dict(getattr(module, PALETTES_ATTR, {}))


def iter_palettes(model: nn.Module) -> Iterator[tuple[str, Palette]]:
    """``(state-dict key, palette)`` for every palettized tensor in ``model``."""
    for prefix, module in model.named_modules():
        for name, palette in module_palettes(module).items():
            yield (f"{prefix}.{name}" if prefix else name), palette


def palettized_bits(model: nn.Module) -> dict[str, int]:
    """Bits per index of each palettized tensor, by state-dict key (for reports)."""
    return {key: palette.bits for key, palette in iter_palettes(model)}
