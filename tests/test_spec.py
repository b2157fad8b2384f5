"""The structural fingerprint describes how a model was built, not what it has seen."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.spec import structure_fingerprint


def _small_faster_rcnn() -> torch.nn.Module:
    # min_size / max_size 64: the 320 px default makes each forward several times slower
    return torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64
    ).eval()


def test_a_forward_pass_leaves_the_fingerprint_alone() -> None:
    """MultiScaleRoIAlign fills ``scales`` / ``map_levels`` on its first call; they are not settings."""
    model = _small_faster_rcnn()
    before = structure_fingerprint(model)
    with torch.no_grad():
        model([torch.rand(3, 64, 64)])
    assert model.roi_heads.box_roi_pool.scales is not None  # the cache this test is about was filled
    assert structure_fingerprint(model) == before


def test_a_real_setting_still_changes_the_fingerprint() -> None:
    """Leaving the caches out must not leave out the pooler's construction options."""
    model = _small_faster_rcnn()
    before = structure_fingerprint(model)
    model.roi_heads.box_roi_pool.canonical_level = 5
    assert structure_fingerprint(model) != before


@pytest.mark.slow  # builds and runs Faster R-CNN several times: ~3.5 s
def test_an_rcnn_that_has_run_saves_as_its_builder_and_reloads_equal(tmp_path) -> None:
    """It used to be saved as class FasterRCNN, which ns.load refused without model=."""
    torch.manual_seed(0)
    model = _small_faster_rcnn()
    image = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        model(image)  # fills the RoI pooler's caches, as any use of the model does
    model.roi_heads.score_thresh = 0.0  # keep every box, so the comparison below is not of empty lists
    with torch.no_grad():
        expected = model(image)
    ns.save(model, tmp_path / "m")
    base = json.loads((tmp_path / "m" / "netsculpt.json").read_text())["base"]
    assert base["kind"] == "netsculpt" and base["name"].endswith("fasterrcnn_mobilenet_v3_large_320_fpn")

    loaded = ns.load(tmp_path / "m").eval()
    assert loaded.roi_heads.box_roi_pool.scales is None  # rebuilt fresh: the first call fills it again
    with torch.no_grad():
        got = loaded(image)
    assert loaded.roi_heads.box_roi_pool.scales == model.roi_heads.box_roi_pool.scales
    assert len(expected[0]["boxes"]) > 0
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(got[0][key], expected[0][key], rtol=0, atol=0)
