"""Detector options are read back only where the detector's builder takes them."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.models.detector_options import detector_options
from netsculpt.models.identify import identify_base
from netsculpt.spec import describe_unbuilt

SSDLITE = torchvision.models.detection.ssdlite320_mobilenet_v3_large


def test_ssd_options_leave_out_the_size_it_fixes_itself() -> None:
    """SSD passes min_size / max_size from its own size: emitting them failed every candidate build."""
    with torch.device("meta"):
        model = SSDLITE(
            weights=None, weights_backbone=None, num_classes=5, score_thresh=0.1, topk_candidates=50
        )
    options = detector_options(model)
    assert "min_size" not in options and "max_size" not in options
    assert (options["score_thresh"], options["topk_candidates"]) == (0.1, 50)
    assert options["image_mean"] == [0.5, 0.5, 0.5]  # SSD takes these: still read back


def test_rcnn_options_still_carry_the_input_size() -> None:
    with torch.device("meta"):
        model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=3, min_size=128, max_size=160
        )
    assert detector_options(model) | {"min_size": 128, "max_size": 160} == detector_options(model)


@pytest.mark.slow  # ns.save identifies SSDlite on the meta device, ns.load builds it: ~9 s each, niced
@pytest.mark.parametrize(
    "options", [{"score_thresh": 0.1}, {"detections_per_img": 7}], ids=["score_thresh", "detections_per_img"]
)
def test_an_ssdlite_with_its_own_postprocessing_round_trips(tmp_path, options) -> None:
    """It was saved as class SSD, which ns.load refused without model=."""
    torch.manual_seed(0)
    model = SSDLITE(weights=None, weights_backbone=None, num_classes=5, **options).eval()
    image = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        expected = model(image)
    ns.save(model, tmp_path / "m")
    base = json.loads((tmp_path / "m" / "netsculpt.json").read_text())["base"]
    assert base["kind"] == "netsculpt" and base["name"].endswith("ssdlite320_mobilenet_v3_large")
    assert options.items() <= base["kwargs"].items()

    loaded = ns.load(tmp_path / "m").eval()
    for key, value in options.items():
        assert getattr(loaded, key) == value
    with torch.no_grad():
        got = loaded(image)
    assert len(expected[0]["boxes"]) > 0
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(got[0][key], expected[0][key], rtol=0, atol=0)


@pytest.mark.slow  # identifies SSDlite on the meta device: ~6 s niced
def test_options_a_matching_builder_refuses_are_reported_not_hidden(caplog) -> None:
    """A builder with the user's tensors that cannot take the options read off the model used to fail
    silently (debug log only): the model was saved as its class with no word why."""
    with torch.device("meta"):
        model = SSDLITE(weights=None, weights_backbone=None, num_classes=5, score_thresh=0.1)
    spec = describe_unbuilt(model)
    spec["base"]["detector_options"]["min_size"] = 320  # what the old detector_options wrote for SSD
    with caplog.at_level(logging.WARNING, logger="netsculpt.models.identify"):
        assert identify_base(spec["base"], spec["base_shapes"]) is None
    assert "ssdlite320_mobilenet_v3_large" in caplog.text and "min_size" in caplog.text


def test_an_ssd300_with_its_own_postprocessing_is_found_as_its_builder() -> None:
    """On the meta device only: a real ssd300_vgg16 round trip takes ~17 s niced."""
    with torch.device("meta"):
        model = torchvision.models.detection.ssd300_vgg16(
            weights=None, weights_backbone=None, num_classes=5, detections_per_img=9
        )
    spec = describe_unbuilt(model)
    found = identify_base(spec["base"], spec["base_shapes"])
    assert found is not None and found["name"] == "torchvision:ssd300_vgg16"
    assert (found["num_classes"], found["kwargs"]["detections_per_img"]) == (5, 9)
