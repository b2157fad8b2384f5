"""A registered model built with lazy layers (its head sized by the first input) trains as a recipe's
baseline: the run gives the layers their shapes with one forward of its example input before training
(before: torch's raw "Attempted to use an uninitialized parameter" ValueError from the optimizer)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.models import MODELS, register_model
from netsculpt.pipeline import parse_recipe, run_recipe

RECIPE = """
name: lazy
model: {name: test_lazy_net}
data: {name: mnist5k, limit: 64}
baseline: {train: {preset: default, epochs: 1}}
stages:
  - finetune: {epochs: 1}
outputs: {latency_runs: 2, report: false}
"""


def lazy_net(num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(num_classes)
    )


@pytest.fixture(autouse=True)
def _lazy_net_registered(monkeypatch) -> None:
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))  # restored after the test
    register_model("test_lazy_net", input_shape=(1, 28, 28), num_classes=10, in_channels=1)(lazy_net)


def test_a_lazy_registered_model_trains_as_the_baseline(tmp_path) -> None:
    results = run_recipe(parse_recipe(RECIPE), RECIPE, tmp_path)
    model = ns.load(tmp_path / "00_baseline" / "model")
    assert model[3].weight.shape == (10, 4 * 6 * 6)  # sized by the run's 28x28 input: (28 - 5) // 4 + 1 = 6
    assert results["before"]["params"] == 4 * 25 + 4 + 10 * 144 + 10
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
