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


class _Blocks(nn.Module):
    """A stem and two residual blocks; depth pruning replaces a removed block by nn.Identity."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.act = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.blocks = nn.Sequential(
            *[nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()) for _ in range(2)]
        )
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        for block in self.blocks:
            x = x + block(x)
        return self.fc(x.mean((2, 3)))


def test_default_layers_are_ones_a_depth_pruned_model_still_has() -> None:
    """The maps of the baseline's last block were asked of a model that no longer had it: a recipe with
    prune_depth and outputs.explain failed after every stage had run."""
    from netsculpt.explain.chip_maps import Perturbation
    from netsculpt.explain.job import Settings, explain

    torch.manual_seed(0)
    base = _Blocks().eval()
    shallow = _Blocks().eval()
    shallow.blocks[1] = nn.Identity()
    assert default_layers(base, (1, 3, 8, 8)) == ["blocks.0.1", "blocks.1.1"]
    assert default_layers(base, (1, 3, 8, 8), [shallow]) == ["act", "blocks.0.1"]
    x, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    settings = Settings(perturbation=Perturbation(masks=4))
    result = explain({"baseline": base, "compressed": shallow}, x[:2], labels[:2], (x, labels), settings)
    assert result.layers == ["act", "blocks.0.1"]
