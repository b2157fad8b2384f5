from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models.adapt import replace_input_conv


class HeadFirst(nn.Module):
    """Registers a 3-channel conv before the stem, so registration order would pick the wrong conv."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1)
        self.stem = nn.Conv2d(3, 3, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.mix(torch.relu(self.stem(x))).mean((2, 3)))


def test_replaces_the_conv_that_runs_first() -> None:
    model = HeadFirst()
    old_stem, old_mix = model.stem, model.mix
    replace_input_conv(model, 1, (3, 16, 16), "HeadFirst")
    assert model.mix is old_mix
    assert model.stem.in_channels == 1
    assert (model.stem.stride, model.stem.padding, model.stem.bias) == (
        old_stem.stride,
        old_stem.padding,
        None,
    )
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 5)


def test_new_weights_cycle_the_old_filters_with_variance_kept() -> None:
    model = HeadFirst()
    old = model.stem.weight.detach().clone()
    replace_input_conv(model, 4, (3, 16, 16), "HeadFirst")
    # channel k reuses RGB filter k mod 3, scaled by sqrt(3/4) so the summed output keeps its variance
    assert torch.allclose(model.stem.weight, old[:, [0, 1, 2, 0]] * math.sqrt(3 / 4))


def test_train_mode_is_restored() -> None:
    model = HeadFirst().train()
    replace_input_conv(model, 1, (3, 16, 16), "HeadFirst")
    assert model.training


def test_model_without_input_conv_is_refused() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    with pytest.raises(ConfigError, match="no Conv2d reads its input"):
        replace_input_conv(model, 1, (3, 4, 4), "mlp")


def test_grouped_first_conv_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 6, 3, groups=3))
    with pytest.raises(ConfigError, match="3 groups"):
        replace_input_conv(model, 1, (3, 8, 8), "depthwise-stem")
