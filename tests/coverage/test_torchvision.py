"""Every torchvision 0.29 classification model prunes at 50% per group, exactly (issue: coverage)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from tests.coverage._check import check_prunes_exactly

MODELS = torchvision.models.list_models(module=torchvision.models)

# smallest convenient input each family accepts (ViTs are rebuilt for it; MaxViT is fixed at 224)
SIZE = {"inception_v3": 96, "maxvit_t": 224, "vit_h_14": 56}
BUILD = {name: {"image_size": SIZE.get(name, 64)} for name in MODELS if name.startswith("vit_")}
# more than ~100M parameters: several seconds just to initialise; still run in CI
HEAVY = {
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "regnet_y_128gf",
    "regnet_y_32gf",
    "regnet_x_32gf",
    "convnext_large",
    "efficientnet_v2_l",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "regnet_y_16gf",
    "regnet_x_16gf",
    "resnext101_64x4d",
    "wide_resnet101_2",
    "swin_v2_b",
    "swin_b",
}


def test_the_list_is_the_whole_zoo() -> None:
    assert len(MODELS) == 80  # torchvision 0.29 ships 80 classification models


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in MODELS]
)
def test_torchvision_model_prunes_exactly(name: str) -> None:
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    model = torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs, **BUILD.get(name, {}))
    size = SIZE.get(name, 64)
    result = check_prunes_exactly(model, torch.randn(1, 3, size, size))
    assert result["macs_ratio"] < 0.95
