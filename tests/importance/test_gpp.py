"""The ``gpp`` criterion's ``grid`` option: LDA over where a channel fires, not only how much."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.gpp import PushLoss
from netsculpt.importance import get_criterion
from netsculpt.importance.gpp import lda_channel_scores, per_channel, pooled


def _located(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 4, 4) maps: channel 0 fires in the left half for class 0 and the right half for class 1
    (its mean over the map is the same for both classes); channels 1-2 are noise of the same scale."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.randn(n, 3, 4, 4, generator=g, dtype=torch.float64) * 0.3
    x[labels == 0, 0, :, :2] += 1.0
    x[labels == 1, 0, :, 2:] += 1.0
    return x, labels


def _scores(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    sums = torch.zeros(2, feats.shape[1], dtype=torch.float64).index_add_(0, labels, feats)
    return lda_channel_scores(sums, torch.bincount(labels), feats.T @ feats, shrink=1.0)


def test_pooled_grid_is_channel_major_cell_means() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4)
    cells = pooled(x, 2)
    assert cells.shape == (2, 12)
    assert torch.allclose(cells[:, :4].mean(1), pooled(x)[:, 0])  # a channel's cells average to its mean
    assert torch.equal(pooled(torch.ones(5, 7), 2), torch.ones(5, 7))  # flat features pool whole
    assert torch.equal(per_channel(torch.arange(12.0), 3), torch.tensor([6.0, 22.0, 38.0]))


def test_grid_sees_a_channel_that_separates_classes_by_location() -> None:
    """At grid 1 channel 0's mean carries no class information, so it ranks with the noise; at grid 2
    its left and right cells separate the classes and it ranks first by a wide margin."""
    x, labels = _located()
    flat = _scores(pooled(x), labels)
    grid = per_channel(_scores(pooled(x, 2), labels), 3)
    assert float(flat[0]) < 2 * float(flat[1:].max())
    assert int(grid.argmax()) == 0 and float(grid[0]) > 3 * float(grid[1:].max())


def test_criterion_and_push_use_the_grid() -> None:
    """The criterion scores per channel at any grid, and the push aims at what the same grid ranks first."""
    x, labels = _located()
    conv = torch.nn.Identity()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.feat = conv
            self.head = torch.nn.Linear(48, 2)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.head(self.feat(x[idx].float()).flatten(1))

    loss = PushLoss("feat", keep={"feat": 1}, rest_weight=1.0, push_every=1, shrink=1.0, grid=2)
    loss(Net(), torch.arange(256), labels[:256])
    assert loss.kept() == {"feat": [0]} and loss.recipe()["grid"] == 2
    with pytest.raises(ConfigError, match="grid"):
        get_criterion("gpp", grid=0)
    with pytest.raises(ConfigError, match="grid"):
        PushLoss("feat", grid=1.5)  # type: ignore[arg-type]
