"""A user's model with lazy layers that have seen no input, and the check every entry point makes on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from netsculpt.errors import NetsculptError

X = torch.randn(4, 3, 8, 8)
Y = torch.tensor([0, 1, 2, 3])


class LazyNet(nn.Module):
    """Shapes come from the first input (conv1 and fc are lazy), as Torch-Pruning users write models."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn = nn.LazyConv2d(8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.fc = nn.Conv2d(8, 16, 3, padding=1), nn.LazyLinear(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def materialised_lazy_net() -> LazyNet:
    """A ``LazyNet`` run once on ``X``: its lazy layers have shapes, as a user's model after one call."""
    model = LazyNet()
    model(X)
    return model


def lazy_names(model: nn.Module) -> list[str]:
    return [n for n, t in (*model.named_parameters(), *model.named_buffers()) if is_lazy(t)]


def assert_refused(call: Callable[[nn.Module], object], words: str, error: type = NetsculptError) -> None:
    """``call(LazyNet())`` raises ``error`` naming the layers and the fix, drawing no weight: the model
    stays lazy and the global generator unmoved (a materialisation would have drawn its weights)."""
    model, rng = LazyNet(), torch.get_rng_state()
    with pytest.raises(error, match=rf"cannot {words} LazyNet: its lazy layers have no shapes yet \(conv1"):
        call(model)
    with pytest.raises(error, match=r"run it once on an input \(model\(example\)\) to materialise them"):
        call(model)
    assert lazy_names(model) == ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
    assert torch.equal(torch.get_rng_state(), rng)
