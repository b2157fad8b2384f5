"""Context coding of sparse palettes in the masked form through ``ns.save`` / ``ns.load``: chosen only where
smaller, bit-for-bit reloads, the older context file still loads (and is written again unchanged), lying
headers refused."""

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
from netsculpt.weights.storage import packed_size_bytes
from tests.weights._models import TinyNet, sparse_palette_net
from tests.weights._packed_files import assert_same_weights, read_packed

BUILDER = "tests.weights._models:tiny_net"
DATA = Path(__file__).parent / "data"
OLD_CONTEXT = DATA / "sparse_palette_context_v2"  # coding="context", written by netsculpt on 2026-12-07


def _unmasked(monkeypatch) -> None:
    """Context coding as netsculpt wrote it before the masked form."""
    monkeypatch.setattr("netsculpt.weights.storage.encode_masked_coded", lambda palette: None, raising=False)


def _sparse_kmeans_lenet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = ns.create_model("lenet5", num_classes=10, in_channels=1)
    remove_masks_(mask_layers_(model, SparsityConfig(sparsity=0.9), 0.9) and model)
    kmeans_palettize_(model, KMeansConfig(bits=4, n_init=1))  # keeps an exact-zero centroid
    return model


@pytest.fixture(scope="module")
def lenet() -> torch.nn.Module:
    return _sparse_kmeans_lenet()


def test_lenet_sparse_palettes_are_coded_masked_and_reload_bit_for_bit(lenet, tmp_path, monkeypatch) -> None:
    ns.save(lenet, tmp_path / "m", coding="context")
    info, _ = read_packed(tmp_path / "m")
    forms = {entry[0]: coded[0] for entry, coded in zip(info["palettes"], info["coded"])}
    # 90 % zeros: fc1's zero entry holds most points; a coded mask plus 15 symbols at the kept points
    # beats 16 symbols at every point
    assert info["version"] == 4 and forms["fc1.weight"] == "masked"
    loaded = ns.load(tmp_path / "m")
    assert_same_weights(lenet, loaded)
    ns.save(loaded, tmp_path / "again", coding="context")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (
        tmp_path / "again" / "model.safetensors"
    ).read_bytes()
    new = (tmp_path / "m" / "model.safetensors").stat().st_size
    _unmasked(monkeypatch)
    assert new < packed_size_bytes(lenet, "context") < packed_size_bytes(lenet, "plain")
    rows = {row.name: row for row in tensor_bits(lenet, "context")}
    assert "masked" not in rows["fc1.weight"].form  # the old form, patched in


def test_tensor_bits_name_the_masked_form_and_add_up(lenet, tmp_path) -> None:
    rows = {row.name: row for row in tensor_bits(lenet, "context")}
    assert rows["fc1.weight"].form.startswith("palette 4-bit, masked, ")
    ns.save(lenet, tmp_path / "m", coding="context")
    size = (tmp_path / "m" / "model.safetensors").stat().st_size
    assert 0 < size - sum(row.nbytes for row in rows.values()) < 2048  # header and metadata only


def test_the_older_context_file_still_loads_and_is_written_again_unchanged(tmp_path) -> None:
    info, _ = read_packed(OLD_CONTEXT)
    assert info["version"] == 2 and "coded" in info  # palettes plain / order0-coded, a sparse float tensor
    model = sparse_palette_net()
    assert_same_weights(model, ns.load(OLD_CONTEXT, trust_builder=BUILDER))
    # its sparse palette would save 30 bytes of data masked but cost more in the header: the chooser
    # keeps the old form, and the file is byte for byte the one netsculpt wrote before
    ns.save(model, tmp_path / "m", builder=BUILDER, coding="context")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (
        OLD_CONTEXT / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize("zero_share", [0.0, 0.3, 0.6, 0.9, 0.99])
def test_the_chooser_never_writes_a_bigger_file(tmp_path, monkeypatch, zero_share: float) -> None:
    rng = np.random.default_rng(7)
    model = TinyNet()
    count = model.conv2.weight.numel()
    codes = np.where(rng.random(count) < zero_share, 0, rng.integers(1, 16, count)).astype(np.uint8)
    lut = torch.tensor(np.r_[0.0, rng.uniform(0.5, 1, 15)], dtype=torch.float16).reshape(1, 16, 1)
    set_palette_(model.conv2, "weight", Palette(lut, torch.from_numpy(codes)[None], 4, (16, 8, 3, 3)))
    new, plain = packed_size_bytes(model, "context"), packed_size_bytes(model, "plain")
    _unmasked(monkeypatch)
    assert new <= packed_size_bytes(model, "context") and new <= plain


def _lie(info: dict, blobs: dict[str, torch.Tensor], path: Path, change) -> None:
    lying = json.loads(json.dumps(info))
    change(lying)
    lying["digest"] = file_digest(blobs, lying)  # a matching digest, written on purpose
    save_file(blobs, str(path), metadata={"netsculpt.packed": json.dumps(lying)})


def test_corrupt_or_lying_masked_entries_are_refused(lenet, tmp_path) -> None:
    ns.save(lenet, tmp_path / "m", coding="context")
    weights = tmp_path / "m" / "model.safetensors"
    good = weights.read_bytes()
    info, blobs = read_packed(tmp_path / "m")
    start = len(good) - sum(t.numel() * t.element_size() for t in blobs.values())
    for offset in range(start, len(good), 4999):  # flipped bits anywhere in the blobs
        data = bytearray(good)
        data[offset] ^= 0x10
        weights.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="corrupt"):
            ns.load(tmp_path / "m")
    row = next(i for i, entry in enumerate(info["coded"]) if entry[0] == "masked")

    def set_field(column: int, value: object):
        return lambda lying: lying["coded"][row].__setitem__(column, value)

    entry = info["coded"][row]
    lies = [
        set_field(4, entry[4] + 1),  # kept points
        set_field(4, entry[4] - 1),
        set_field(3, entry[3] - 4),  # mask bytes (a word less)
        set_field(3, entry[3] + 1),
        set_field(2, "bitmap" if entry[2] != "bitmap" else "runs"),  # mask layout
        set_field(2, "order0" if entry[2] != "order0" else "context"),
        set_field(5, "plain"),  # kept indices' model
        set_field(5, "context" if entry[5] != "context" else "order0"),
        set_field(1, entry[1] + 4),  # total bytes
        set_field(0, "order0"),  # the tag, with six fields
        lambda lying: lying["coded"].__setitem__(row, ["masked", entry[1]]),
        lambda lying: lying.__setitem__("version", 2),  # a masked entry in a file of an older version
        lambda lying: lying.__setitem__("version", 5),  # from a newer netsculpt: "upgrade"
    ]
    for change in lies:
        _lie(info, blobs, weights, change)
        with pytest.raises(CheckpointError):
            ns.load(tmp_path / "m")
    weights.write_bytes(good)
    assert_same_weights(lenet, ns.load(tmp_path / "m"))


def test_whole_numbers_written_as_floats_are_refused(lenet, tmp_path) -> None:
    """JSON Schema counts 2132.0 as an integer: a header with a byte count, bit width or group count
    written as a float passed the check and then failed slicing with a raw TypeError (found by the
    ``packed masked context`` fuzz reader, tests/_fuzz_masked.py)."""
    ns.save(lenet, tmp_path / "m", coding="context")
    weights = tmp_path / "m" / "model.safetensors"
    info, blobs = read_packed(tmp_path / "m")
    row = next(i for i, entry in enumerate(info["coded"]) if entry[0] == "masked")

    def as_float(*path: object):
        def change(lying: dict) -> None:
            *parents, last = path
            target = lying
            for part in parents:
                target = target[part]
            target[last] = float(target[last])

        return change

    for path in [("coded", row, 1), ("coded", row, 3), ("coded", row, 4), ("palettes", row, 1),
                 ("palettes", row, 3), ("version",)]:  # fmt: skip
        _lie(info, blobs, weights, as_float(*path))
        with pytest.raises(CheckpointError, match=r"\.0 is not of type 'integer'"):
            ns.load(tmp_path / "m")
