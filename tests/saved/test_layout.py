"""A channels_last model reloads channels_last: it used to come back NCHW, and so ran at another speed."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.errors import CheckpointError


def _document(folder) -> dict:
    return json.loads((folder / "netsculpt.json").read_text())


def test_a_channels_last_model_reloads_channels_last_with_the_same_outputs(tmp_path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval().to(memory_format=torch.channels_last)
    ns.save(model, tmp_path)
    assert _document(tmp_path)["memory_format"] == "channels_last"
    loaded = ns.load(tmp_path)
    for name, weight in loaded.named_parameters():
        if weight.dim() == 4:
            assert weight.is_contiguous(memory_format=torch.channels_last), name
    assert not loaded.conv1.weight.is_contiguous()  # really NHWC, not merely a layout-free shape
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_a_pruned_channels_last_zoo_model_reloads_channels_last(tmp_path) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    small = ns.prune(ns.create_model("resnet20_cifar").eval(), x, ratio=0.5)
    small = small.to(memory_format=torch.channels_last)
    ns.save(small, tmp_path)
    loaded = ns.load(tmp_path)
    assert loaded.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(small(x), loaded(x))


def test_a_default_model_writes_no_memory_format(tmp_path) -> None:
    """Older netsculpt refuses a field it does not know: NCHW files must not carry one. ResNet-18's 1x1
    downsample convs are both NCHW- and channels_last-contiguous: they must not count as channels_last."""
    ns.save(torchvision.models.resnet18(num_classes=10), tmp_path)
    assert "memory_format" not in _document(tmp_path)
    assert ns.load(tmp_path).conv1.weight.is_contiguous()


def test_an_unknown_memory_format_is_refused_before_anything_is_built(tmp_path) -> None:
    ns.save(ns.create_model("lenet5", num_classes=10), tmp_path)
    data = _document(tmp_path)
    data["memory_format"] = "preserve_format"  # only channels_last is ever written
    (tmp_path / "netsculpt.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="memory_format"):
        ns.load(tmp_path)
