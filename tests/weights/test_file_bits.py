"""Per-tensor bytes of a weights file: they add up to the file's payload exactly, for every coding."""

from __future__ import annotations

import struct

import pytest
import torch

import netsculpt as ns
from netsculpt.sparsity import SparsityConfig, mask_layers_, remove_masks_
from netsculpt.weights import KMeansConfig, cluster_model
from netsculpt.weights.file_bits import tensor_bits


def payload_bytes(folder) -> int:
    """File size less the safetensors header (8-byte length + JSON)."""
    data = (folder / "model.safetensors").read_bytes()
    return len(data) - 8 - struct.unpack("<Q", data[:8])[0]


def sparse_lenet(palettes: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = ns.create_model("lenet5", num_classes=10, in_channels=1)
    config = SparsityConfig(0.9, scope="layer", filter_fn=lambda m, n: n != "conv1")
    remove_masks_(mask_layers_(model, config, 0.9) and model)
    if palettes:
        x = [(torch.randn(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))]
        model = cluster_model(model, KMeansConfig(bits=4), x, x)
    return model


@pytest.mark.parametrize("palettes", [False, True])
@pytest.mark.parametrize("coding", ["plain", "context"])
def test_tensor_bytes_add_up_to_the_file(tmp_path, palettes: bool, coding: str) -> None:
    model = sparse_lenet(palettes)
    ns.save(model, tmp_path, coding=coding)
    rows = tensor_bits(model, coding)
    assert [r.name for r in rows] == list(model.state_dict())
    assert sum(r.nbytes for r in rows) == payload_bytes(tmp_path)
    by_name = {r.name: r for r in rows}
    assert by_name["conv1.bias"].form == "dense float32" and by_name["conv1.bias"].bits == 32
    fc1 = by_name["fc1.weight"]
    assert abs(fc1.zeros - 0.9) < 0.01 and fc1.bits <= 4.2  # 1-bit mask + 10% float32, or 4-bit indices
    assert fc1.form.startswith("palette 4-bit" if palettes else "sparse")


def test_a_dense_model_is_32_bits_a_value(tmp_path) -> None:
    model = torch.nn.Linear(8, 4)
    rows = tensor_bits(model)
    assert [(r.name, r.bits, r.form) for r in rows] == [
        ("weight", 32.0, "dense float32"),
        ("bias", 32.0, "dense float32"),
    ]
