from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.models import LeNet5, create_model, model_input_shape


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_matches_caffe_lenet() -> None:
    # conv1 20x1x5x5 + 20, conv2 50x20x5x5 + 50, fc1 800x500 + 500, fc2 500x10 + 10 (Caffe LeNet, as in HRel)
    expected = (20 * 1 * 25 + 20) + (50 * 20 * 25 + 50) + (800 * 500 + 500) + (500 * 10 + 10)
    assert expected == 431_080
    assert count(create_model("lenet5", num_classes=10, in_channels=1)) == expected


def test_default_input_is_one_mnist_digit() -> None:
    assert model_input_shape("lenet5") == (1, 1, 28, 28)


def test_layer_widths_are_the_caffe_ones() -> None:
    model = LeNet5()
    assert (model.conv1.out_channels, model.conv2.out_channels, model.fc1.out_features) == (20, 50, 500)
    assert model.fc1.in_features == 800  # 50 channels x 4 x 4 after two conv+pool stages on 28x28


def test_other_input_size_sets_fc1_width() -> None:
    model = create_model("lenet5", input_size=32).eval()
    # 32 → conv 28 → pool 14 → conv 10 → pool 5: 50 * 5 * 5 inputs to fc1
    assert model.fc1.in_features == 50 * 5 * 5
    out = model(torch.randn(3, *model_input_shape("lenet5", image_size=32)[1:]))
    assert out.shape == (3, 10)


def test_too_small_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="input_size >= 16"):
        create_model("lenet5", input_size=12)
