"""Sparse tensors and range-coded palettes: bit-for-bit round trips, smaller files, corrupt files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.models import create_model
from netsculpt.sparsity import SparsityConfig, mask_layers_, remove_masks_
from netsculpt.weights import KMeansConfig, kmeans_palettize_
from netsculpt.weights.coding import MODELS, decode_grid, encode_grid, huffman_bits
from netsculpt.weights.sparse_store import decode_mask, encode_mask
from netsculpt.weights.storage import packed_size_bytes


def _sparse_lenet(sparsity: float = 0.9) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=1)
    mask_layers_(model, SparsityConfig(sparsity=sparsity), sparsity)
    return remove_masks_(model)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("model", MODELS)
def test_grid_coder_is_exact(model: str) -> None:
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 16, (12, 40)).astype(np.uint8)
    grid[:, ::3] = 0
    words = encode_grid(grid, 16, model)
    assert np.array_equal(decode_grid(words, 12, 40, 16, model), grid)


def test_junk_in_place_of_coded_data_is_a_checkpoint_error() -> None:
    """constriction refuses words no model could have written with an AssertionError, which escaped."""
    junk = np.random.default_rng(0).integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    with pytest.raises(CheckpointError, match="corrupt"):
        decode_grid(junk, 50, 500, 2, "context")


def test_huffman_bits_of_a_known_distribution() -> None:
    # frequencies 4, 2, 1, 1 -> code lengths 1, 2, 3, 3 -> 4 + 4 + 3 + 3 = 14 bits
    assert huffman_bits(np.array([0, 0, 0, 0, 1, 1, 2, 3]), 4) == 14


@pytest.mark.parametrize("density", [0.5, 0.1, 0.01])
@pytest.mark.parametrize("coding", ["plain", "context"])
def test_masks_round_trip_in_every_layout(density: float, coding: str) -> None:
    mask = np.random.default_rng(1).random((16, 72)) < density
    layout, data = encode_mask(mask, (16, 72), coding)
    assert np.array_equal(decode_mask(layout, data, (16, 72), "t"), mask.reshape(-1))
    if coding == "plain" and density == 0.01:
        assert layout == "runs"  # 1% density: run lengths beat one bit a weight


@pytest.mark.parametrize("coding", ["plain", "context"])
def test_sparse_model_saves_smaller_and_reloads_bit_for_bit(tmp_path, coding: str) -> None:
    model = _sparse_lenet()
    ns.save(model, tmp_path / "m", coding=coding)
    _same(model, ns.load(tmp_path / "m"))
    dense = packed_size_bytes(create_model("lenet5", num_classes=10, in_channels=1))
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < 0.35 * dense  # 90% zeros, fp32 values


def test_context_coding_of_sparse_palettes_beats_plain_packing(tmp_path) -> None:
    model = _sparse_lenet()
    kmeans_palettize_(model, KMeansConfig(bits=4))
    ns.save(model, tmp_path / "plain")
    ns.save(model, tmp_path / "ctx", coding="context")
    plain = (tmp_path / "plain" / "model.safetensors").stat().st_size
    ctx = (tmp_path / "ctx" / "model.safetensors").stat().st_size
    assert ctx < 0.9 * plain  # the bar: >= 10% fewer bits; 90% of indices share the zero cluster
    _same(model, ns.load(tmp_path / "ctx"))


def test_corrupt_coded_file_fails_on_load(tmp_path) -> None:
    model = _sparse_lenet()
    kmeans_palettize_(model, KMeansConfig(bits=4))
    ns.save(model, tmp_path / "m", coding="context")
    path = tmp_path / "m" / "model.safetensors"
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: u64 header length
    data = bytearray(path.read_bytes())
    data[header + 5] ^= 0x10  # one bit inside the first blob
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        ns.load(tmp_path / "m")


def test_unknown_coding_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="coding"):
        ns.save(_sparse_lenet(), tmp_path / "m", coding="zip")
