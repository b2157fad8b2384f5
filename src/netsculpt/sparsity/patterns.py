"""Which weights to keep: unstructured magnitude, N:M semi-structured and block masks.

Every mask is a bool tensor of the weight's shape (True: kept). N:M and block patterns are laid over the
weight's 2-D view ``(out, in * kernel)``, the reduction dimension being the one that 2:4 sparse kernels
(cuSPARSELt, ``torch.sparse.to_sparse_semi_structured``) group along.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from netsculpt.errors import ConfigError

_NM = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern: ``kind`` is ``unstructured``, ``nm`` or ``block``."""

    kind: str
    n: int = 0
    m: int = 0
    block: tuple[int, int] = (1, 1)

    @property
    def fixed_sparsity(self) -> float | None:
        """N:M fixes the sparsity (2:4 is 50%); the others take it from the config."""
        return 1.0 - self.n / self.m if self.kind == "nm" else None


def parse_pattern(text: str, block: tuple[int, int] = (4, 4)) -> Pattern:
    """``"unstructured"``, ``"block"`` or ``"N:M"`` (``"2:4"``, ``"4:8"``)."""
    if text == "unstructured":
        return Pattern("unstructured")
    if text == "block":
        if len(block) != 2 or any(not isinstance(b, int) or b < 1 for b in block):
            raise ConfigError(f"block must be two positive integers (rows, cols), got {block!r}")
        return Pattern("block", block=(int(block[0]), int(block[1])))
    match = _NM.match(text)
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise ConfigError(f"pattern {text!r}: N:M needs 0 < N < M (keep N of every M weights)")
        return Pattern("nm", n=n, m=m)
    raise ConfigError(f"pattern {text!r} is not one of 'unstructured', 'block' or 'N:M' such as '2:4'")


def _rows(weight: Tensor) -> Tensor:
    return weight.detach().reshape(weight.shape[0], -1) if weight.dim() > 1 else weight.detach()[None]


def keep_top(scores: Tensor, sparsity: float) -> Tensor:
    """Keep the ``round((1 - sparsity) * numel)`` largest scores (ties broken by position, stable)."""
    flat = scores.reshape(-1)
    keep = round((1.0 - sparsity) * flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if keep > 0:
        order = torch.argsort(flat, descending=True, stable=True)
        mask[order[:keep]] = True
    return mask.reshape(scores.shape)


#: how each front end leaves a layer dense (an RGB stem conv, 3x3x3 = 27 inputs, fits no N:M pattern)
SKIP_HOW = "a recipe's sparsify stage: skip: [{0}]; CLI: --skip {0}; Python: filter_fn"


def check_fits(pattern: Pattern, shape: tuple[int, ...], layer: str) -> None:
    """Raise ConfigError naming ``layer`` when its 2-D view is not a whole number of groups / blocks."""
    rows = shape[0] if len(shape) > 1 else 1
    cols = (int(torch.Size(shape).numel()) // rows) if rows else 0
    if pattern.kind == "nm" and cols % pattern.m:
        raise ConfigError(
            f"cannot apply {pattern.n}:{pattern.m} sparsity to {layer!r}: its weight {list(shape)} has "
            f"{cols} inputs per output, not a multiple of {pattern.m}; leave it dense "
            f"({SKIP_HOW.format(layer)}) or use the unstructured pattern"
        )
    if pattern.kind == "block":
        br, bc = pattern.block
        if rows % br or cols % bc:
            raise ConfigError(
                f"cannot apply {br}x{bc} block sparsity to {layer!r}: its weight {list(shape)} is "
                f"{rows}x{cols} as a matrix, not a multiple of the block; choose another block size or "
                f"leave it dense ({SKIP_HOW.format(layer)})"
            )


def layer_mask(weight: Tensor, pattern: Pattern, sparsity: float, layer: str) -> Tensor:
    """The mask of one layer's weight by magnitude under ``pattern`` at ``sparsity``."""
    check_fits(pattern, tuple(weight.shape), layer)
    rows = _rows(weight).abs()
    if pattern.kind == "unstructured":
        return keep_top(rows, sparsity).reshape(weight.shape)
    if pattern.kind == "nm":
        groups = rows.reshape(rows.shape[0], -1, pattern.m)
        order = torch.argsort(groups, dim=-1, descending=True, stable=True)
        mask = torch.zeros_like(groups, dtype=torch.bool)
        mask.scatter_(-1, order[..., : pattern.n], True)
        return mask.reshape(weight.shape)
    br, bc = pattern.block
    r, c = rows.shape
    blocks = rows.reshape(r // br, br, c // bc, bc).sum(dim=(1, 3))
    kept = keep_top(blocks, sparsity)
    return kept.repeat_interleave(br, 0).repeat_interleave(bc, 1).reshape(weight.shape)


def global_masks(weights: dict[str, Tensor], sparsity: float, floor: float = 0.1) -> dict[str, Tensor]:
    """Unstructured masks with one magnitude threshold across all layers (layers end up unequal).

    One threshold can empty a layer whose weights are all small (layer collapse, which disconnects the
    network); each layer therefore keeps at least its ``floor`` share of what a per-layer split would keep
    (its largest ``ceil(floor * (1 - sparsity) * numel)`` weights, at least one). The floor only binds on
    a layer the threshold would nearly empty, and the overall fraction stays exact.
    """
    names = list(weights)
    scores = []
    for name in names:
        score = weights[name].detach().abs().reshape(-1).clone()
        reserve = min(score.numel(), max(1, math.ceil(floor * (1.0 - sparsity) * score.numel())))
        score[torch.topk(score, reserve, sorted=False).indices] = float("inf")
        scores.append(score)
    kept = keep_top(torch.cat(scores), sparsity)
    out, start = {}, 0
    for name in names:
        n = weights[name].numel()
        out[name] = kept[start : start + n].reshape(weights[name].shape)
        start += n
    return out
