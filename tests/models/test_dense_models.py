"""The zoo's detector and segmenter for the digits canvases build by name and keep torchvision's API."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.models import create_model, model_input_shape


def test_fcos_slim_detects_and_returns_losses_in_training_mode() -> None:
    torch.manual_seed(0)
    model = create_model("fcos_slim", image_size=64).eval()
    assert model_input_shape("fcos_slim") == (1, 1, 128, 128)
    with torch.no_grad():
        (out,) = model([torch.rand(1, 64, 64)])
    assert set(out) == {"boxes", "scores", "labels"}
    model.train()
    target = {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([3])}
    losses = model([torch.rand(1, 64, 64)], [target])
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"}
    assert not [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
    torch.manual_seed(0)
    again = dict(create_model("fcos_slim", image_size=64).named_parameters())
    assert all(torch.equal(v, again[k]) for k, v in model.named_parameters())  # same seed, same weights


def test_lraspp_gray_returns_a_class_map() -> None:
    model = create_model("lraspp_gray").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 11, 64, 64)


def test_a_torchvision_segmenter_takes_grey_images() -> None:
    """Segmenters do not normalise inside forward (detectors do): their first conv adapts, so they run
    on the one-channel digits_seg canvases; they were refused with the detectors' reason."""
    import netsculpt as ns

    model = ns.create_model("torchvision:lraspp_mobilenet_v3_large", num_classes=3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64))["out"].shape == (1, 3, 64, 64)
    with pytest.raises(ConfigError, match="in_channels must be 3"):
        ns.create_model("torchvision:fcos_resnet50_fpn", num_classes=3, in_channels=1)
