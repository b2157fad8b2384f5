"""Layer rules: padding modes and depthwise transposed convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.graph import trace
from netsculpt.surgery.verify import pruning_error, random_plan

TOLERANCE = 1e-5


class PaddedConvs(nn.Module):
    """CycleGAN-style: a pad layer (or a conv's own ``padding_mode``) before each conv."""

    def __init__(self, mode: str, own: bool) -> None:
        super().__init__()
        pad = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "circular": nn.CircularPad2d}
        self.pad = nn.Identity() if own else pad[mode](1)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, padding_mode=mode) if own else nn.Conv2d(8, 8, 3)
        self.o = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        return self.o(torch.relu(self.b(self.pad(y))))


@pytest.mark.parametrize("own", [False, True], ids=["pad-layer", "conv-padding-mode"])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_that_copies_a_channel_keeps_it_prunable_and_exact(mode: str, own: bool) -> None:
    model = PaddedConvs(mode, own).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    assert graph.group("a").n_prunable == 8, graph
    assert pruning_error(model, graph, random_plan(graph, 0.5), x) <= TOLERANCE


def test_nonzero_constant_padding_still_pins() -> None:
    class ConstPad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(nn.functional.pad(self.a(x), (1, 1, 1, 1), value=0.5))

    graph = trace(ConstPad().eval(), torch.randn(1, 3, 8, 8))
    assert graph.group("a").n_prunable == 0
    assert "not zero when masked" in graph.group("a").reasons[0]


class DepthwiseTransposed(nn.Module):
    """A depthwise ``ConvTranspose2d`` (groups = in channels) upsampling a conv's output."""

    def __init__(self, mult: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.t = nn.ConvTranspose2d(8, 8 * mult, 4, stride=2, padding=1, groups=8)
        self.o = nn.Conv2d(8 * mult, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(torch.relu(self.t(torch.relu(self.a(x)))))


@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_transposed_conv_loses_whole_groups_exactly(mult: int) -> None:
    import netsculpt as ns

    model = DepthwiseTransposed(mult).eval()
    x = torch.randn(1, 3, 16, 16)
    graph = trace(model, x)
    group = graph.group("a")  # input channel k is group k: one channel with the conv before it
    assert group.size == 8 and group.n_prunable == 8
    assert {("t.weight", 0), ("t.bias", 0)} <= {(m.name, m.dim) for m in group.members}
    assert pruning_error(model, graph, random_plan(graph, 0.5), x) <= TOLERANCE
    small = ns.prune(model, x, ratio=0.5, round_to=1)
    assert small.t.in_channels == small.t.groups == 4 and small.t.out_channels == 4 * mult
    assert small(x).shape == model(x).shape


class InstanceNormed(nn.Module):
    """RAFT's feature-encoder block: conv -> InstanceNorm2d (no affine) -> ReLU -> conv."""

    def __init__(self, **norm: bool) -> None:
        super().__init__()
        self.a, self.norm, self.b = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.InstanceNorm2d(8, **norm),
            nn.Conv2d(8, 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.norm(self.a(x))))


def test_instance_norm_on_its_own_statistics_keeps_a_masked_channel_zero() -> None:
    """(0 - 0) / sqrt(0 + eps) = 0: the conv before it prunes exactly (it was pinned as 'not zero when
    masked'); with running statistics in eval mode a zero channel becomes -mean / std, so it stays pinned."""
    torch.manual_seed(0)
    model, x = InstanceNormed().eval(), torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    assert next(g for g in graph.groups if g.id == "a").n_prunable == 8
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) <= TOLERANCE
    running = InstanceNormed(track_running_stats=True).eval()
    with torch.no_grad():
        running.norm.running_mean.uniform_(0.5, 1.0)  # a nonzero mean: zero in, nonzero out
    assert next(g for g in trace(running, x).groups if g.id == "a").n_prunable == 0


class _TorchNorm(nn.Module):
    """A norm layer calling ``torch.batch_norm`` / ``torch.instance_norm`` directly: their tensors come in
    the order (input, weight, bias, running_mean, running_var), not F.batch_norm's."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.weight, self.bias = nn.Parameter(torch.rand(8) + 0.5), nn.Parameter(torch.rand(8) - 0.5)
        self.register_buffer("running_mean", torch.rand(8) - 0.5)
        self.register_buffer("running_var", torch.rand(8) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn, own_stats = (torch.batch_norm, False) if self.kind == "batch" else (torch.instance_norm, True)
        return fn(x, self.weight, self.bias, self.running_mean, self.running_var, own_stats, 0.1, 1e-5, False)


@pytest.mark.parametrize("kind", ["batch", "instance"])
def test_torch_namespace_norms_read_their_own_argument_order(kind: str) -> None:
    """Read in F's order, the affine of torch.instance_norm was taken for statistics (sliced, never zeroed
    by masking), so a pruned channel's bias went missing from the pruned model: relative error ~0.16."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), _TorchNorm(kind), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    members = {(m.name, m.role) for g in graph.groups for m in g.members}
    assert ("1.weight", "out") in members and ("1.running_mean", "stat") in members
    assert next(g for g in graph.groups if g.id == "0").n_prunable == 8
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) <= TOLERANCE
