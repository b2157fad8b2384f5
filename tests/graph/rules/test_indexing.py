"""Tensor indexing: gathering rows keeps the channels of the dimensions left whole."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.graph import trace
from netsculpt.surgery.verify import pruning_error, random_plan


class TopKQueries(nn.Module):
    """RT-DETR's query selection: score every token, gather the top k by ``feats[batch_ind, topk_ind]``
    (two tensor indices side by side), then project the gathered tokens' channels."""

    def __init__(self, layout: str, c: int = 16, k: int = 5) -> None:
        super().__init__()
        self.proj, self.score, self.out = nn.Linear(4, c), nn.Linear(c, 1), nn.Linear(c, 3)
        self.k, self.layout = k, layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.relu(self.proj(x))  # (B, N, C)
        top = self.score(feats).squeeze(-1).topk(self.k, dim=1).indices.reshape(-1)
        batch = torch.arange(x.shape[0]).unsqueeze(-1).repeat(1, self.k).reshape(-1)
        if self.layout == "after a slice":  # (C, B, N)[:, batch, top] -> (C, B * k)
            return self.out(feats.permute(2, 0, 1)[:, batch, top].transpose(0, 1))
        if self.layout == "apart":  # (N, C, B)[top, :, batch]: the gathered dim moves to the front
            return self.out(feats.permute(1, 2, 0)[top, :, batch])
        return self.out(feats[batch, top].reshape(x.shape[0], self.k, -1))


def _proj_group(layout: str) -> tuple[nn.Module, object, torch.Tensor, object]:
    model, x = TopKQueries(layout).eval(), torch.randn(2, 9, 4)
    graph = trace(model, x)
    group = next(g for g in graph.groups if any(m.name == "proj.weight" and m.dim == 0 for m in g.members))
    return model, graph, x, group


@pytest.mark.parametrize("layout", ["leading", "after a slice"])
def test_side_by_side_tensor_indices_keep_the_channels_of_the_dims_left_whole(layout: str) -> None:
    model, graph, x, group = _proj_group(layout)
    assert group.n_prunable == 16
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) <= 1e-5


def test_tensor_indices_apart_still_pin_the_channels() -> None:
    assert _proj_group("apart")[3].n_prunable == 0  # not followed: pinned, with the reason
