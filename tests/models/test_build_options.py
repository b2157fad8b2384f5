"""Models built with structural torchvision options (width, dilation, image size) are recognised."""

from __future__ import annotations

import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.errors import CheckpointError
from netsculpt.models.build_options import structural_guesses
from netsculpt.models.identify import identify_base
from netsculpt.spec import describe_unbuilt

BUILT_WITH_OPTIONS = [
    (lambda: torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]), "resnet50"),
    (lambda: torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=5), "mobilenet_v2"),
    (lambda: torchvision.models.mobilenet_v3_large(width_mult=0.75, dilated=True), "mobilenet_v3_large"),
    (lambda: torchvision.models.mobilenet_v3_small(reduced_tail=True, num_classes=7), "mobilenet_v3_small"),
    (lambda: torchvision.models.vit_b_16(image_size=64), "vit_b_16"),
]


@pytest.mark.parametrize(("build", "name"), BUILT_WITH_OPTIONS, ids=[n for _, n in BUILT_WITH_OPTIONS])
def test_a_model_built_with_options_is_recognised_with_them(build, name) -> None:
    with torch.device("meta"):  # shapes and settings only: no memory for the weights
        model = build()
    spec = describe_unbuilt(model)
    found = identify_base(spec["base"], spec["base_shapes"])
    assert found is not None and found["name"] == f"torchvision:{name}"
    assert found["kwargs"]  # the option that makes it this model is recorded
    with torch.device("meta"):
        rebuilt = ns.create_model(
            found["name"],
            num_classes=found["num_classes"],
            in_channels=found["in_channels"],
            **found["kwargs"],
        )
    assert describe_unbuilt(rebuilt)["base"]["fingerprint"] == spec["base"]["fingerprint"]


def test_a_width_multiplied_model_saves_and_reloads_bit_for_bit(tmp_path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(width_mult=0.5, num_classes=10).eval()
    ns.save(model, tmp_path / "m")
    loaded = ns.load(tmp_path / "m")
    assert type(loaded) is type(model)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model(x), loaded.eval()(x))


def test_an_architecture_no_builder_makes_is_still_refused_on_load(tmp_path) -> None:
    from torchvision.models.resnet import Bottleneck, ResNet

    ns.save(ResNet(Bottleneck, [2, 2, 2, 2]).eval(), tmp_path / "m")
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        ns.load(tmp_path / "m")


def test_guesses_are_plain_data_and_only_for_known_families() -> None:
    assert {"output_stride": 16} in structural_guesses("timm:resnet18", {})
    assert structural_guesses("torchvision:alexnet", {}) == []
    guesses = structural_guesses("torchvision:mobilenet_v2", {"features.0.0.weight": [16, 3, 3, 3]})
    assert guesses[0] == {"width_mult": 0.5}  # the width the first conv implies is tried first
    assert structural_guesses(
        "torchvision:vit_b_16", {"encoder.pos_embedding": [1, 17, 768], "conv_proj.weight": [768, 3, 16, 16]}
    ) == [{"image_size": 64}]


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("vit_tiny_patch16_224", {"img_size": 64, "num_classes": 10}),
        ("resnet50", {"output_stride": 16}),
        ("mobilenetv3_small_050", {"global_pool": "max"}),
    ],
)
def test_timm_models_built_with_structural_kwargs_are_recognised(arch, kwargs) -> None:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model(arch, **kwargs)
    spec = describe_unbuilt(model)
    found = identify_base(spec["base"], spec["base_shapes"])
    assert found is not None and found["name"] == f"timm:{arch}"
    assert {k: v for k, v in kwargs.items() if k != "num_classes"}.items() <= found["kwargs"].items()


@pytest.mark.parametrize(
    ("build", "name", "classes"),
    [
        (
            lambda: torchvision.models.detection.ssdlite320_mobilenet_v3_large(
                num_classes=5, weights_backbone=None
            ),
            "ssdlite320_mobilenet_v3_large",
            5,
        ),
        (
            lambda: torchvision.models.detection.retinanet_resnet50_fpn(num_classes=3, weights_backbone=None),
            "retinanet_resnet50_fpn",
            3,
        ),
    ],
    ids=["ssdlite-beside-its-class", "anchors-x-classes-head"],
)
def test_detectors_are_found_beside_their_class_with_their_class_count(build, name, classes) -> None:
    """SSD is in detection.ssd, ssdlite320_* in detection.ssdlite; heads output anchors x classes."""
    with torch.device("meta"):
        model = build()
    spec = describe_unbuilt(model)
    found = identify_base(spec["base"], spec["base_shapes"])
    assert found is not None and (found["name"], found["num_classes"]) == (f"torchvision:{name}", classes)


@pytest.mark.parametrize(
    "build",
    [
        lambda: torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            num_classes=3, weights_backbone=None, min_size=128, max_size=160, box_score_thresh=0.0,
            box_detections_per_img=7,
        ),
        lambda: torchvision.models.detection.retinanet_resnet50_fpn(
            num_classes=3, weights_backbone=None, min_size=96, score_thresh=0.3, detections_per_img=11
        ),
    ],
    ids=["faster-rcnn", "retinanet"],
)  # fmt: skip
def test_a_detectors_input_size_and_thresholds_are_kept(build) -> None:
    """They live in plain attributes, not tensor shapes: such a model matched the default builder and
    reloaded resizing to 800 px and keeping 100 boxes."""
    with torch.device("meta"):
        model = build()
    spec = describe_unbuilt(model)
    found = identify_base(spec["base"], spec["base_shapes"])
    assert found is not None
    from netsculpt.models import create_model

    with torch.device("meta"):
        rebuilt = create_model(
            found["name"],
            num_classes=found["num_classes"],
            in_channels=found["in_channels"],
            **found["kwargs"],
        )
    assert rebuilt.transform.min_size == model.transform.min_size
    assert rebuilt.transform.max_size == model.transform.max_size
    from netsculpt.spec import structure_fingerprint

    assert structure_fingerprint(rebuilt) == structure_fingerprint(model)


def test_a_builder_that_needs_real_tensors_still_builds_without_weights() -> None:
    """RegNet works its widths out with tensors, which fails on the meta device; the CPU fallback built
    every RegNet candidate for real (regnet_y_128gf: 644 M parameters, 3.5 GB to save a 4 M model)."""
    from netsculpt.models.identify import _build

    big = _build("torchvision:regnet_y_128gf", 10, 3)
    assert big is not None
    assert all(t.device.type == "meta" for t in [*big.parameters(), *big.buffers()])
    assert sum(p.numel() for p in big.parameters()) > 600_000_000
    assert torch.nn.Module.register_parameter.__qualname__ == "Module.register_parameter"  # put back


def test_an_option_a_detector_fixes_itself_is_a_config_error_naming_it() -> None:
    """SSDlite sets its own min_size: passing one raised a TypeError from inside torchvision."""
    from netsculpt.errors import ConfigError
    from netsculpt.models import create_model

    with pytest.raises(ConfigError, match=r"does not take these options \(min_size\)"):
        create_model("torchvision:ssdlite320_mobilenet_v3_large", num_classes=11, min_size=64)
