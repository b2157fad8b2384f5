"""Layer keys written as text that name a class of the model's own (``ignored: [Detect]``), not torch.nn's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import NetsculptWarning, PruningError
from netsculpt.pipeline.recipe_stages import layer_keys


class Block(nn.Module):
    """Stands for a library's block (ultralytics ``Bottleneck``): a class netsculpt never imports."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Conv2d(nn.Module):
    """The model's own ``Conv2d`` (as ultralytics has ``Conv``): a class sharing torch.nn's name."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def _net(*extra: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    body = [nn.Conv2d(3, 8, 3, padding=1), Block(8), Block(8), Conv2d(8, 8), *extra]
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def _outs(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


X = torch.randn(1, 3, 8, 8)


def test_a_recipe_names_the_models_own_block_class() -> None:
    model = _net()
    small = ns.prune(model, X, ratios=layer_keys({"Block": 0.5}), round_to=1)
    assert _outs(small) == {"0": 8, "1.conv": 4, "2.conv": 4, "3.conv": 8}  # only the blocks' own layers
    kept = ns.prune(model, X, ratio=0.5, ignored=layer_keys(["Block"]), round_to=1)
    assert _outs(kept) == {"0": 8, "1.conv": 8, "2.conv": 8, "3.conv": 4}  # "0" feeds Block 1: kept too
    full = f"{Block.__module__}.Block"  # the qualified form selects the same class
    assert _outs(ns.prune(model, X, ratios=layer_keys({full: 0.5}), round_to=1)) == _outs(small)


def test_two_classes_of_one_name_are_refused_with_both_qualified_names() -> None:
    other = type("Block", (Block,), {"__module__": "vendor.blocks"})  # another library's Block
    model = _net(other(8))
    with pytest.raises(
        PruningError, match=r"2 different classes called 'Block': .*\.Block, vendor\.blocks\.Block"
    ):
        ns.prune(model, X, ratios=layer_keys({"Block": 0.5}))
    small = ns.prune(model, X, ratios=layer_keys({"vendor.blocks.Block": 0.5}), round_to=1)
    assert _outs(small)["4.conv"] == 4 and _outs(small)["1.conv"] == 8


def test_a_misspelt_class_gets_suggestions_from_torch_nn_and_the_model() -> None:
    model = _net()
    with pytest.raises(PruningError, match=r"no module or layer class called 'Blok'; did you mean Block"):
        ns.prune(model, X, ignored=layer_keys(["Blok"]))
    with pytest.raises(PruningError, match=r"did you mean .*BatchNorm2d"):
        ns.prune(model, X, ratios=layer_keys({"BatchNorm2D": 0.5}))


def test_a_torch_nn_name_means_torch_nn_and_the_models_own_class_is_named() -> None:
    """Unqualified ``Conv2d`` keeps meaning torch.nn.Conv2d (a recipe must not change meaning with the
    model); the model's unrelated ``Conv2d`` is reached by its qualified name, and a warning says so."""
    model = _net()
    with pytest.warns(NetsculptWarning, match=r"the model's own .*\.Conv2d is another class"):
        small = ns.prune(model, X, ratios=layer_keys({"Conv2d": 0.5}), round_to=1)
    assert _outs(small) == {"0": 4, "1.conv": 4, "2.conv": 4, "3.conv": 4}  # every torch.nn.Conv2d
    own = f"{Conv2d.__module__}.Conv2d"
    small = ns.prune(model, X, ratios=layer_keys({own: 0.5}), round_to=1)
    assert _outs(small) == {"0": 8, "1.conv": 8, "2.conv": 8, "3.conv": 4}
