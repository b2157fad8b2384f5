"""Save / load without pickle, and ONNX export of pruned models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.measure import export_onnx, run_onnx


def test_save_load_pruned_zoo_model_identical(tmp_path) -> None:
    x = torch.randn(2, 3, 32, 32)
    model = ns.create_model("resnet20_cifar").eval()
    small = ns.prune(model, x, ratio=0.5)
    small = ns.prune(small, x, ratio=0.25)  # two plans, replayed in order
    ns.save(small, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "netsculpt.json").read_text())
    assert spec["spec"]["name"] == "resnet20_cifar" and len(spec["spec"]["plans"]) == 2
    loaded = ns.load(tmp_path / "m")
    assert torch.equal(loaded(x), small.eval()(x))
    assert not list(tmp_path.glob("**/*.pt")) and not list(tmp_path.glob("**/*.pkl"))


def test_save_torchvision_model(tmp_path) -> None:
    x = torch.randn(1, 3, 64, 64)
    model = ns.create_model("torchvision:mobilenet_v3_small", num_classes=10).eval()
    small = ns.prune(model, x, ratio=0.5)
    ns.save(small, tmp_path)
    assert torch.allclose(ns.load(tmp_path)(x), small.eval()(x))


def test_foreign_model_needs_builder(tmp_path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    with pytest.raises(CheckpointError, match="builder="):
        ns.save(model, tmp_path)
    ns.save(model, tmp_path, builder="tests.test_io:make_foreign")
    loaded = ns.load(tmp_path)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(loaded(x), model(x))


def make_foreign() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def test_missing_and_corrupt_saves_are_refused(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"netsculpt\.json is missing"):
        ns.load(tmp_path)
    model = ns.create_model("lenet5")
    ns.save(model, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        ns.load(tmp_path)


def test_pruned_model_exports_to_onnx_with_same_outputs(tmp_path) -> None:
    x = torch.randn(1, 3, 32, 32)
    small = ns.prune(ns.create_model("mobilenetv2_cifar").eval(), x, ratio=0.5).eval()
    path = export_onnx(small, x, tmp_path / "m.onnx")
    (onnx_out,) = run_onnx(path, x)
    with torch.no_grad():
        torch_out = small(x).numpy()
    assert np.abs(onnx_out - torch_out).max() / np.abs(torch_out).max() <= 1e-4
