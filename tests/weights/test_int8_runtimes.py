"""int8 on OpenVINO (NNCF) and PyTorch PT2E: artefacts written atomically, reloaded with the same outputs,
and a .pt2 that netsculpt did not write is refused (torch.export.load unpickles)."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

import netsculpt as ns
from netsculpt.errors import CheckpointError, ConfigError, DataError
from netsculpt.runtimes import get_runtime
from netsculpt.runtimes.artefacts import PROGRAM_NAME, ProgramModule, load_artefact, timing_runtime
from netsculpt.weights.int8_runtimes import calibration_batches, quantize_openvino, quantize_pt2e
from netsculpt.weights.int8_select import quantize_on

pytestmark = pytest.mark.runtimes  # own pytest process in `make test` (see Makefile)
OUTPUTS_NAME = "model.int8.outputs.json"  # the file users see beside the artefact: a fixed name


@pytest.fixture(scope="module")
def lenet() -> tuple[torch.nn.Module, torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    return (
        ns.create_model("lenet5").eval(),
        torch.randn(1, 1, 28, 28, generator=gen),
        [torch.randn(8, 1, 28, 28, generator=gen) for _ in range(3)],
    )


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "torch"])
def test_int8_artefact_reloads_with_the_same_outputs(runtime, lenet, tmp_path) -> None:
    model, x, calibration = lenet
    q = quantize_on(runtime, model, x, calibration, tmp_path)
    batch = torch.randn(5, 1, 28, 28)
    y = q(batch)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    again = load_artefact(tmp_path)
    assert type(again) is type(q) and again.deployed_runtime == q.deployed_runtime
    assert torch.equal(again(batch), y)
    with torch.no_grad():
        # int8 rounding of an untrained LeNet's logits (|logit| ~ 0.1): well below one class margin
        assert (y - model(batch)).abs().max() < 0.05
    assert q.size_bytes > 0


def test_pt2e_program_runs_its_int8_kernels_under_compile(lenet, tmp_path) -> None:
    model, x, calibration = lenet
    q = quantize_pt2e(model, x, calibration, tmp_path)
    assert timing_runtime(q) == "compile"
    prepared = get_runtime("compile").prepare(q, (x,), threads=1)
    try:
        (y,) = prepared.run((x,))
    finally:
        prepared.close()
    # the compiled int8 kernels agree with the reference program to int8 rounding, not bit for bit: on a
    # CPU without VNNI (AVX2 only) oneDNN's u8s8 dot products saturate pairs at int16, which moved this
    # untrained LeNet's logits (|logit| ~ 0.2) by up to 0.007; with VNNI they matched to 1e-4
    assert (y - q(x)).abs().max() < 0.02
    with torch.no_grad():
        assert (y - model(x)).abs().max() < 0.05  # the bound test_int8_artefact_reloads_... holds q to


@pytest.mark.slow  # a new Python process imports torch and netsculpt
def test_a_pt2e_program_loads_in_a_fresh_process(lenet, tmp_path) -> None:
    """A resumed run loads the stage's .pt2 in a new process, where torchao's PT2E was never imported:
    torch.export.load failed to resolve torch.ops.quantized_decomposed.* (before 2026-12-07)."""
    import subprocess
    import sys

    model, x, calibration = lenet
    quantize_pt2e(model, x, calibration, tmp_path)
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import sys, torch; from netsculpt.runtimes.artefacts import load_artefact; "
        "y = load_artefact(sys.argv[1])(torch.load(sys.argv[1] + '/x.pt')); print(tuple(y.shape))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "(1, 10)"


def test_a_program_netsculpt_did_not_write_is_refused(lenet, tmp_path) -> None:
    model, x, calibration = lenet
    quantize_pt2e(model, x, calibration, tmp_path / "ours")
    handed = tmp_path / "handed" / PROGRAM_NAME
    handed.parent.mkdir()
    data = bytearray((tmp_path / "ours" / PROGRAM_NAME).read_bytes())
    data[-30] ^= 1  # any change: a different file than the one this user's run wrote
    handed.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_artefact(handed.parent)
    shutil.copy(tmp_path / "ours" / PROGRAM_NAME, handed)  # the exact file we wrote loads
    assert isinstance(load_artefact(handed.parent), ProgramModule)


def test_openvino_ir_is_xml_and_bin(lenet, tmp_path) -> None:
    model, x, calibration = lenet
    q = quantize_openvino(model, x, calibration, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.bin", "model.int8.xml"]
    assert q.size_bytes == sum(p.stat().st_size for p in tmp_path.iterdir())


@pytest.mark.parametrize("quantize", [quantize_openvino, quantize_pt2e])
def test_a_float64_model_is_refused_before_any_file_is_written(lenet, quantize, tmp_path) -> None:
    """OpenVINO used to write an IR from a float64 model that it then could not load."""
    model, x, calibration = lenet
    wide = copy.deepcopy(model).double()
    with pytest.raises(ConfigError, match=r"conv1\.weight is float64; quantize a float32 copy"):
        quantize(wide, x.double(), [c.double() for c in calibration], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_calibration_batches_keep_integer_inputs() -> None:
    """Token ids stay int64 (an Embedding's export takes int64); only float inputs become float32."""
    ids, images = torch.randint(0, 9, (2, 7)), torch.rand(2, 3, dtype=torch.float64)
    batches = calibration_batches([(ids, None), images], 2)
    assert batches[0].dtype == torch.int64 and torch.equal(batches[0], ids)
    assert batches[1].dtype == torch.float32
    # a two-input model's batches are ((x0, x1), y): the item is the tuple of inputs (was: a crash on it)
    (both,) = calibration_batches([((ids, images), None)], 1)
    assert isinstance(both, tuple) and both[0].dtype == torch.int64 and both[1].dtype == torch.float32


def test_pt2e_quantizes_a_torchvision_resnet_that_calls_one_relu_twice(tmp_path) -> None:
    import torchvision

    from netsculpt.weights.int8_runtimes import split_repeated_calls

    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(1, 3, 32, 32)
    graph = torch.export.export(model, (x,)).module()
    assert split_repeated_calls(graph) >= 8  # the second relu call of each of the 8 BasicBlocks
    q = quantize_pt2e(model, x, [torch.randn(2, 3, 32, 32)], tmp_path)  # raised in torchao 0.18 before
    with torch.no_grad():
        y, ref = q(x), model(x)
    assert y.shape == ref.shape and (y - ref).abs().max() < 0.1 * ref.abs().max()  # int8, not garbage
    # int8 weights only: the float weights convert_pt2e leaves unread are not saved (was 1.3x the float)
    float_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert q.size_bytes < 0.35 * float_bytes
    assert not any(v.dtype == torch.float32 and v.dim() == 4 for v in q.program.state_dict.values())


class TwoIn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(1, 4, 3)

    def forward(self, img: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return self.a(img).mean((2, 3)) + self.b(depth).mean((2, 3))


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c, self.cls, self.box = (
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.Linear(8, 10),
            torch.nn.Linear(8, 4),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.c(x).relu().mean((2, 3))
        return {"logits": self.cls(f), "boxes": self.box(f)}


class TupleHeads(torch.nn.Module):
    """Two heads of one width, the second offset by 3: outputs rebuilt in the wrong order are 3 off."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.h1, self.h2 = (
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.Linear(8, 4),
            torch.nn.Linear(8, 4),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f = self.c(x).relu().mean((2, 3))
        return self.h1(f), [self.h2(f) + 3.0]


def _close(y: object, ref: object) -> None:
    """Same structure (types, keys, order, shapes) and int8-close values: 256 levels per activation range
    put each layer's rounding well under 1 % of its range, so 10 % of the largest value is int8 noise,
    while an output returned in another's place is off by the heads' 3.0 offset or its shape."""
    from torch.utils._pytree import tree_flatten, tree_structure

    assert tree_structure(y) == tree_structure(ref)
    if isinstance(ref, dict):
        assert list(y) == list(ref)
    for a, b in zip(tree_flatten(y)[0], tree_flatten(ref)[0]):
        assert a.shape == b.shape and (a - b).abs().max() < 0.1 * b.abs().max()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("net", [TwoHeads, TupleHeads])
def test_int8_keeps_the_output_structure(runtime, net, tmp_path) -> None:
    """ONNX Runtime's and OpenVINO's artefacts returned the graph's first output only (a dict became its
    logits tensor), so check_int8_io refused such models; they now return the model's structure."""
    torch.manual_seed(0)
    model, x = net().eval(), torch.randn(6, 3, 8, 8)
    q = quantize_on(runtime, model, x[:1], [torch.randn(4, 3, 8, 8) for _ in range(4)], tmp_path)
    with torch.no_grad():
        ref = model(x)
    _close(q(x), ref)
    assert (tmp_path / OUTPUTS_NAME).is_file()
    again = load_artefact(tmp_path)  # the reloaded artefact reads the structure from the folder
    _close(again(x), ref)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_torchvision_segmenter_keeps_its_ordered_dict(runtime, tmp_path) -> None:
    """torchvision's segmenters return an OrderedDict, which check_int8_io refused (only a plain dict was
    rebuilt), so no torchvision segmenter could be quantized on ONNX Runtime or OpenVINO."""
    from collections import OrderedDict

    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3, aux_loss=True)
    model, x = model.eval(), torch.randn(1, 3, 64, 64)
    q = quantize_on(runtime, model, x, [torch.randn(1, 3, 64, 64)], tmp_path)
    with torch.no_grad():
        ref, y, again = model(x), q(x), load_artefact(tmp_path)(x)
    assert type(y) is type(again) is OrderedDict and list(y) == list(again) == ["out", "aux"]
    assert all(torch.equal(y[k], again[k]) for k in y)
    for key in y:  # each head in its own place: int8 tracks its float head far more than the other one
        corr = {k: torch.corrcoef(torch.stack([y[key].flatten(), ref[k].flatten()]))[0, 1] for k in ref}
        assert corr[key] > 0.95 and corr[key] > max(corr.values()) - 1e-6


def test_openvino_refuses_an_input_of_another_size_rather_than_return_a_stale_output(tmp_path) -> None:
    """The IR is fixed at the example's height and width; OpenVINO ran a 24 px image through a 16 px IR
    anyway and returned an empty tensor, or the previous call's output, without an error."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    q = quantize_on("openvino", model, x, [x], tmp_path)
    assert q(torch.randn(2, 3, 16, 16)).shape == (2, 4, 16, 16)  # the batch stays free
    with pytest.raises(ConfigError, match=r"takes input0 of shape \[\?,3,16,16\] .*got \[1, 3, 24, 24\]"):
        q(torch.randn(1, 3, 24, 24))


def test_a_folder_without_the_structure_file_returns_the_first_output(tmp_path) -> None:
    """Runs from before the file existed keep what they returned: the graph's first output."""
    model, x = TwoHeads().eval(), torch.randn(2, 3, 8, 8)
    q = quantize_on("onnxruntime", model, x[:1], [torch.randn(4, 3, 8, 8)], tmp_path)
    (tmp_path / OUTPUTS_NAME).unlink()
    old = load_artefact(tmp_path)
    assert torch.equal(old(x), q(x)["logits"])
    (tmp_path / OUTPUTS_NAME).write_text('{"format": "netsculpt-output-tree", "version": 1}')
    with pytest.raises(CheckpointError, match="Rerun the quantize stage"):
        load_artefact(tmp_path)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "torch"])
def test_a_two_input_model_is_calibrated_on_both_inputs(runtime, tmp_path) -> None:
    """Calibration fed input 0 only (a raw ValueError, AttributeErrors), so two inputs were refused."""
    torch.manual_seed(0)
    model = TwoIn().eval()
    x = (torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8))
    calibration = [(torch.randn(4, 3, 8, 8), torch.randn(4, 1, 8, 8)) for _ in range(3)]
    q = quantize_on(runtime, model, x, calibration, tmp_path)
    batch = (torch.randn(5, 3, 8, 8), torch.randn(5, 1, 8, 8))
    with torch.no_grad():
        _close(q(*batch), model(*batch))
    _close(load_artefact(tmp_path)(*batch), q(*batch))


def test_a_loader_of_input_tuples_calibrates_onnxruntime(tmp_path) -> None:
    """A loader yields ((image, depth), labels); the reader feeds each input by the export's name."""
    from netsculpt.weights.quantize import Int8Config, quantize_int8

    loader = [((torch.randn(4, 3, 8, 8), torch.randn(4, 1, 8, 8)), torch.zeros(4)) for _ in range(2)]
    x = (torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8))
    q = quantize_int8(TwoIn().eval(), x, loader, tmp_path, Int8Config(calibration_batches=2))
    assert q.input_names == ["input0", "input1"] and q(*x).shape == (1, 4)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "torch"])
def test_a_calibration_batch_that_does_not_fit_the_inputs_is_refused(runtime, tmp_path) -> None:
    x = (torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8))
    labels_for_depth = [(torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(DataError, match=r"calibration input 1 has shape \(4,\), but the model takes 2"):
        quantize_on(runtime, TwoIn().eval(), x, labels_for_depth, tmp_path / "out")
    with pytest.raises(DataError, match=r"holds 1 input\(s\) .* the model takes 2 tensor inputs shaped"):
        quantize_on(runtime, TwoIn().eval(), x, [torch.randn(4, 3, 8, 8)], tmp_path / "out")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "torch"])
def test_a_non_tensor_input_is_refused_before_any_file_is_written(runtime, tmp_path) -> None:
    x = ([torch.randn(1, 3, 8, 8)],)
    with pytest.raises(ConfigError, match="forward arguments are all tensors, but Listed is given"):
        quantize_on(runtime, Listed().eval(), x, [x], tmp_path / "out")
    assert not (tmp_path / "out").exists()


class Listed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = torch.nn.Conv2d(3, 4, 3)

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return self.c(images[0]).mean((2, 3))


def test_a_namedtuple_output_is_refused_on_onnxruntime_before_any_file_is_written(tmp_path) -> None:
    from collections import namedtuple

    Out = namedtuple("Out", "logits boxes")

    class Named(TwoHeads):
        def forward(self, x: torch.Tensor) -> Out:
            return Out(**super().forward(x))

    with pytest.raises(ConfigError, match=r"Named returns a namedtuple \(Out\)"):
        x = torch.randn(1, 3, 8, 8)
        quantize_on("onnxruntime", Named().eval(), x, [x], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pt2e_keeps_a_dict_of_outputs(tmp_path) -> None:
    model = TwoHeads().eval()
    x = torch.randn(1, 3, 8, 8)
    q = quantize_pt2e(model, x, [torch.randn(4, 3, 8, 8)], tmp_path)
    y = q(x)
    assert isinstance(y, dict) and {k: v.shape for k, v in y.items()} == {
        k: v.shape for k, v in model(x).items()
    }


def test_openvino_calibrates_on_every_batch_it_is_given(lenet, tmp_path, caplog) -> None:
    """NNCF's subset_size counts dataset items (batches); it was given the sample count (3 x 8 = 24)."""
    model, x, calibration = lenet
    with caplog.at_level("WARNING"):
        quantize_openvino(model, x, calibration, tmp_path)
    assert "smaller than the requested subset size" not in caplog.text
