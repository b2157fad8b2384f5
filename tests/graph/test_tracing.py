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


def test_ignored_takes_one_name_or_module_and_refuses_a_foreign_module() -> None:
    """A string was read a character at a time (ignored="conv2" failed "ignored module 'c' is not in the
    model"; in a Sequential, ignored="10" kept layer 0 whole and pruned layer 10)."""
    layers = [("conv1", nn.Conv2d(3, 8, 3)), ("conv2", nn.Conv2d(8, 8, 3)), ("conv3", nn.Conv2d(8, 8, 3))]
    model = nn.Sequential(collections.OrderedDict([*layers, ("head", nn.Conv2d(8, 4, 1))]))
    x = torch.randn(1, 3, 12, 12)
    by_name = ns.prune(model, x, ratio=0.5, ignored="conv2", round_to=1)
    by_module = ns.prune(model, x, ratio=0.5, ignored=model.conv2, round_to=1)
    for small in (by_name, by_module):  # conv2 keeps its inputs and outputs; conv3's outputs are pruned
        assert (small.conv1.out_channels, small.conv2.out_channels, small.conv3.out_channels) == (8, 8, 4)
    with pytest.raises(ns.errors.PruningError, match="not a module of this model"):
        ns.prune(model, x, ratio=0.5, ignored=[nn.Conv2d(1, 1, 1)])


@pytest.mark.parametrize("make", [torch.jit.script, lambda m: torch.jit.trace(m, torch.randn(1, 3, 16, 16))])
def test_a_torchscript_model_is_refused_with_the_module_to_pass(make) -> None:
    model = make(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval())
    with pytest.raises(TraceError, match=r"TorchScript .* pass that, then script the pruned result"):
        ns.prune(model, torch.randn(1, 3, 16, 16), ratio=0.5)


class _KeywordsOnly(nn.Module):
    """forward(**inputs), as Hugging Face vision models take their batch."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.o = nn.Conv2d(3, 16, 3), nn.Conv2d(16, 4, 1)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.o(self.c(inputs["pixel_values"]).relu())


def test_a_keyword_only_forward_is_told_to_use_a_wrapper_not_to_check_shapes() -> None:
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(TraceError, match=r"forward\(\*\*batch\)\) needs a wrapper module"):
        ns.prune(_KeywordsOnly(), {"pixel_values": x}, ratio=0.5)
    with pytest.raises(TraceError, match=r"not take the example inputs .* as positional arguments.*wrap it"):
        ns.prune(_KeywordsOnly(), ({"pixel_values": x},), ratio=0.5)


class _FailsOnShape(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a 4D batch, got {tuple(x.shape)}")
        return self.conv(x)


def test_a_failing_forward_chains_once_to_the_models_own_error() -> None:
    # before: the real-arithmetic retry ran inside the shapes-only attempt's handler, so its error was
    # chained to a first copy of the same TraceError (two tracebacks of one failure)
    with pytest.raises(TraceError, match=r"expected a 4D batch") as info:
        ns.trace(_FailsOnShape(), torch.randn(3, 8, 8))
    cause = info.value.__cause__
    assert isinstance(cause, ValueError) and cause.__context__ is None and cause.__cause__ is None


class _Negate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.neg()


def test_a_failing_channel_rule_is_reported_at_the_call_that_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forward runs on after a rule fails, so the module stack has moved on by the time the error is
    raised: it used to blame `<root>` whatever module the call was in."""
    from netsculpt.graph import registry

    def broken(ctx: object, call: object) -> None:
        raise ValueError("boom")

    monkeypatch.setitem(registry.FUNCTION_RULES, torch.Tensor.neg, broken)
    model = nn.Sequential(nn.Linear(4, 4), _Negate(), nn.Linear(4, 2)).eval()
    with pytest.raises(
        TraceError, match=r"following channels through `Tensor\.neg` in `1`: ValueError: boom"
    ):
        ns.trace(model, torch.randn(2, 4), execute="real")
