"""Context models the shipped coder is compared against: ideal code lengths, -sum log2 p, in bits.

The shipped coder (``netsculpt.weights.coding``) uses adaptive counts with one context, the symbol above
(same input position, previous output channel). Here, measured on the same symbols:

* ``counts2``: adaptive counts over the joint context (above, left): k*k contexts, the same KT prior.
* ``learned``: a tiny learned model, a softmax regression over one-hot features of four decoded
  neighbours (above, left, above-left, above-right), trained online by Adam steps on each chunk of 256
  symbols just coded (in row order), so a decoder can replay it and nothing is stored. Its bits are
  an ideal code length (a range coder adds a few words per tensor).

Both use the left neighbour, so a decoder would have to go symbol by symbol (the shipped coder decodes a
whole row at once); they are here to answer whether a richer or learned model would pay.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

PRIOR = 0.5


def _neighbours(grid: np.ndarray, k: int) -> np.ndarray:
    """(rows, cols, 4) of above, left, above-left, above-right; ``k`` (an extra symbol) off the edge."""
    pad = np.full((grid.shape[0] + 1, grid.shape[1] + 2), k, dtype=np.int64)
    pad[1:, 1:-1] = grid
    return np.stack([pad[:-1, 1:-1], pad[1:, :-2], pad[:-1, :-2], pad[:-1, 2:]], axis=-1)


def counts2_bits(grid: np.ndarray, k: int) -> float:
    """Adaptive counts per (above, left) context, updated row by row like the shipped coder."""
    near = _neighbours(grid, k)
    ctx = near[..., 0] * (k + 1) + near[..., 1]
    counts = np.full(((k + 1) ** 2, k), PRIOR)
    bits = 0.0
    for r in range(grid.shape[0]):
        rows = counts[ctx[r]]
        p = rows[np.arange(grid.shape[1]), grid[r]] / rows.sum(axis=1)
        bits -= float(np.log2(p).sum())
        np.add.at(counts, (ctx[r], grid[r]), 1.0)
    return bits


def learned_bits(grid: np.ndarray, k: int, lr: float = 0.05, chunk: int = 256, steps: int = 2) -> float:
    """An online softmax regression over one-hot neighbours; ``steps`` Adam steps per coded chunk."""
    torch.manual_seed(0)
    near = torch.from_numpy(_neighbours(grid, k))
    feats = nn.functional.one_hot(near, k + 1).reshape(grid.size, -1).float()
    target = torch.from_numpy(grid.astype(np.int64).reshape(-1))
    model = nn.Linear(feats.shape[-1], k)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)  # starts uniform, as the counts' prior does
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    bits = 0.0
    for start in range(0, grid.size, chunk):
        x, y = feats[start : start + chunk], target[start : start + chunk]
        with torch.no_grad():  # coded with the model as it was before this chunk
            bits += float(nn.functional.cross_entropy(model(x), y, reduction="sum")) / np.log(2)
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return bits
