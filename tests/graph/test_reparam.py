"""Layers whose weight is computed in forward (weight norm, torch.nn.utils.prune masks,
parametrizations) are named with the call that removes them, instead of being pinned silently or
failing inside copy.deepcopy."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune
from torch.nn.utils.parametrizations import weight_norm

import netsculpt as ns
from netsculpt.errors import NetsculptWarning, PruningError

X = torch.randn(2, 3, 8, 8)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )  # fmt: skip


def _trained(model: nn.Module) -> nn.Module:
    model(X).sum().backward()  # a forward with grad, as training leaves it (the hooks' weight is non-leaf)
    return model.eval()


def test_torch_prune_mask_is_refused_with_the_remove_call_and_the_fix_works() -> None:
    model = _net()
    torch_prune.l1_unstructured(model[0], "weight", amount=0.3)
    _trained(model)
    with pytest.raises(PruningError, match=r"`0` \(a torch.nn.utils.prune mask on `weight`\)") as err:
        ns.prune(model, X, ratio=0.5, round_to=1)
    assert "torch.nn.utils.prune.remove(model.get_submodule('0'), 'weight')" in str(err.value)
    torch_prune.remove(model.get_submodule("0"), "weight")
    assert ns.prune(model, X, ratio=0.5, round_to=1)[0].out_channels == 8


def test_hook_weight_norm_is_refused_with_the_remove_call_and_the_fix_works() -> None:
    model = _net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates the hook form
        model[2] = torch.nn.utils.weight_norm(model[2])
    _trained(model)
    with pytest.raises(PruningError, match=r"remove_weight_norm\(model.get_submodule\('2'\), 'weight'\)"):
        ns.prune(model, X, ratio=0.5, round_to=1)
    torch.nn.utils.remove_weight_norm(model.get_submodule("2"), "weight")
    assert ns.prune(model, X, ratio=0.5, round_to=1)[2].out_channels == 8


def test_parametrized_weight_norm_is_warned_about_and_the_fix_works() -> None:
    model = _net()
    model[0] = weight_norm(model[0])
    _trained(model)
    named = r"`0` \(torch.nn.utils.parametrizations \(weight_norm\)"
    with pytest.warns(NetsculptWarning, match=named) as rec:
        small = ns.prune(model, X, ratio=0.5, round_to=1)
    assert small[0].weight.shape[0] == 16  # kept, as the warning says
    assert "remove_parametrizations(model.get_submodule('0'), 'weight')" in str(rec[0].message)
    expected = model(X)
    parametrize.remove_parametrizations(model.get_submodule("0"), "weight")
    assert torch.allclose(model(X), expected, atol=1e-6)  # "the layer computes the same function after"
    assert ns.prune(model, X, ratio=0.5, round_to=1)[0].out_channels == 8


def test_ignored_layers_are_not_warned_about() -> None:
    model = _net()
    model[0] = weight_norm(model[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetsculptWarning)
        ns.plan_pruning(model.eval(), X, ratio=0.5, round_to=1, ignored=["0"])
