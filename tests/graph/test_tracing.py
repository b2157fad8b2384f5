"""What tracing refuses before running the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import TraceError


def _convs() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).eval()


def test_a_compiled_model_is_refused_with_the_module_to_pass_instead() -> None:
    compiled = torch.compile(_convs())  # compiled lazily: nothing runs dynamo here
    x = torch.randn(1, 3, 16, 16)
    for call in (lambda: ns.trace(compiled, x), lambda: ns.prune(compiled, x, ratio=0.5)):
        with pytest.raises(TraceError, match=r"compiled with torch.compile.*compiled\._orig_mod"):
            call()
    small = ns.prune(compiled._orig_mod, x, ratio=0.5, round_to=1)
    assert small[0].out_channels == 4


def test_a_compiled_submodule_is_named() -> None:
    model = nn.Sequential(_convs(), nn.ReLU())
    model[0] = torch.compile(model[0])
    with pytest.raises(TraceError, match=r"`0` of the model .*model\[0\] = model\[0\]\._orig_mod"):
        ns.trace(model, torch.randn(1, 3, 16, 16))
