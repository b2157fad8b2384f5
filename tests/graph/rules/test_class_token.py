"""A class token ``expand``ed over the batch and concatenated with the patch rows carries their channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.graph import trace
from tests.coverage._check import check_prunes_exactly


class ClassTokenNet(nn.Module):
    """ViT's embedding (torchvision, timm, HF ViT / DeiT / DINOv2) without the LayerNorm that would pin
    the width anyway: patches, ``cat((cls_token.expand(B, -1, -1), patches), 1)``, position embedding."""

    def __init__(self, c: int = 16, tokens: int = 16, pos: bool = True) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, c, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, c)) if pos else None
        self.fc1, self.fc2, self.head = nn.Linear(c, 2 * c), nn.Linear(2 * c, c), nn.Linear(c, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), t), dim=1)
        if self.pos is not None:
            t = t + self.pos
        t = t + self.fc2(torch.relu(self.fc1(t)))
        return self.head(t[:, 0])


@pytest.mark.parametrize("pos", [False, True])
def test_class_token_rows_prune_with_the_patch_channels(pos: bool) -> None:
    """Before 2026-12-07 the expanded token was no parameter to the cat rule ("concatenates a tensor
    without these channels"), and the token's own atoms made the rows' channels look spread over two
    dims: the residual width of every ViT stayed pinned, also with allow_inexact."""
    torch.manual_seed(0)
    model, x = ClassTokenNet(pos=pos).eval(), torch.randn(2, 3, 16, 16)
    group = next(g for g in trace(model, x).groups if g.id == "patch")
    assert group.prunable.all(), group.reasons
    names = {m.name for m in group.members}
    assert {"cls_token", "fc1.weight", "fc2.bias", "head.weight"} <= names
    assert ("pos" in names) == pos
    assert check_prunes_exactly(model, x)["macs_ratio"] < 0.5
