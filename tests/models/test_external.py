"""torchvision:NAME and timm:NAME: random init, num_classes and in_channels honoured."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from netsculpt.errors import ConfigError, UnknownNameError
from netsculpt.models import create_model, model_input_shape


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_torchvision_gray_ten_classes(arch: str) -> None:
    model = create_model(f"torchvision:{arch}", num_classes=10, in_channels=1).eval()
    reference = torchvision.models.get_model(arch, weights=None, num_classes=10)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    ref_first = next(m for m in reference.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 1
    # only the stem conv changed: it lost two of its three input-channel slices of weights
    assert count(reference) - count(model) == 2 * ref_first.weight[:, 0].numel()
    with torch.no_grad():  # these three run on small images, which keeps the test fast
        out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_torchvision_defaults_are_imagenet_sized() -> None:
    model = create_model("torchvision:squeezenet1_1")
    assert model.classifier[1].out_channels == 1000
    assert model.features[0].in_channels == 3


def test_googlenet_returns_plain_logits_in_train_mode() -> None:
    # aux heads are off by default so every model gives a tensor in train and eval mode alike
    model = create_model("torchvision:googlenet", num_classes=10).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


# One of each family whose stem or input-size needs differ; built on the meta device (shapes only, no
# memory or compute), so even large models are checked in well under a second each.
META_SWEEP = [
    "inception_v3",
    "googlenet",
    "vit_b_32",
    "maxvit_t",
    "swin_t",
    "convnext_tiny",
    "densenet121",
    "efficientnet_b0",
    "mnasnet0_5",
    "squeezenet1_0",
    "alexnet",
    "vgg11_bn",
]


@pytest.mark.slow
@pytest.mark.parametrize("arch", META_SWEEP)
def test_torchvision_in_channels_and_input_shape_on_meta(arch: str) -> None:
    with torch.device("meta"):
        model = create_model(f"torchvision:{arch}", num_classes=10, in_channels=1).eval()
        out = model(torch.empty(model_input_shape(f"torchvision:{arch}", in_channels=1)))
    assert out.shape == (1, 10)


def test_vit_in_channels_at_a_custom_image_size() -> None:
    with torch.device("meta"):
        model = create_model("torchvision:vit_b_32", num_classes=10, in_channels=2, image_size=64).eval()
        out = model(torch.empty(model_input_shape("torchvision:vit_b_32", in_channels=2, image_size=64)))
    assert out.shape == (1, 10)


@pytest.mark.slow  # importing timm takes ~10 s on a cold cache
@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv3_small_050", "efficientnet_b0"])
def test_timm_gray_ten_classes(arch: str) -> None:
    model = create_model(f"timm:{arch}", num_classes=10, in_channels=1).eval()
    assert model_input_shape(f"timm:{arch}", in_channels=1) == (1, 1, *model.pretrained_cfg["input_size"][1:])
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.slow
def test_timm_input_shape_follows_pretrained_config() -> None:
    assert model_input_shape("timm:inception_v3") == (1, 3, 299, 299)  # timm's Inception v3 config
    assert model_input_shape("timm:vit_base_patch16_384") == (1, 3, 384, 384)  # size is in the name


@pytest.mark.slow
def test_timm_unknown_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: resnet18"):
        create_model("timm:resnet81")
    with pytest.raises(UnknownNameError, match=r"resnet18\.a1_in1k"):
        create_model("timm:resnet18.nope")
    with pytest.raises(ConfigError, match="checkpoint=PATH"):
        create_model("timm:resnet18", pretrained=True)


@pytest.mark.parametrize("name", ["r3d_18", "raft_small"])
def test_video_and_flow_names_say_to_pass_the_module(name: str) -> None:
    """They are torchvision models, so 'torchvision has no ... model' (with no close match) misled."""
    with pytest.raises(UnknownNameError, match=rf"video or optical-flow model.*get_model\('{name}'"):
        create_model(f"torchvision:{name}")
