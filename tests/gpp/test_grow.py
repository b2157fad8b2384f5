"""Grow: more channels, the same function, and the growth survives save / load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.gpp import grow


def _outputs_match(a: nn.Module, b: nn.Module, x: torch.Tensor, tol: float = 1e-6) -> float:
    with torch.no_grad():
        diff = float((a(x) - b(x)).abs().max())
    assert diff <= tol, diff
    return diff


def test_grown_lenet_computes_what_the_original_computed() -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(8, 1, 28, 28)
    big = grow(model, x[:1], {"conv1": 4, "conv2": 14}).eval()
    assert (big.conv1.out_channels, big.conv2.in_channels, big.conv2.out_channels) == (24, 24, 64)
    assert big.fc1.in_features == 64 * 16 and model.conv1.out_channels == 20  # the original is untouched
    _outputs_match(model, big, x)
    assert float(big.conv1.weight[20:].detach().abs().sum()) > 0  # new filters are alive ...
    assert float(big.conv2.weight[:50, 20:].detach().abs().sum()) == 0  # ... and reach no old channel yet
    assert float(big.fc1.weight[:, 800:].detach().abs().sum()) == 0


def test_grown_resnet_stage_keeps_batchnorm_and_residuals_exact() -> None:
    torch.manual_seed(0)
    model = ns.create_model("resnet20_cifar")
    model.train()
    x = torch.randn(4, 3, 32, 32)
    model(x)  # move BN running statistics off their defaults
    model.eval()
    big = grow(model, x[:1], {"layer1.0.conv1": 5, "conv1": 3}).eval()
    assert big.layer1[0].conv1.out_channels == 21 and big.layer1[0].bn1.num_features == 21
    assert big.conv1.out_channels == 19 and big.layer1[2].conv2.out_channels == 19  # the whole residual stage
    _outputs_match(model, big, x)
    big.train()
    loss = nn.functional.cross_entropy(big(x), torch.arange(4))
    loss.backward()  # the zero consumer weights get gradients: training can bring the new channels in
    assert float(big.layer1[0].conv2.weight.grad[:, 16:].abs().sum()) > 0


def test_grown_model_saves_loads_and_prunes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(2, 1, 28, 28)
    big = grow(model, x[:1], {"conv2": 6})
    with torch.no_grad():
        big.conv2.weight[:, :3] += 0.5  # weights after some training: loading must not re-draw them
    ns.save(big, tmp_path / "m")
    back = ns.load(tmp_path / "m").eval()
    assert back.conv2.out_channels == 56
    _outputs_match(big.eval(), back, x, 0.0)
    small = ns.prune(back, x[:1], widths={"conv2": 10}, criterion="l1")
    assert small.conv2.out_channels == 10


def test_grow_refuses_what_it_cannot_do() -> None:
    model = ns.create_model("lenet5")
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ConfigError, match="growable layers: conv1, conv2, fc1"):
        grow(model, x, {"relu1": 2})
    with pytest.raises(ConfigError, match="1\\.\\.65536"):
        grow(model, x, {"conv1": 0})

    class Mixing(nn.Module):  # a LayerNorm over the channels: new channels would change every output
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.norm, self.head = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.norm(self.fc(x)))

    with pytest.raises(ConfigError, match="changed the model's output"):
        grow(Mixing(), torch.randn(3, 4), {"fc": 2})


def test_a_malformed_grow_edit_is_refused_before_anything_is_built() -> None:
    from netsculpt.edits import validate_edits

    good = {"kind": "grow", "layers": {"conv1": 2}, "seed": 0, "input_shapes": [[1, 1, 28, 28]]}
    validate_edits([good], "spec")
    for bad in ({**good, "layers": {"conv1": 0}}, {**good, "layers": {}}, {**good, "extra": 1},
                {**good, "input_shapes": [[1 << 13, 1 << 13, 1]]}):  # fmt: skip
        with pytest.raises(CheckpointError):
            validate_edits([bad], "spec")


class _Branches(nn.Module):
    """Two branches concatenated: a grown branch's channels belong at its offset, not at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1, self.b3 = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Conv2d(10, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x).relu()
        return self.head(torch.cat([self.b1(h), self.b3(h)], 1).relu()).mean((2, 3))


@pytest.mark.parametrize(
    "layers", [{"b1": 2}, {"b3": 3}, {"b1": 2, "b3": 3}], ids=["first", "second", "both"]
)
def test_concatenated_branches_grow_at_their_offset(tmp_path: Path, layers: dict) -> None:
    torch.manual_seed(0)
    model = _Branches().eval()
    x = torch.randn(2, 3, 9, 9)
    grown = grow(model, x, layers)
    assert grown.head.in_channels == 10 + sum(layers.values())
    with torch.no_grad():
        assert torch.allclose(grown(x), model(x), atol=1e-6)
    ns.save(grown, tmp_path / "g")
    again = ns.load(tmp_path / "g", model=_Branches())
    with torch.no_grad():
        assert torch.equal(again(x), grown(x))
