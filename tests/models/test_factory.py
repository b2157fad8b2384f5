from __future__ import annotations

import numpy as np
import pytest

from netsculpt.errors import ConfigError, UnknownNameError
from netsculpt.models import create_model, model_input_shape


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("lenet5", (1, 1, 28, 28)),
        ("resnet20_cifar", (1, 3, 32, 32)),
        ("vgg16_bn_cifar", (1, 3, 32, 32)),
        ("mobilenetv2_cifar", (1, 3, 32, 32)),
        ("torchvision:resnet18", (1, 3, 224, 224)),
        ("torchvision:inception_v3", (1, 3, 299, 299)),  # torchvision's Inception v3 is built for 299x299
        ("torchvision:vit_b_16", (1, 3, 224, 224)),  # a ViT runs only at the size it was built for
    ],
)
def test_default_input_shapes(name: str, shape: tuple[int, ...]) -> None:
    assert model_input_shape(name) == shape


def test_input_shape_overrides() -> None:
    assert model_input_shape("resnet56_cifar", in_channels=1) == (1, 1, 32, 32)
    assert model_input_shape("resnet56_cifar", image_size=64) == (1, 3, 64, 64)
    assert model_input_shape("torchvision:resnet18", in_channels=1, image_size=64) == (1, 1, 64, 64)


def test_unknown_zoo_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="resnet20_cifar") as info:
        create_model("resnet20")
    assert "torchvision:NAME" in str(info.value)


def test_torchvision_name_without_prefix_gets_a_hint() -> None:
    with pytest.raises(UnknownNameError, match="'torchvision:resnet18'"):
        create_model("resnet18")


def test_unknown_torchvision_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: resnet18"):
        create_model("torchvision:resnt18")
    with pytest.raises(UnknownNameError, match="mobilenet_v3_small"):
        model_input_shape("torchvision:mobilenet_v3_smal")


def test_unknown_source_prefix() -> None:
    with pytest.raises(UnknownNameError, match="not a model source") as info:
        create_model("tv:resnet18")
    assert "'torchvision:resnet18'" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        create_model("lenet5", num_classes=bad)
    with pytest.raises(ConfigError, match="positive integer"):
        model_input_shape("lenet5", in_channels=bad)


def test_timm_takes_num_classes_zero_for_its_feature_extractor() -> None:
    pytest.importorskip("timm")
    model = create_model("timm:resnet10t", num_classes=0)
    assert type(model.fc).__name__ == "Identity" and model.num_classes == 0
    with pytest.raises(ConfigError, match=r"num_classes must be an integer >= 0, got -1"):
        create_model("timm:resnet10t", num_classes=-1)
    with pytest.raises(ConfigError, match="positive integer"):  # 0 means nothing to torchvision
        create_model("torchvision:resnet18", num_classes=0)


def test_numpy_integers_are_accepted() -> None:
    model = create_model("lenet5", num_classes=np.int64(4))
    assert model.fc2.out_features == 4


def test_unknown_option_lists_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="takes: shortcut"):
        create_model("resnet20_cifar", shortcuts="A")


def test_weights_are_never_downloaded() -> None:
    with pytest.raises(ConfigError, match="checkpoint=PATH"):
        create_model("torchvision:resnet18", weights="DEFAULT")


@pytest.mark.parametrize("name", [None, 3, ["lenet5"]])
def test_a_name_that_is_not_a_string_is_named(name: object) -> None:
    # these failed as "'NoneType' object has no attribute 'startswith'"
    with pytest.raises(ConfigError, match=r"ns.create_model: name= takes a model name: a zoo name"):
        create_model(name)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"ns.model_input_shape: name= takes a model name"):
        model_input_shape(name)  # type: ignore[arg-type]


def test_a_checkpoint_that_is_not_a_path_is_named() -> None:
    with pytest.raises(
        ConfigError, match=r"checkpoint= takes a path \(a str or pathlib.Path\); got 3 \(int\)"
    ):
        create_model("lenet5", checkpoint=3)  # type: ignore[arg-type]
