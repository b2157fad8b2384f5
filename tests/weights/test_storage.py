"""Packed storage through ns.save / ns.load: bit-for-bit palettes, real sizes, and refusals."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.weights import (
    DKMConfig,
    KMeansConfig,
    iter_palettes,
    kmeans_palettize_,
    packed_size_bytes,
    prepare_dkm_,
    snap_dkm_,
)
from netsculpt.weights.palette import module_palettes
from tests.weights._models import TinyNet

BUILDER = "tests.weights._models:tiny_net"


def _all_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def test_lenet_palettes_reload_bit_for_bit(tmp_path) -> None:
    model = ns.create_model("lenet5")
    kmeans_palettize_(
        model, KMeansConfig(bits=3, n_init=1, max_samples=20_000, layer_bits={"conv1": 8, "fc2": 1})
    )
    ns.save(model, tmp_path / "m")
    loaded = ns.load(tmp_path / "m")
    _all_equal(model, loaded)  # every tensor, palettized or not
    before, after = dict(iter_palettes(model)), dict(iter_palettes(loaded))
    assert before.keys() == after.keys() == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    for key, palette in before.items():
        assert torch.equal(palette.lut, after[key].lut) and torch.equal(palette.indices, after[key].indices)
        assert after[key].bits == palette.bits
    spec = json.loads((tmp_path / "m" / "netsculpt.json").read_text())
    assert spec["version"] == 3  # netsculpt before typed edits (<= 2) refuses instead of misreading
    # re-saving the loaded model writes the identical file: palettes survive the round trip
    ns.save(loaded, tmp_path / "again")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == (
        tmp_path / "again" / "model.safetensors"
    ).read_bytes()


def test_file_size_is_what_packing_predicts(tmp_path) -> None:
    model = ns.create_model("lenet5")
    float_bytes = packed_size_bytes(model)
    kmeans_palettize_(model, KMeansConfig(bits=4, n_init=1, max_samples=20_000))
    ns.save(model, tmp_path)
    size = (tmp_path / "model.safetensors").stat().st_size
    assert size == packed_size_bytes(model)
    # 430,500 weights at 4 bits = 215,250 bytes, + 580 float32 biases + 4 tables of 16 fp16 + header
    assert 215_250 + 580 * 4 + 4 * 16 * 2 <= size <= 215_250 + 580 * 4 + 4 * 16 * 2 + 2_000
    assert float_bytes / size > 7.9  # 4 bits vs 32: at most 8x, minus biases and header


def test_groups_vectors_and_fp16_dense_tensors(tmp_path) -> None:
    model = TinyNet()
    model.bn1.running_mean.uniform_(-1, 1)
    model.bn1.running_var.uniform_(0.5, 2)
    config = KMeansConfig(
        bits=2,
        group_size=4,
        vector_dim=2,
        dense_dtype="float16",
        n_init=1,
        filter_fn=lambda m, n: n != "conv1",
    )
    kmeans_palettize_(model, config)
    ns.save(model, tmp_path, builder=BUILDER)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
        assert f.get_tensor("dense.h").numel() > 0  # conv1, biases and BN rounded to fp16 and stored so
    assert names <= {"palettes.indices", "palettes.luts", "dense.h", "dense.q"}  # int64: num_batches_tracked
    loaded = ns.load(tmp_path, trust_builder=BUILDER)
    _all_equal(model, loaded)
    assert module_palettes(loaded.fc)["weight"].lut.shape == (1, 4, 2)  # 4 outputs, group_size 4


def test_fp16_dense_keeps_values_beyond_fp16_range_and_warns(tmp_path) -> None:
    """A running variance of 1e5 used to become inf under dense_dtype="float16", silently changing the
    outputs; it now stays float32 (in memory and in the file) with a warning naming it."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    model.bn1.running_var.uniform_(0.5, 2)
    model.bn1.running_var[0] = 1e5  # e.g. a net fed 0..255 pixels
    reference = copy.deepcopy(model)
    with pytest.warns(UserWarning, match=r"leaves bn1\.running_var in full precision"):
        kmeans_palettize_(model, KMeansConfig(bits=8, n_init=1, dense_dtype="float16"))
    assert torch.equal(model.bn1.running_var, reference.bn1.running_var)
    assert torch.equal(model.bn1.running_mean, reference.bn1.running_mean.half().float())  # others rounded
    x = torch.rand(2, 1, 8, 8) * 255
    assert torch.isfinite(model(x)).all()
    kmeans_palettize_(reference, KMeansConfig(bits=8, n_init=1))
    assert torch.allclose(model(x), reference(x), rtol=1e-3, atol=1e-3)
    ns.save(model, tmp_path, builder=BUILDER)
    _all_equal(model, ns.load(tmp_path, trust_builder=BUILDER))  # the file holds what the model holds


def test_weight_changed_after_palettizing_is_saved_dense(tmp_path) -> None:
    model = ns.create_model("lenet5")
    kmeans_palettize_(model, KMeansConfig(bits=2, n_init=1, max_samples=20_000))
    with torch.no_grad():
        model.fc2.weight.add_(1e-3)  # e.g. trained further without re-snapping
    with pytest.warns(UserWarning, match="fc2.weight changed"):
        ns.save(model, tmp_path)
    loaded = ns.load(tmp_path)
    _all_equal(model, loaded)
    assert "fc2.weight" not in dict(iter_palettes(loaded)) and "fc1.weight" in dict(iter_palettes(loaded))


def test_refusals(tmp_path) -> None:
    model = prepare_dkm_(ns.create_model("lenet5"), DKMConfig(bits=2, init_samples=2_000))
    with pytest.raises(CheckpointError, match="snap_dkm_"):
        ns.save(model, tmp_path / "a")
    snap_dkm_(model)
    ns.save(model, tmp_path / "a")
    spec_path = tmp_path / "a" / "netsculpt.json"
    spec = json.loads(spec_path.read_text())
    spec["base"]["num_classes"] = 7  # a different architecture than the weights were saved from
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError):
        ns.load(tmp_path / "a")


def test_plain_models_still_save_plainly(tmp_path) -> None:
    model = ns.create_model("lenet5")
    ns.save(model, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert "conv1.weight" in set(f.keys()) and set(f.metadata()) == {"netsculpt.sha256"}
    assert json.loads((tmp_path / "netsculpt.json").read_text())["version"] == 3


def _flip_one_bit(path, offset_from_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["dense", "palette"])
def test_a_flipped_bit_in_a_plain_coded_file_is_refused_not_loaded(tmp_path, kind: str) -> None:
    """Plain dense files and plain-coded palette files carried no checksum: flipped weight bits loaded."""
    torch.manual_seed(0)
    model = TinyNet()
    if kind == "palette":
        kmeans_palettize_(model, KMeansConfig(bits=4, n_init=1))
    ns.save(model, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    for offset in (1, 17, 101):  # inside the tensor data, which sits at the end of the file
        good = weights.read_bytes()
        _flip_one_bit(weights, offset)
        with pytest.raises(CheckpointError, match="corrupt"):
            ns.load(tmp_path / "m", model=TinyNet())
        weights.write_bytes(good)
    ns.load(tmp_path / "m", model=TinyNet())  # the good file still loads


def test_a_changed_header_is_refused_even_when_the_blobs_are_intact(tmp_path) -> None:
    """The first checksum covered the blobs only: a flipped digit in the packing metadata (a bit width,
    a stored dtype) loaded wrong weights."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = kmeans_palettize_(TinyNet(), KMeansConfig(bits=4, n_init=1))
    ns.save(model, tmp_path / "m", coding="context")
    weights = tmp_path / "m" / "model.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        meta, blobs = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    info = json.loads(meta["netsculpt.packed"])
    info["palettes"][0][1] = 3  # the first palette's bit width
    save_file(blobs, str(weights), metadata={"netsculpt.packed": json.dumps(info)})
    with pytest.raises(CheckpointError, match="corrupt"):
        ns.load(tmp_path / "m", model=TinyNet())


def test_context_coding_never_writes_a_bigger_file_than_plain(tmp_path) -> None:
    """Indices spread evenly over the palette leave the coder nothing to save, and its records cost
    header bytes: shufflenet at 2 bits came out 1 % larger than plain packing."""
    from netsculpt.weights.palette import Palette, set_palette_

    torch.manual_seed(0)
    model = TinyNet()
    for name in ("conv1", "conv2", "fc"):
        module = model.get_submodule(name)
        shape = tuple(module.weight.shape)
        indices = torch.randint(0, 4, (1, module.weight.numel()), dtype=torch.uint8)
        lut = torch.tensor([[-0.5], [-0.1], [0.1], [0.5]], dtype=torch.float16).reshape(1, 4, 1)
        set_palette_(module, "weight", Palette(indices=indices, lut=lut, bits=2, shape=shape))
    ns.save(model, tmp_path / "plain")
    ns.save(model, tmp_path / "context", coding="context")
    sizes = [(tmp_path / d / "model.safetensors").stat().st_size for d in ("plain", "context")]
    assert sizes[1] <= sizes[0]
    again = ns.load(tmp_path / "context", model=TinyNet())
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
