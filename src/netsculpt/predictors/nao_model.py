"""NAO's network (Luo et al., 2018) for width vectors: encoder -> embedding -> predictor head, decoder.

The encoder maps keep ratios (scaled to [0, 1] between each group's floor and its full size) to an
embedding; the predictor head regresses the (standardised) search metric from the embedding, and the
decoder maps the embedding back to ratios. They are trained jointly, ``(1 - trade_off) * reconstruction
+ trade_off * prediction``, so the embedding is both decodable and smooth in the predicted metric.
Moving an embedding a step against the predictor's gradient and decoding it proposes a candidate the
predictor expects to be better. MLPs, not an LSTM: a width vector has a fixed length and order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from netsculpt.predictors.models import deterministic


class NAOModel(nn.Module):
    def __init__(self, n_groups: int, embed: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_groups, hidden), nn.ReLU(), nn.Linear(hidden, embed))
        self.head = nn.Sequential(nn.Linear(embed, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.decoder = nn.Sequential(nn.Linear(embed, hidden), nn.ReLU(), nn.Linear(hidden, n_groups))
        self.mean, self.std = 0.0, 1.0

    def encode(self, u: Tensor) -> Tensor:
        return nn.functional.normalize(self.encoder(u), dim=-1)  # on the unit sphere, as in NAO

    def predict(self, z: Tensor) -> Tensor:
        return self.head(z).squeeze(-1)

    def decode(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z))

    def fit(self, u: Tensor, targets: np.ndarray, *, epochs: int, trade_off: float, seed: int) -> float:
        """Train from scratch on ``u`` (scaled ratios) and ``targets``; returns the final joint loss."""
        y = torch.tensor(np.asarray(targets, dtype=np.float64), dtype=torch.float32)
        self.mean = float(y.mean())
        self.std = float(y.std()) if len(y) > 1 and float(y.std()) > 1e-12 else 1.0
        y = (y - self.mean) / self.std
        with deterministic(seed):
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
            opt = torch.optim.Adam(self.parameters(), lr=3e-3, weight_decay=1e-4)
            self.train()
            loss = torch.zeros(())
            for _ in range(epochs):
                opt.zero_grad()
                z = self.encode(u)
                recon = nn.functional.mse_loss(self.decode(z), u)
                pred = nn.functional.mse_loss(self.predict(z), y)
                loss = (1 - trade_off) * recon + trade_off * pred
                loss.backward()
                opt.step()
            self.eval()
        return float(loss.detach())

    def predicted(self, u: Tensor) -> np.ndarray:
        """The metric the predictor head expects for scaled ratios ``u`` (unstandardised)."""
        with torch.no_grad():
            return self.predict(self.encode(u)).double().numpy() * self.std + self.mean

    def improve(self, u: Tensor, step: float) -> Tensor:
        """Decoded ratios after moving each embedding ``step`` against the predicted metric's gradient
        (the gradient normalised per row, so ``step`` is a distance on the embedding sphere)."""
        z = self.encode(u).detach().requires_grad_(True)
        self.predict(z).sum().backward()
        grad = z.grad
        assert grad is not None
        direction = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        with torch.no_grad():
            moved = nn.functional.normalize(z - step * direction, dim=-1)
            return self.decode(moved)
