from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models import create_model, model_input_shape


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width_mult", [0.5, 1.0, 1.4])
def test_same_parameters_as_imagenet_mobilenetv2(width_mult: float) -> None:
    """The CIFAR version changes strides only, so its weights match torchvision's network exactly."""
    ours = create_model("mobilenetv2_cifar", num_classes=1000, width_mult=width_mult)
    reference = torchvision.models.mobilenet_v2(num_classes=1000, width_mult=width_mult)
    assert count(ours) == count(reference)


def test_paper_parameter_count() -> None:
    # Sandler et al. 2018, Table 4: 3.4M parameters for 1000 classes (torchvision's network, layer for layer
    # the same, has 3,504,872); we ask for the paper's figure within 5%
    params = count(create_model("mobilenetv2_cifar", num_classes=1000))
    assert abs(params - 3.4e6) / 3.4e6 < 0.05


def test_downsamples_eight_times_on_cifar() -> None:
    model = create_model("mobilenetv2_cifar").eval()
    with torch.no_grad():
        features = model.features(model.stem(torch.randn(1, *model_input_shape("mobilenetv2_cifar")[1:])))
    assert features.shape[-2:] == (4, 4)  # 32 / 8: stem and second stage keep stride 1 for 32x32 images


def test_residuals_where_shapes_match() -> None:
    model = create_model("mobilenetv2_cifar")
    # stage repeats (1, 2, 3, 4, 3, 3, 1): every block but the first of each stage is residual → 10
    assert sum(block.use_residual for block in model.features) == 10


def test_bad_width_is_refused() -> None:
    with pytest.raises(ConfigError, match="width_mult"):
        create_model("mobilenetv2_cifar", width_mult=0)
