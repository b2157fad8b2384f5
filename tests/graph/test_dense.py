"""Coupling in dense-prediction models: FPN, shared heads, FrozenBatchNorm2d, GroupNorm, RoI pooling."""

from __future__ import annotations

import copy

import torch
from torch import nn

from netsculpt.graph import trace
from netsculpt.surgery import apply_plan_
from netsculpt.surgery.verify import pruning_error, random_plan
from tests.graph.dense_archs import tiny_fpn_detector


def _group_of(graph, tensor: str, dim: int = 0):
    return next(g for g in graph.groups if any(m.name == tensor and m.dim == dim for m in g.members))


def test_fpn_detector_prunes_exactly_with_structured_inputs_and_outputs() -> None:
    model, x = tiny_fpn_detector()
    graph = trace(model, x)
    # lateral convs meet in the top-down add: one group, read by both output convs
    lateral = _group_of(graph, "lateral.0.weight")
    members = {(m.name, m.dim) for m in lateral.members}
    assert {("lateral.1.weight", 0), ("output.0.weight", 1), ("output.1.weight", 1)} <= members
    # the pyramid's width is one group: both output convs, the shared tower's input and the RoI features
    fpn = _group_of(graph, "output.0.weight")
    names = {m.name for m in fpn.members}
    assert {"output.1.weight", "tower.0.weight", "roi_fc.weight"} <= names
    assert lateral.n_prunable == lateral.size == 12 and fpn.n_prunable == fpn.size == 12
    # FrozenBatchNorm2d buffers are members of the backbone's groups, which stay prunable
    backbone = _group_of(graph, "c1.0.weight")
    assert {"c1.1.weight", "c1.1.bias", "c1.1.running_mean"} <= {m.name for m in backbone.members}
    assert backbone.n_prunable == 8
    # heads are network outputs: class and box channels are pinned
    assert _group_of(graph, "cls.weight").n_prunable == 0 and _group_of(graph, "box.weight").n_prunable == 0
    plan = random_plan(graph, 0.5, seed=0)
    assert pruning_error(model, graph, plan, x) < 1e-5
    pruned = apply_plan_(copy.deepcopy(model), graph, plan)
    out = pruned(*x)
    assert out["name"] == "tiny" and [t.shape for t in out["logits"]] == [
        t.shape for t in model(*x)["logits"]
    ]


def test_shared_head_is_one_group_across_levels() -> None:
    model, x = tiny_fpn_detector()
    graph = trace(model, x)
    tower = [g for g in graph.groups if any(m.name == "tower.0.weight" and m.dim == 0 for m in g.members)]
    assert len(tower) == 1  # one conv applied to both levels: one group, not one per level
    assert len(graph.builder.module_calls["tower.0"]) == 2


def test_group_norm_loses_whole_groups_exactly() -> None:
    model, x = tiny_fpn_detector()
    graph = trace(model, x)
    tower = _group_of(graph, "tower.0.weight")
    assert tower.size == 4 and tower.n_prunable == 4  # GroupNorm(4, 16): four channels of four positions
    plan = random_plan(graph, 0.5, seed=0)
    assert len(plan.keep[tower.id]) == 2
    pruned = apply_plan_(copy.deepcopy(model), graph, plan)
    gn = pruned.tower[1]
    assert (gn.num_groups, gn.num_channels, gn.weight.shape[0]) == (2, 8, 8)
    assert pruning_error(model, graph, plan, x) < 1e-5


def test_group_norm_with_one_group_stays_inexact() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.GroupNorm(1, 8), nn.Conv2d(8, 2, 1))
    x = torch.randn(1, 3, 4, 4)
    exact, inexact = trace(model, x), trace(model, x, allow_inexact=True)
    assert exact.group("0").n_prunable == 0
    assert any("normalises over groups" in r for r in exact.group("0").reasons)
    assert inexact.group("0").n_prunable == 8


class FilledBuffer(nn.Module):
    """A zeros buffer sized by a channel count, filled by a slice write: its channels follow the conv's,
    unless the write is a constant that stays nonzero when a channel is masked."""

    def __init__(self, constant: float) -> None:
        super().__init__()
        self.constant, self.a, self.b = constant, nn.Conv2d(3, 8, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        buf = torch.zeros(h.shape[0], h.shape[1], h.shape[2] + 2, h.shape[3])
        buf[:, :, 1:-1] = h + self.constant
        return self.b(buf)


def test_buffer_filled_by_slices_follows_channels_and_zero_status() -> None:
    x = torch.randn(1, 3, 4, 4)
    exact = FilledBuffer(0.0)
    graph = trace(exact, x)
    assert graph.group("a").n_prunable == 8
    assert pruning_error(exact, graph, random_plan(graph, 0.5, seed=0), x) < 1e-6
    shifted = FilledBuffer(1.0)  # masked channels hold 1.0 in the buffer: removing them is not exact
    graph = trace(shifted, x)
    assert graph.group("a").n_prunable == 0
    forced = trace(shifted, x, allow_inexact=True)
    assert pruning_error(shifted, forced, random_plan(forced, 0.5, seed=0), x) > 1e-3  # the pin is needed
