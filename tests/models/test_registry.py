from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from netsculpt.models import MODELS, ModelSpec, create_model, list_models, model_input_shape, register_model


@pytest.fixture
def temporary_name() -> Iterator[str]:
    """A model name that is removed from the global registry after the test."""
    name = "tiny_test_net"
    yield name
    MODELS._entries.pop(name, None)


def test_register_and_build(temporary_name: str) -> None:
    @register_model(temporary_name, input_shape=(2, 8, 8), num_classes=3, in_channels=2)
    def build(num_classes: int, in_channels: int, hidden: int = 4) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, hidden, 3), nn.Flatten(), nn.LazyLinear(num_classes))

    spec = MODELS.get(temporary_name)
    assert isinstance(spec, ModelSpec)
    assert (spec.input_shape, spec.num_classes, spec.in_channels, spec.builder) == ((2, 8, 8), 3, 2, build)
    assert temporary_name in list_models()
    assert model_input_shape(temporary_name) == (1, 2, 8, 8)
    model = create_model(temporary_name, hidden=5)
    assert model(torch.randn(1, 2, 8, 8)).shape == (1, 3)
    assert model[0].out_channels == 5


def test_input_shape_must_agree_with_in_channels(temporary_name: str) -> None:
    with pytest.raises(ValueError, match="in_channels"):
        register_model(temporary_name, input_shape=(3, 8, 8), in_channels=1)


def test_external_prefixes_are_reserved() -> None:
    with pytest.raises(ValueError, match="reserved"):
        register_model("torchvision:mine", input_shape=(3, 8, 8))


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("lenet5", input_shape=(1, 28, 28), in_channels=1)(
            lambda num_classes, in_channels: None
        )


def test_list_models_pattern() -> None:
    assert list_models("resnet*") == ["resnet110_cifar", "resnet20_cifar", "resnet56_cifar"]
    assert list_models("nothing*") == []
    assert all(":" not in name for name in list_models())


@pytest.mark.slow  # importing timm takes ~10 s on a cold cache
def test_list_models_with_external() -> None:
    names = list_models(include_external=True)
    assert set(list_models()) <= set(names)
    assert "torchvision:resnet18" in names
    assert "timm:efficientnet_b0" in names
    tv = list_models("torchvision:*", include_external=True)
    # torchvision 0.29's 80 classification, 12 detection and 6 segmentation models
    assert len(tv) == 80 + 12 + 6
    assert "torchvision:fcos_resnet50_fpn" in tv and "torchvision:lraspp_mobilenet_v3_large" in tv


def test_list_models_pattern_must_be_a_string() -> None:
    from netsculpt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ns.list_models: pattern= takes a shell-style pattern"):
        list_models(3)  # type: ignore[arg-type]
