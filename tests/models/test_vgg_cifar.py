from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models import create_model, model_input_shape

# 3x3 conv weights of the 13 layers (cfg 64,64,M,128,128,M,256x3,M,512x3,M,512x3,M), no bias (BN follows)
WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
CONV_WEIGHTS = sum(9 * cin * cout for cin, cout in zip([3, *WIDTHS[:-1]], WIDTHS))
BN2D = 2 * sum(WIDTHS)
BN_MLP_HEAD = (512 * 512 + 512) + 2 * 512 + (512 * 10 + 10)  # Linear, BatchNorm1d, Linear for 10 classes


def count(model: nn.Module, kinds: tuple[type[nn.Module], ...] = (nn.Module,)) -> int:
    return sum(
        p.numel() for m in model.modules() if isinstance(m, kinds) for p in m.parameters(recurse=False)
    )


def test_has_thirteen_convs_with_bn() -> None:
    model = create_model("vgg16_bn_cifar")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == WIDTHS
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5


def test_parameter_count() -> None:
    model = create_model("vgg16_bn_cifar")
    assert count(model) == CONV_WEIGHTS + BN2D + BN_MLP_HEAD == 14_987_722
    # HRank / CHIP / HRel tables give VGG-16 on CIFAR-10 as 14.98M, counting conv and linear layers only
    assert round(count(model, (nn.Conv2d, nn.Linear)) / 1e6, 2) == 14.98


def test_linear_classifier_variant() -> None:
    model = create_model("vgg16_bn_cifar", classifier="linear")
    assert count(model) == CONV_WEIGHTS + BN2D + 512 * 10 + 10
    assert model(torch.randn(2, *model_input_shape("vgg16_bn_cifar")[1:])).shape == (2, 10)


def test_larger_input_still_works() -> None:
    model = create_model("vgg16_bn_cifar").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_unknown_classifier_is_refused() -> None:
    with pytest.raises(ConfigError, match="bn_mlp"):
        create_model("vgg16_bn_cifar", classifier="mlp")
