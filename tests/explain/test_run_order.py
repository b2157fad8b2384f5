"""Default explain layers come from the order layers run in, not the order they are defined in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.explain import default_layer
from netsculpt.explain.job import default_layers


class _WithAuxHead(nn.Module):
    """An auxiliary head defined after the trunk that runs only in training (torchvision GoogLeNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(3, 4, 3), nn.ReLU()
        self.conv2, self.act2 = nn.Conv2d(4, 4, 3), nn.ReLU()
        self.aux = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1(x))
        if self.training:
            self.aux(x)
        return self.act2(self.conv2(x)).mean((2, 3))


class _SharedActivation(nn.Module):
    """One relu module for three places, as a torchvision Bottleneck: its first call follows norm1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
        self.conv2, self.norm2 = nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.norm1(self.conv1(x)))
        return self.relu(self.norm2(self.conv2(x)) + 1).mean((2, 3))


def test_training_only_layers_are_not_chosen() -> None:
    model = _WithAuxHead().train()
    assert default_layers(model, (1, 3, 9, 9)) == ["act1", "act2"]
    assert default_layer(model, (1, 3, 9, 9)) == "conv2"
    assert model.training  # the mode the caller had is put back
    assert default_layers(model) == ["conv2", "aux"]  # without a shape: the module tree only


def test_a_shared_activation_counts_only_where_its_first_call_follows() -> None:
    model = _SharedActivation()
    assert default_layers(model, (1, 3, 5, 5)) == ["relu", "conv2"]
    assert not model._forward_hooks and not any(m._forward_hooks for m in model.modules())


def test_a_model_that_cannot_run_the_shape_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="--layers"):
        default_layers(_WithAuxHead(), (1, 1, 9, 9))  # three input channels expected
