"""Element-wise ops whose second operand is a tensor of the model (buffer, parameter, tensor bound)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.graph import trace
from netsculpt.surgery.verify import pruning_error, random_plan

TOLERANCE = 1e-5


class PositionEncoding(nn.Module):
    """A fixed sin-cos encoding stored as a (1, C, H, W) buffer, added after a conv."""

    def __init__(self, c: int = 8, hw: int = 8) -> None:
        super().__init__()
        self.a, self.o = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, 3, 1)
        pe = torch.sin(torch.arange(c)[:, None, None] * 0.3 + torch.arange(hw * hw).view(1, hw, hw) * 0.1)
        self.register_buffer("pos", pe[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(torch.relu(self.a(x)) + self.pos)


class BufferAffine(nn.Module):
    """``x * g + b`` (or ``x / g``) with per-channel buffers: a frozen affine."""

    def __init__(self, c: int = 8, divide: bool = False, parameter: bool = False) -> None:
        super().__init__()
        self.a, self.o, self.divide = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, 3, 1), divide
        g, b = torch.rand(1, c, 1, 1) + 0.5, torch.randn(1, c, 1, 1)
        if parameter:
            self.g, self.b = nn.Parameter(g), nn.Parameter(b)
        else:
            self.register_buffer("g", g)
            self.register_buffer("b", b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        return self.o(y / self.g if self.divide else y * self.g + self.b)


@pytest.mark.parametrize(
    "model",
    [
        PositionEncoding(),
        BufferAffine(),
        BufferAffine(divide=True),
        BufferAffine(divide=True, parameter=True),
    ],
    ids=["position-buffer", "buffer-affine", "buffer-divisor", "parameter-divisor"],
)
def test_per_channel_tensor_operands_are_sliced_and_masked_with_their_channel(model: nn.Module) -> None:
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    assert [g.id for g in graph.prunable_groups] == ["a"]
    plan = random_plan(graph, 0.5)
    err = pruning_error(model, graph, plan, x)
    assert err <= TOLERANCE  # NaN (a zeroed divisor) fails too


class Clamped(nn.Module):
    """A conv clamped by tensor bounds: a shared scalar floor, or PACT's per-channel clipping level."""

    def __init__(self, bounds: str) -> None:
        super().__init__()
        self.a, self.o, self.bounds = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 1), bounds
        self.alpha = nn.Parameter(torch.rand(1, 8, 1, 1) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        if self.bounds == "scalar-floor":
            y = y.clamp(min=torch.tensor(0.1))
        elif self.bounds == "pact-zeros-floor":
            y = torch.clamp(y, min=torch.zeros(()), max=self.alpha)
        else:  # "pact-relu"
            y = torch.clamp(torch.relu(y), max=self.alpha)
        return self.o(y)


@pytest.mark.parametrize(
    ("bounds", "prunable"), [("scalar-floor", False), ("pact-zeros-floor", False), ("pact-relu", True)]
)
def test_tensor_clamp_bounds_keep_zero_only_when_provably_so(bounds: str, prunable: bool) -> None:
    model = Clamped(bounds).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    group = graph.group("a")
    if not prunable:  # a masked channel becomes the floor (0.1, or a constant netsculpt cannot read)
        assert group.n_prunable == 0
        assert "not zero when masked" in group.reasons[0]
        return
    assert group.n_prunable == 8
    assert ("alpha", 1) in {(m.name, m.dim) for m in group.members}
    plan = random_plan(graph, 0.5)
    assert pruning_error(model, graph, plan, x) <= TOLERANCE


class ScalarAffine(nn.Module):
    """HGNetV2's LearnableAffineBlock (``scale * x + bias``, both scalars) between a conv, a ReLU and the
    next layer (a conv, or an einsum with a weight): the scalar bias makes a masked channel a constant."""

    def __init__(self, consumer: str) -> None:
        super().__init__()
        self.consumer = consumer
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.o = nn.Conv2d(8, 3, 1) if consumer == "conv" else None
        self.w = nn.Parameter(torch.randn(3, 8)) if consumer == "einsum" else None
        self.scale, self.bias = nn.Parameter(torch.ones(1)), nn.Parameter(torch.full((1,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        y = torch.relu(self.scale * y + self.bias)  # a zero-preserving op after the cause keeps its name
        return self.o(y) if self.consumer == "conv" else torch.einsum("bchw,oc->bohw", y, self.w)


@pytest.mark.parametrize("consumer", ["conv", "einsum"])
def test_not_zero_reason_names_the_call_that_made_the_channels_nonzero(consumer: str) -> None:
    """The consumer alone ("`conv2d` in `o` reads channels that are not zero") does not say what to change."""
    graph = trace(ScalarAffine(consumer).eval(), torch.randn(1, 3, 8, 8))
    group = graph.group("a")
    assert group.n_prunable == 0
    assert any("made nonzero by `Tensor.add` in `<root>`" in r for r in group.reasons), group.reasons


class BinaryMinMax(nn.Module):
    """``torch.min(a, b)`` / ``a.max(b)`` with a tensor ``b``: element-wise, as T5's position buckets use it
    (it was read as a reduction over ``dim=b`` and the trace failed)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op
        self.a, self.b, self.o = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1), nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.relu(self.a(x)), torch.relu(self.b(x))
        return self.o(torch.min(a, b) if self.op == "min" else a.max(b))


@pytest.mark.parametrize("op", ["min", "max"])
def test_min_max_of_two_tensors_is_elementwise(op: str) -> None:
    model = BinaryMinMax(op).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    group = graph.group("a")
    assert ("b.weight", 0) in {(m.name, m.dim) for m in group.members}  # one channel: a[k] with b[k]
    assert group.n_prunable == 8
    assert pruning_error(model, graph, random_plan(graph, 0.5), x) <= TOLERANCE
