"""Float dtypes survive ns.save / ns.load bit for bit: float64, float16 and bfloat16 models, plain and
packed, pruned before or after the cast, and user-built library models in half precision."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.weights import KMeansConfig, kmeans_palettize_

DTYPES = [torch.float64, torch.float16, torch.bfloat16]


def _identical(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def _document(folder) -> dict:
    return json.loads((folder / "netsculpt.json").read_text())


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_model_in_another_float_dtype_reloads_bit_for_bit(tmp_path, dtype: torch.dtype) -> None:
    """It used to reload as float32: float64 values rounded, float16 widened."""
    torch.manual_seed(0)
    model = ns.create_model("lenet5", num_classes=10).to(dtype)
    with torch.no_grad():
        model.fc1.weight.add_(1e-9)  # in float64: a value float32 cannot hold
    ns.save(model, tmp_path / "plain")
    _identical(model, ns.load(tmp_path / "plain"))
    assert set(_document(tmp_path / "plain")["dtypes"].values()) == {str(dtype).removeprefix("torch.")}


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_palettized_model_in_another_float_dtype_reloads(tmp_path, dtype: torch.dtype) -> None:
    """A packed float64 file used to be refused as "saved from a different architecture"."""
    torch.manual_seed(0)
    model = ns.create_model("lenet5", num_classes=10).to(dtype)
    kmeans_palettize_(model, KMeansConfig(bits=4, n_init=1, max_samples=20_000))
    ns.save(model, tmp_path)
    _identical(model, ns.load(tmp_path))


def test_pruned_in_float32_then_cast_to_float64_replays_and_reloads(tmp_path) -> None:
    model = ns.create_model("resnet20_cifar").eval()
    small = ns.prune(model, torch.randn(1, 3, 32, 32), ratio=0.5).double()  # edits recorded float32 inputs
    ns.save(small, tmp_path)
    loaded = ns.load(tmp_path)
    _identical(small, loaded)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(small(x), loaded(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_a_user_built_torchvision_model_in_half_or_double_is_found_as_its_builder(tmp_path, dtype) -> None:
    model = torchvision.models.resnet18(num_classes=10).to(dtype).eval()
    ns.save(model, tmp_path)
    assert _document(tmp_path)["base"]["name"] == "torchvision:resnet18"  # was kind "user": unloadable
    _identical(model, ns.load(tmp_path))


def test_float32_files_record_no_dtypes_and_a_bad_dtype_is_refused(tmp_path) -> None:
    ns.save(ns.create_model("lenet5", num_classes=10), tmp_path / "f32")
    assert "dtypes" not in _document(tmp_path / "f32")  # unchanged format: older netsculpt reads it
    ns.save(ns.create_model("lenet5", num_classes=10).double(), tmp_path / "f64")
    data = _document(tmp_path / "f64")
    data["dtypes"]["fc1.weight"] = "complex64"
    (tmp_path / "f64" / "netsculpt.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="dtypes"):
        ns.load(tmp_path / "f64")
