"""Sparse palettes in plain packing: mask + kept indices where smaller, bit for bit, old files still read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.sparsity import SparsityConfig, mask_layers_, remove_masks_
from netsculpt.weights import KMeansConfig, kmeans_palettize_
from netsculpt.weights.file_bits import tensor_bits
from netsculpt.weights.palette import Palette, set_palette_
from netsculpt.weights.sparse_store import file_digest
from tests.weights._models import TinyNet, sparse_palette_net
from tests.weights._packed_files import assert_same_weights, read_packed

BUILDER = "tests.weights._models:tiny_net"
OLD_FILE = Path(__file__).parent / "data" / "sparse_palette_v2"  # written by netsculpt on 2026-12-07


def _unmasked(monkeypatch) -> None:
    """Pack every palette densely, as netsculpt did before masks (what the old file was written by)."""
    monkeypatch.setattr("netsculpt.weights.storage.encode_masked", lambda palette, overhead: None)


def test_a_sparse_palette_is_stored_as_a_mask_plus_the_kept_indices(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5", num_classes=10, in_channels=1)
    remove_masks_(mask_layers_(model, SparsityConfig(sparsity=0.9), 0.9) and model)
    kmeans_palettize_(model, KMeansConfig(bits=4, n_init=1))  # keeps an exact-zero centroid
    ns.save(model, tmp_path / "m")
    loaded = ns.load(tmp_path / "m")
    assert_same_weights(model, loaded)
    ns.save(loaded, tmp_path / "again")  # re-saving the loaded model writes the identical file
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (
        tmp_path / "again" / "model.safetensors"
    ).read_bytes()
    info, _ = read_packed(tmp_path / "m")
    assert info["version"] == 3 and {entry[0] for entry in info["masked"]} >= {2}  # fc1: 3rd palette
    rows = {row.name: row for row in tensor_bits(model)}
    fc1 = rows["fc1.weight"]
    # 91 % zeros: a 1-bit bitmap + 4 bits for the 9 % kept = 1.36 bits (+ the table), not 4
    assert fc1.form == "palette 4-bit, packed, bitmap mask" and fc1.bits < 1.5
    with monkeypatch.context() as patch:
        _unmasked(patch)
        ns.save(model, tmp_path / "dense")
    sizes = [(tmp_path / d / "model.safetensors").stat().st_size for d in ("m", "dense")]
    assert sizes[0] < 0.5 * sizes[1]  # ~90 % of the file was indices at 4 bits a weight


def _tiny(lut_values: list[float], zero_share: float, bits: int, seed: int = 0) -> torch.nn.Module:
    """TinyNet whose conv2 is a palette over ``lut_values``; ``zero_share`` of its points on entry 0."""
    rng = np.random.default_rng(seed)
    model = TinyNet()
    count, k = model.conv2.weight.numel(), 2**bits
    codes = np.where(rng.random(count) < zero_share, 0, rng.integers(1, k, count)).astype(np.uint8)
    lut = torch.tensor(lut_values, dtype=torch.float16).reshape(1, k, 1)
    set_palette_(model.conv2, "weight", Palette(lut, torch.from_numpy(codes)[None], bits, (16, 8, 3, 3)))
    return model


@pytest.mark.parametrize(
    "case, lut, zero_share, bits",
    [
        ("zero is not a palette entry", [0.5, -0.25, 0.75, 1.0], 0.9, 2),
        ("dense is smaller: 1 bit a weight", [0.0, 0.5], 0.9, 1),
        ("dense is smaller: few zeros", [0.0, -0.25, 0.75, 1.0], 0.3, 2),
    ],
)
def test_a_palette_stays_dense_where_a_mask_would_not_pay(tmp_path, case, lut, zero_share, bits) -> None:
    model = _tiny(lut, zero_share, bits)
    ns.save(model, tmp_path / "m")
    info, _ = read_packed(tmp_path / "m")
    assert "masked" not in info and info["version"] == 1  # the file an older netsculpt writes and reads
    assert_same_weights(model, ns.load(tmp_path / "m", trust_builder=BUILDER))


def test_groups_with_and_without_a_zero_entry_and_vectors(tmp_path) -> None:
    rng = np.random.default_rng(1)
    model = TinyNet()
    lut = torch.tensor(rng.uniform(-1, 1, (4, 16, 2)), dtype=torch.float16)  # 4 groups, 2-vectors
    lut[0, 3], lut[2, 0], lut[2, 7] = 0.0, 0.0, 0.0  # groups 1 and 3 have no zero entry; 2 has two
    codes = rng.integers(0, 16, (4, 144)).astype(np.uint8)
    codes[0, rng.random(144) < 0.95] = 3
    codes[2, rng.random(144) < 0.95] = 7  # the second zero entry: kept as ordinary indices
    codes[2, rng.random(144) < 0.5] = 0
    set_palette_(model.conv2, "weight", Palette(lut, torch.from_numpy(codes), 4, (16, 8, 3, 3)))
    ns.save(model, tmp_path / "m")
    info, _ = read_packed(tmp_path / "m")
    assert [entry[0] for entry in info["masked"]] == [0]
    assert_same_weights(model, ns.load(tmp_path / "m", trust_builder=BUILDER))


def test_the_file_written_before_masks_still_loads(tmp_path, monkeypatch) -> None:
    info, blobs = read_packed(OLD_FILE)
    assert info["version"] == 2 and "masked" not in info  # palettes and a sparse float tensor
    model = sparse_palette_net()
    assert_same_weights(model, ns.load(OLD_FILE, trust_builder=BUILDER))
    _unmasked(monkeypatch)  # and the unmasked path still writes exactly that format
    ns.save(model, tmp_path / "m", builder=BUILDER)
    again_info, again = read_packed(tmp_path / "m")
    assert again_info == info and again.keys() == blobs.keys()
    assert all(torch.equal(again[k], blobs[k]) for k in blobs)


def test_the_same_model_now_saves_its_sparse_palette_masked(tmp_path) -> None:
    model = sparse_palette_net()
    ns.save(model, tmp_path / "m", builder=BUILDER)
    info, _ = read_packed(tmp_path / "m")
    assert info["version"] == 3 and [entry[:2] for entry in info["masked"]] == [[1, "bitmap"]]
    assert_same_weights(model, ns.load(tmp_path / "m", trust_builder=BUILDER))
    old = (OLD_FILE / "model.safetensors").stat().st_size
    assert (tmp_path / "m" / "model.safetensors").stat().st_size < old


def test_a_corrupt_masked_palette_is_refused(tmp_path) -> None:
    ns.save(sparse_palette_net(), tmp_path / "m", builder=BUILDER)
    weights = tmp_path / "m" / "model.safetensors"
    good = weights.read_bytes()
    info, blobs = read_packed(tmp_path / "m")
    start = len(good) - sum(t.numel() * t.element_size() for t in blobs.values())
    for offset in range(start, len(good), 97):  # flipped bits anywhere in the blobs
        data = bytearray(good)
        data[offset] ^= 0x08
        weights.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="corrupt"):
            ns.load(tmp_path / "m", trust_builder=BUILDER)
    # a header that lies with a matching digest (written on purpose) is refused by the checks, not a crash
    kept, mask_bytes = info["masked"][0][2:]
    lies = [("masked", 0, 2, kept + 1), ("masked", 0, 3, mask_bytes - 1), ("masked", 0, 0, 7)]
    lies += [("masked", 0, 1, "runs"), ("masked", 0, 0, 0), ("version", None, None, 2)]
    for field, row, column, value in lies:  # kept count, mask size, palette, layout, index, version
        lying = json.loads(json.dumps(info))
        if row is None:
            lying[field] = value
        else:
            lying[field][row][column] = value
        lying["digest"] = file_digest(blobs, lying)
        save_file(blobs, str(weights), metadata={"netsculpt.packed": json.dumps(lying)})
        with pytest.raises(CheckpointError):
            ns.load(tmp_path / "m", trust_builder=BUILDER)
    weights.write_bytes(good)
    ns.load(tmp_path / "m", trust_builder=BUILDER)
