"""int8 detectors (weights/int8_detector.py): the backbone (and a single-stage head) on ONNX Runtime,
transform / anchors / decoding / NMS float."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from netsculpt.errors import CheckpointError, ConfigError, DataError
from tests.graph.test_snapshot import assert_unchanged, module_state

SIZE = 64


def _detector() -> nn.Module:
    from netsculpt.models import create_model

    torch.manual_seed(0)
    return create_model("fcos_slim", num_classes=11, in_channels=1, image_size=SIZE).eval()


def _loader(n: int = 8) -> DataLoader:
    from netsculpt.data.canvases import CanvasSpec, DigitsCanvases
    from netsculpt.tasks import get_task

    spec = CanvasSpec(size=SIZE, digits=(1, 3), scale=(14, 28))
    canvases = DigitsCanvases("train", n, task="detect", seed=0, spec=spec)
    return DataLoader(canvases, batch_size=4, collate_fn=get_task("detection").collate)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> tuple[nn.Module, nn.Module, Path]:
    from netsculpt.weights.int8_detector import quantize_detector

    model, out = _detector(), tmp_path_factory.mktemp("int8det")
    return model, quantize_detector(model, _loader(), out, calibration_batches=2), out


def _images() -> list[torch.Tensor]:
    return next(iter(_loader(4)))[0]


def test_the_int8_detector_takes_a_list_of_images_and_returns_boxes_labels_and_scores(quantized) -> None:
    model, int8, _ = quantized
    images = _images()
    with torch.no_grad():
        float_out, int8_out = model(images), int8(images)
    assert isinstance(int8_out, list) and len(int8_out) == len(float_out) == len(images)
    for f, q in zip(float_out, int8_out):
        assert set(q) == set(f) == {"boxes", "labels", "scores"}
        assert q["boxes"].shape[1:] == (4,) and q["boxes"].dtype == f["boxes"].dtype
        assert q["labels"].dtype == f["labels"].dtype and len(q["labels"]) == len(q["scores"])
    assert type(int8) is type(model) and type(int8.backbone).__name__ == "Int8Backbone"
    assert int8.backbone.runtime == "onnxruntime" and int8.backbone.input_size == (1, SIZE, SIZE)
    # FCOS has a tensor-in model.head: by default it is int8 with the backbone, in the same graph
    assert int8.backbone.part == "backbone+head" and type(int8.head).__name__ == "Int8Head"


def test_the_int8_head_outputs_are_close_to_the_float_ones(quantized) -> None:
    model, int8, _ = quantized
    assert type(int8.head).__name__ == "Int8Head"  # the head's convs ran in the int8 graph, not float torch
    x = torch.stack(_images())
    with torch.no_grad():
        ref = model.head(list(model.backbone(x).values()))
        got = int8.head(list(int8.backbone(x).values()))
    assert set(got) == set(ref) == {"cls_logits", "bbox_regression", "bbox_ctrness"}
    for key in ref:
        assert got[key].shape == ref[key].shape
        # the backbone's ~10 convs plus the head's 5 in series (bound of the features' test below, for the
        # same reason: a wrong scale or a dropped layer is far off, calibration rounding is a few percent)
        error = (got[key] - ref[key]).norm() / ref[key].norm()
        assert error < 0.10, (key, float(error))


def test_the_int8_head_refuses_features_its_backbone_did_not_just_return(quantized) -> None:
    _, int8, _ = quantized
    x = torch.stack(_images())
    with torch.no_grad():
        features = list(int8.backbone(x).values())
        int8.head(features)
        with pytest.raises(ConfigError, match=r"runs inside its backbone's int8 graph .*part='backbone'"):
            int8.head(features)  # consumed: stale outputs are never handed out twice
        with pytest.raises(ConfigError, match=r"only returns the head outputs for the features"):
            int8.head([f.clone() for f in int8.backbone(x).values()])


def test_the_record_names_the_part_and_an_old_record_without_it_loads_as_backbone(tmp_path) -> None:
    import json

    from netsculpt.weights.int8_detector import load_int8_detector, quantize_detector

    model = _detector()
    int8 = quantize_detector(model, _loader(4), tmp_path, calibration_batches=1, part="backbone")
    record = json.loads((tmp_path / "int8_detector.json").read_text())
    assert record["part"] == "backbone" and int8.head.__class__.__name__ == "FCOSHead"
    del record["part"]  # as written before the head could be int8
    (tmp_path / "int8_detector.json").write_text(json.dumps(record))
    again = load_int8_detector(tmp_path, model)
    assert again.backbone.part == "backbone" and type(again.head).__name__ == "FCOSHead"
    record["part"] = "head"
    (tmp_path / "int8_detector.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"part: backbone or backbone\+head"):
        load_int8_detector(tmp_path, model)


def test_a_two_stage_detector_defaults_to_the_backbone_and_refuses_the_head() -> None:
    from torchvision.models.detection import FasterRCNN

    from netsculpt.weights.int8_detector import detector_part

    two_stage = FasterRCNN(_detector().backbone, num_classes=11, min_size=SIZE, max_size=SIZE)
    assert detector_part(two_stage, None) == "backbone"
    assert detector_part(_detector(), None) == "backbone+head"
    with pytest.raises(ConfigError, match=r"FasterRCNN has no 'head' module .*use part='backbone'"):
        detector_part(two_stage, "backbone+head")
    with pytest.raises(ConfigError, match=r"part 'neck' is unknown; choose one of backbone, backbone\+head"):
        detector_part(two_stage, "neck")


def test_the_int8_backbone_features_are_close_to_the_float_ones(quantized) -> None:
    model, int8, _ = quantized
    x = torch.stack(_images())  # what the transform gives: 64 px canvases, mean 0 std 1, no padding
    with torch.no_grad():
        ref, got = model.backbone(x), int8.backbone(x)
    assert list(got) == list(ref)  # the same pyramid levels, in order
    for level in ref:
        # ~10 quantized convs in series, each rounding its uint8 activations to 1/255 of the calibrated
        # range (0.2%): their errors add up to a few percent of the feature norm (measured 2-4%), so 10%
        # catches a wrong scale or a dropped layer without flaking on the calibration's own rounding
        error = (got[level] - ref[level]).norm() / ref[level].norm()
        assert error < 0.10, (level, float(error))


def test_quantizing_leaves_the_users_detector_as_it_was(tmp_path) -> None:
    from netsculpt.weights.int8_detector import quantize_detector

    model = _detector()  # its own: any forward reassigns the anchor generator's cell_anchors list
    before = module_state(model)
    int8 = quantize_detector(model, _loader(4), tmp_path, calibration_batches=1)  # backbone and head
    assert_unchanged(model, before, "quantize_detector")
    assert type(model.backbone).__name__ == "BackboneWithFPN" and not model.backbone._forward_pre_hooks
    assert int8.head is not model.head and int8.transform is not model.transform  # a copy, not shared
    assert not any(p is q for p in model.parameters() for q in int8.parameters())


def test_the_int8_detector_reloads_from_its_folder_with_its_float_model(quantized) -> None:
    from netsculpt.runtimes.artefacts import load_artefact
    from netsculpt.weights.int8_detector import load_int8_detector

    model, int8, out = quantized
    again = load_int8_detector(out, model)
    images = _images()
    with torch.no_grad():
        first, second = int8(images), again(images)
    for a, b in zip(first, second):
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match=r"no float detector in model/.*load_int8_detector"):
        load_artefact(out)


@pytest.mark.slow  # a new Python process imports torch and netsculpt (30 s wall on the loaded dev machine)
def test_the_int8_detector_loads_in_a_fresh_process_with_its_part(quantized, tmp_path) -> None:
    """The folder alone (graph, record, float detector in model/) rebuilds it: nothing of this process."""
    import subprocess
    import sys

    from safetensors.torch import save_file

    import netsculpt as ns

    model, int8, out = quantized
    ns.save(model, out / "model")
    images = _images()
    with torch.no_grad():
        expected = int8(images)
    tensors = {f"image{i}": x for i, x in enumerate(images)}
    tensors.update({f"{k}{i}": o[k] for i, o in enumerate(expected) for k in o})
    save_file(tensors, tmp_path / "expected.safetensors")
    code = (
        "import sys, torch\n"
        "from safetensors.torch import load_file\n"
        "from netsculpt.runtimes.artefacts import load_artefact\n"
        "t = load_file(sys.argv[2])\n"
        "n = sum(k.startswith('image') for k in t)\n"
        "m = load_artefact(sys.argv[1])\n"
        "assert m.backbone.part == 'backbone+head' and type(m.head).__name__ == 'Int8Head'\n"
        "with torch.no_grad():\n"
        "    got = m([t[f'image{i}'] for i in range(n)])\n"
        "for i, o in enumerate(got):\n"
        "    for k in o:\n"
        "        assert torch.equal(o[k], t[f'{k}{i}']), (i, k)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "expected.safetensors")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_save_and_measure_refuse_the_int8_detector_naming_what_to_do(quantized) -> None:
    import netsculpt as ns

    _, int8, _ = quantized
    with pytest.raises(
        ConfigError, match=r"FCOS's backbone is an int8 onnxruntime graph .*load_int8_detector"
    ):
        ns.save(int8, Path("unused"))
    with pytest.raises(ConfigError, match=r"measure the float detector for counts; measure_latency"):
        ns.measure(int8, torch.rand(1, 1, SIZE, SIZE))


def test_another_input_size_is_refused_naming_the_fix(quantized) -> None:
    _, int8, _ = quantized
    int8.transform.min_size, int8.transform.max_size = (96,), 96  # the transform now gives 96 px
    try:
        with pytest.raises(ConfigError, match=r"takes the batched images at 1x64x64 .* gave 1x96x96: resize"):
            int8(_images())
    finally:
        int8.transform.min_size, int8.transform.max_size = (SIZE,), SIZE


def test_calibration_images_of_several_sizes_are_refused(tmp_path) -> None:
    from netsculpt.weights.int8_detector import quantize_detector

    model = _detector()
    model.transform.max_size = 2 * SIZE  # a wide image keeps its aspect: 64 x 128
    batches = [[torch.rand(1, SIZE, SIZE)], [torch.rand(1, SIZE, 2 * SIZE)]]
    with pytest.raises(DataError, match=r"at 2 sizes \(1x64x64, 1x64x128\).*one size"):
        quantize_detector(model, batches, tmp_path, calibration_batches=2)
    assert not list(tmp_path.iterdir())  # refused before anything was written


class ListDetector(nn.Module):
    """A detector taking a list of images with no transform / backbone split to quantize."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": self.conv(x[None]).flatten()[:4][None]} for x in images]


def test_a_detector_without_a_tensor_in_backbone_is_refused_saying_what_is_supported(tmp_path) -> None:
    from netsculpt.weights.int8_detector import quantize_detector
    from netsculpt.weights.int8_select import compare_int8

    batches = [([torch.rand(1, 16, 16)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])] * 2
    supported = r"cannot quantize ListDetector: .*GeneralizedRCNN.*RetinaNet, FCOS, SSD.*no 'transform'"
    with pytest.raises(ConfigError, match=supported):
        quantize_detector(ListDetector(), batches, tmp_path)
    with pytest.raises(ConfigError, match=supported):
        compare_int8(ListDetector(), torch.rand(1, 1, 16, 16), batches, tmp_path, task="detection",
                     runtimes=("onnxruntime",), calib_batches=1, select_batches=1)  # fmt: skip


def test_compare_int8_scores_detector_candidates_by_map(tmp_path) -> None:
    from netsculpt.weights.int8_select import compare_int8

    model = _detector()
    example = torch.rand(1, 1, SIZE, SIZE)
    models, rows, float_map = compare_int8(model, example, _loader(12), tmp_path, task="detection",
                                           runtimes=("onnxruntime",), calib_batches=2, select_batches=1,
                                           runs=3, part="backbone")  # fmt: skip
    (row,) = rows
    assert row["metric"] == "map" and 0 <= row["heldout_accuracy"] <= 1 and 0 <= float_map <= 1
    assert row["latency_ms"] > 0 and row["float_runtime"] == "torch" and row["size_bytes"] > 0
    assert type(models["onnxruntime"].backbone).__name__ == "Int8Backbone"
    assert models["onnxruntime"].backbone.part == "backbone"  # the part reaches every candidate
    assert (tmp_path / "candidates" / "onnxruntime" / "int8_detector.json").is_file()


@pytest.mark.runtimes  # loads OpenVINO / torch.compile
@pytest.mark.parametrize(
    ("runtime", "part"),
    [
        ("openvino", "backbone"),
        # the head's towers quadruple NNCF's work (4 s -> 15 s): slow. PT2E quantizes the same module
        # the part selects as the other runtimes do; its backbone+head compile takes ~100 s, so the
        # suite runs PT2E on the backbone (benchmarks/int8_detector.py --parts covers its head)
        pytest.param("openvino", "backbone+head", marks=pytest.mark.slow),
        pytest.param("torch", "backbone", marks=pytest.mark.slow),
    ],
)
def test_the_backbone_runs_int8_on_openvino_and_pt2e_too(runtime: str, part: str, tmp_path) -> None:
    from netsculpt.weights.int8_detector import load_int8_detector, quantize_detector
    from tests.graph.archs import randomize_

    # BatchNorm statistics of a trained model: at random init P6 / P7 are ~1e-5, which OpenVINO's int8
    # graph returned as zeros (fp16's normal range ends at 6e-5); a trained fcos_slim's are ~1
    model = randomize_(_detector())
    int8 = quantize_detector(model, _loader(), tmp_path, runtime=runtime, calibration_batches=2, part=part)
    assert int8.backbone.part == part
    images = _images()
    with torch.no_grad():
        ref, got = model.backbone(torch.stack(images)), int8.backbone(torch.stack(images))
        outputs, again = int8(images), load_int8_detector(tmp_path, model)(images)
        fewer = int8(images[:3])  # another batch: inductor's int8 conv failed on a dynamic batch (PT2E)
        ref_head = model.head(list(ref.values()))
        got_head = int8.head(list(int8.backbone(torch.stack(images)).values()))
    for level in ref:  # the bound of the ONNX Runtime test above, for the same reason
        assert (got[level] - ref[level]).norm() / ref[level].norm() < 0.10, level
    for key in ref_head:  # the head's float one on "backbone", its int8 one on "backbone+head"
        assert (got_head[key] - ref_head[key]).norm() / ref_head[key].norm() < 0.10, key
    assert [set(o) for o in outputs] == [{"boxes", "labels", "scores"}] * len(images)
    assert len(fewer) == 3
    for a, b in zip(outputs, again):
        assert all(torch.allclose(a[k].float(), b[k].float()) for k in a)
