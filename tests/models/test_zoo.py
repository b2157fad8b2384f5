"""Every registered zoo model builds and runs; driven by the registry so new entries are tested at once."""

from __future__ import annotations

import pytest
import torch
import torch.fx

from netsculpt.models import create_model, list_models, model_input_shape
from netsculpt.models.dense import DENSE_MODELS

ZOO = [name for name in list_models() if name not in DENSE_MODELS]  # classifiers; dense: test_dense_models


def test_zoo_holds_the_documented_models() -> None:
    expected = {
        "lenet5",
        "vgg16_bn_cifar",
        "resnet20_cifar",
        "resnet56_cifar",
        "resnet110_cifar",
        "mobilenetv2_cifar",
    }
    assert expected <= set(ZOO)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize(("num_classes", "in_channels"), [(None, None), (7, 1), (100, 4)])
def test_builds_and_gives_finite_logits(name: str, num_classes: int | None, in_channels: int | None) -> None:
    model = create_model(name, num_classes=num_classes, in_channels=in_channels).eval()
    shape = model_input_shape(name, in_channels=in_channels)
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        out = model(x)
    classes = 10 if num_classes is None else num_classes  # every zoo entry defaults to 10 classes
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ZOO)
def test_train_mode_backward_reaches_every_parameter(name: str) -> None:
    """A training step must update every weight: an unused parameter would be a wiring bug."""
    model = create_model(name).train()
    x = torch.randn(2, *model_input_shape(name)[1:])
    model(x).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("name", ZOO)
def test_no_inplace_activations(name: str) -> None:
    """Hook-based importance criteria read conv outputs; an in-place ReLU would overwrite them."""
    model = create_model(name)
    inplace = [n for n, m in model.named_modules() if getattr(m, "inplace", False)]
    assert inplace == []


@pytest.mark.parametrize("name", ZOO)
def test_same_seed_same_weights(name: str) -> None:
    torch.manual_seed(1)
    first = create_model(name).state_dict()
    torch.manual_seed(1)
    second = create_model(name).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", ZOO)
def test_traceable_with_torch_fx(name: str) -> None:
    """The channel graph is built with torch.fx: every zoo model must trace and compute the same logits."""
    model = create_model(name).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(model_input_shape(name))
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))
