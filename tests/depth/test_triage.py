"""Triage collapses units into one layer and writes a table and a plot."""

from __future__ import annotations

import json

import pytest
import torch

import netsculpt as ns
from netsculpt.depth.triage import TriageConfig, collapsed_layer, triage, units_of, write_triage
from netsculpt.errors import ConfigError


def _data(n: int = 3):
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(n)
    ]


def test_collapsed_layer_keeps_shapes_and_copies_first_conv() -> None:
    model = ns.create_model("resnet20_cifar", num_classes=10)
    block = model.layer2[0]
    x = torch.randn(2, 16, 32, 32)
    y = block.eval()(x)
    layer = collapsed_layer(block, x, y, "first", 3).eval()
    assert layer(x).shape == y.shape
    assert torch.equal(layer[0].weight, block.conv1.weight)


@pytest.mark.slow
def test_triage_rows_table_and_plot(tmp_path) -> None:
    model = ns.create_model("resnet20_cifar", num_classes=10)
    x = torch.randn(1, 3, 32, 32)
    assert units_of(model, x, "stage") == ["layer1", "layer2", "layer3"]
    config = TriageConfig(
        unit="stage", inits=("random", "distilled"), schemes=("layer", "network_kd"), steps=2
    )
    rows = triage(model, x, _data(), _data(2), config)
    assert len(rows) == 3 * 2 * 2
    assert all(0 <= r.accuracy <= 1 and r.params_removed > 0 for r in rows)
    paths = write_triage(rows, tmp_path)
    table = json.loads((tmp_path / "triage.json").read_text())
    assert len(table["rows"]) == 12 and (tmp_path / "triage.png").stat().st_size > 1000
    assert len(paths) == 3 and "Deep net triage" in (tmp_path / "triage.html").read_text()
    assert "data:image/png;base64," in (tmp_path / "triage.html").read_text()


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="choose from random, first, distilled"):
        TriageConfig(inits=("copy",))


class _Residual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x).relu()


def test_a_flat_trunk_with_stem_and_head_is_not_a_stage() -> None:
    """torchvision MobileNets keep their blocks in ``features`` beside the stem and the last conv:
    collapsing that "stage" replaced the whole trunk with one conv."""
    x = torch.randn(1, 3, 8, 8)
    trunk = [torch.nn.Conv2d(3, 4, 3, padding=1), _Residual(), _Residual(), torch.nn.Conv2d(4, 6, 1)]
    flat = torch.nn.Sequential(
        torch.nn.Sequential(*trunk), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 10)
    )
    assert units_of(flat, x, "block") == ["0.1", "0.2"]
    with pytest.raises(ConfigError, match="--unit block"):
        units_of(flat, x, "stage")
    model = ns.create_model("resnet20_cifar", num_classes=10, in_channels=3)
    assert units_of(model, torch.randn(1, 3, 32, 32), "stage") == ["layer1", "layer2", "layer3"]
