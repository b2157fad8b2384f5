"""Accuracy predictors: a GCN over the layer graph and an MLP over the width vector (plain torch).

Both regress a candidate's score from its widths. The GCN shares one set of weights across layers and
mixes each layer's features with its neighbours' (``H' = relu(Â H W)``, Â the normalised adjacency with
self-loops), so what it learns about "a conv that keeps 30% of its inputs after a wide residual stream"
transfers between layers; the MLP sees the widths as one flat vector and must learn every layer apart.
The graph is one fixed, small, dense adjacency shared by every candidate, so a batched matmul is all a
layer needs: torch_geometric's sparse message passing would add a dependency and buy nothing here.
Training is deterministic (seeded, one thread) so a resumed search replays its screening exactly.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.registry import Registry


class GCN(nn.Module):
    """``layers`` graph convolutions, mean + max pooling over layers, then a linear head."""

    def __init__(self, n_features: int, adjacency: Tensor, hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency.clone())
        sizes = [n_features] + [hidden] * layers
        self.convs = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:  # x: (batch, nodes, features)
        h = x
        for conv in self.convs:
            h = torch.relu(self.adjacency @ conv(h))
        pooled = torch.cat([h.mean(1), h.amax(1)], dim=1)
        return self.head(pooled).squeeze(-1)


class MLP(nn.Module):
    """Two hidden layers over the keep-ratio vector: the baseline the GCN must beat."""

    def __init__(self, n_inputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


PREDICTORS: Registry[Any] = Registry("predictor")
PREDICTORS.register("gcn", GCN)
PREDICTORS.register("mlp", MLP)


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seeded RNG and one torch thread: the same data always gives the same predictor."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


LOSSES = ("mse", "rank")


def pairwise_rank_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """RankNet's logistic loss over every ordered pair: only the order of the predictions counts, so a
    few candidates with extreme scores cannot pull the fit away from ranking the rest."""
    diff = predicted[:, None] - predicted[None, :]
    sign = torch.sign(target[:, None] - target[None, :])
    mask = sign != 0
    if not bool(mask.any()):
        return predicted.sum() * 0.0
    return nn.functional.softplus(-sign[mask] * diff[mask]).mean()


def fit(
    net: nn.Module,
    inputs: Tensor,
    targets: np.ndarray,
    *,
    epochs: int = 300,
    lr: float = 3e-3,
    seed: int = 0,
    loss: str = "mse",
) -> tuple[float, float]:
    """Full-batch Adam on standardised targets; returns the (mean, std) to undo the scaling. ``loss``:
    "mse", or "rank" (MSE plus the pairwise rank loss: a screen only needs the order right)."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r}: use one of {', '.join(LOSSES)}")
    y = torch.tensor(np.asarray(targets, dtype=np.float64), dtype=torch.float32)
    mean, std = float(y.mean()), float(y.std()) if len(y) > 1 else 1.0
    std = std if std > 1e-12 else 1.0
    y = (y - mean) / std
    with deterministic(seed):
        for module in net.modules():
            if hasattr(module, "reset_parameters") and module is not net:
                module.reset_parameters()
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
        net.train()
        for _ in range(epochs):
            opt.zero_grad()
            out = net(inputs)
            value = nn.functional.mse_loss(out, y)
            if loss == "rank":
                value = value + pairwise_rank_loss(out, y)
            value.backward()
            opt.step()
        net.eval()
    return mean, std
