"""Depth units are found from the trace on the zoo, torchvision and timm residual nets."""

from __future__ import annotations

import pytest
import torch
import torchvision

import netsculpt as ns
from tests.depth.conftest import Mixed


def test_zoo_blocks_listed_with_projection_shortcuts() -> None:
    model = ns.create_model("resnet20_cifar", num_classes=10)
    graph = ns.trace(model, torch.randn(1, 3, 32, 32))
    blocks = {u.name: u for u in graph.blocks}
    assert len(blocks) == 9 and all(u.removable for u in blocks.values())
    assert blocks["layer2.0"].shortcut == "shortcut" and blocks["layer1.1"].shortcut is None
    assert blocks["layer1.1"].post == ["relu"] and blocks["layer1.1"].branch == "layer1.1.bn2"
    text = str(graph)
    assert "Depth units: 9 residual blocks, 9 removable" in text and "fold-bn conv1 -> bn1" in text


@pytest.mark.parametrize("builder", [torchvision.models.resnet18, torchvision.models.resnet50])
def test_torchvision_blocks(builder) -> None:
    graph = ns.trace(builder(), torch.randn(1, 3, 64, 64))
    n = {torchvision.models.resnet18: 8, torchvision.models.resnet50: 16}[builder]
    assert len(graph.blocks) == n and all(u.removable for u in graph.blocks)
    assert {u.shortcut for u in graph.blocks} == {None, "downsample"}


def test_timm_blocks() -> None:
    timm = pytest.importorskip("timm")
    graph = ns.trace(timm.create_model("resnet18"), torch.randn(1, 3, 64, 64))
    assert sum(u.removable for u in graph.blocks) == 8


def test_block_with_code_shortcut_says_why() -> None:
    graph = ns.trace(Mixed(), torch.randn(1, 3, 16, 16))
    (unit,) = graph.blocks
    assert not unit.removable and "shortcut is computed by code" in unit.reason
    assert "kept: its shortcut" in str(graph)
