"""Explaining a model whose lazy layers have seen no input: refused before the forward that would give the
user's model random weights (before: grad_cam / chip_maps / explain ran and materialised it silently)."""

from __future__ import annotations

import pytest
import torch

from netsculpt.errors import ConfigError
from netsculpt.explain import chip_maps, default_layer, grad_cam, independence
from netsculpt.explain.job import Settings, explain
from tests._lazy import X, Y, assert_refused, materialised_lazy_net

CALLS = {
    "grad_cam": lambda m: grad_cam(m, X, "conv2"),
    "chip_maps": lambda m: chip_maps(m, X, "conv2", torch.ones(16)),
    "independence": lambda m: independence(m, X, "conv2"),
    "explain": lambda m: explain({"baseline": m}, X, Y, (X, Y), Settings(layers=["conv2"])),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_explaining_a_lazy_model_is_refused_and_leaves_it_lazy(call: str) -> None:
    assert_refused(CALLS[call], "explain", ConfigError)


def test_choosing_layers_by_a_forward_is_refused_too() -> None:
    assert_refused(lambda m: default_layer(m, tuple(X.shape)), "choose layers to explain in", ConfigError)


def test_once_materialised_it_is_explained() -> None:
    model = materialised_lazy_net()
    assert grad_cam(model.eval(), X, "conv2").maps.shape == (4, 8, 8)
