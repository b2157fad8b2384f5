"""What tracing refuses before running the model."""

from __future__ import annotations

import collections
import dataclasses

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


class _ModelOutput(collections.OrderedDict):
    """Like Hugging Face's ModelOutput: a dict subclass pytree leaves whole."""


@dataclasses.dataclass
class _Out:
    logits: torch.Tensor


class _Holder:
    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


class _Wrapped(nn.Module):
    def __init__(self, wrap) -> None:
        super().__init__()
        self.conv, self.fc, self.wrap = nn.Conv2d(3, 16, 3, padding=1), nn.Linear(16, 10), wrap

    def forward(self, x: torch.Tensor):
        return self.wrap(self.fc(self.conv(x).relu().mean((2, 3))))


@pytest.mark.parametrize(
    "wrap", [_Out, lambda y: _ModelOutput(logits=y), _Holder], ids=["dataclass", "dict-subclass", "object"]
)
def test_an_output_inside_a_dataclass_or_object_keeps_its_size(wrap) -> None:
    """Its logits were pruned like a hidden layer (10 classes became 5), with no error."""
    small = ns.prune(_Wrapped(wrap).eval(), torch.randn(1, 3, 16, 16), ratio=0.5)
    assert small.fc.out_features == 10 and small.conv.out_channels == 8
