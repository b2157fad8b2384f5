"""Grow as branches: a parallel conv of another kernel size, the same function, prunable, saved/loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import CheckpointError, ConfigError
from netsculpt.gpp import grow_branch
from netsculpt.gpp.branch import ConvBranches


def _max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def _trained_resnet() -> nn.Module:
    torch.manual_seed(0)
    model = ns.create_model("resnet20_cifar")
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, 32, 32) * 2 + 0.5)  # BN running statistics off their defaults
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_lenet_branches_compute_what_the_original_computed() -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(8, 1, 28, 28)
    big = grow_branch(model, x[:1], {"conv1": "3x3:4", "conv2": "1x1:6"}).eval()
    assert isinstance(big.conv2, ConvBranches) and big.conv2.branches[0].kernel_size == (1, 1)
    assert big.conv2.crops == [(2, 2)]  # an unpadded 5x5 host: the 1x1 branch reads the window centres
    assert big.conv2.main.in_channels == 24 and big.fc1.in_features == 56 * 16
    assert _max_diff(model, big, x) <= 1e-6
    assert float(big.conv2.branches[0].weight.detach().abs().sum()) > 0  # the branch is alive ...
    assert float(big.fc1.weight[:, 800:].detach().abs().sum()) == 0  # ... and reaches nothing yet
    big.train()
    nn.functional.cross_entropy(big(x), torch.arange(8)).backward()
    assert float(big.fc1.weight.grad[:, 800:].abs().sum()) > 0  # training can bring it in


def test_resnet_branch_with_batchnorm_is_exact() -> None:
    model = _trained_resnet()
    x = torch.randn(4, 3, 32, 32)
    big = grow_branch(model, x[:1], {"layer1.0.conv1": "1x1:5", "layer2.1.conv1": "5x5:3"}).eval()
    assert big.layer1[0].bn1.num_features == 21 and big.layer2[1].bn1.num_features == 35
    assert big.layer2[1].conv1.branches[0].stride == (1, 1) and big.layer2[1].conv1.branches[0].padding == (
        2,
        2,
    )
    assert _max_diff(model, big, x) <= 1e-6
    strided = grow_branch(model, x[:1], {"layer2.0.conv1": "1x1:4"}).eval()  # stride 2 host
    assert strided.layer2[0].conv1.branches[0].stride == (2, 2)
    assert _max_diff(model, strided, x) <= 1e-6


def _masked(model: nn.Module, graph: ns.ChannelGraph, plan: object) -> nn.Module:
    """The original with every removed channel's consumer inputs zeroed: what pruning must compute."""
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        for group in graph.groups:
            keep = plan.keep.get(group.id)
            if keep is None:
                continue
            gone = sorted(set(range(group.size)) - {int(k) for k in keep})
            for member in group.members:
                if member.role != "in":
                    continue
                slices = member.slices(group.size)
                pos = np.concatenate([slices[c] for c in gone]) if gone else np.array([], int)
                params[member.name].index_fill_(member.dim, torch.as_tensor(pos, dtype=torch.long), 0.0)
    return model


def test_several_branches_on_one_layer_inception_style(tmp_path: Path) -> None:
    model = _trained_resnet()
    x = torch.randn(4, 3, 32, 32)
    big = grow_branch(model, x[:1], {"layer3.0.conv1": "1x1:4,3x3:2,5x5:3"}).eval()
    conv = big.layer3[0].conv1
    assert [b.kernel_size for b in conv.branches] == [(1, 1), (3, 3), (5, 5)]
    assert big.layer3[0].bn1.num_features == 64 + 9
    assert _max_diff(model, big, x) <= 1e-6
    ns.save(big, tmp_path / "m")
    back = ns.load(tmp_path / "m").eval()
    assert _max_diff(big, back, x) == 0.0
    small = ns.prune(back, x[:1], ratio=0.5, criterion="l1").eval()
    assert sum(b.out_channels for b in small.layer3[0].conv1.branches) < 9


def test_branch_channels_are_one_prunable_group_with_the_host() -> None:
    import copy

    model = _trained_resnet()
    x = torch.randn(4, 3, 32, 32)
    big = grow_branch(model, x[:1], {"layer1.0.conv1": "1x1:6"}).eval()
    with torch.no_grad():  # as after training: the branch now reaches the next conv
        big.layer1[0].conv2.weight[:, 16:].normal_(0, 0.1)
    graph = ns.trace(big, x[:1])
    group = next(
        g
        for g in graph.groups
        if any(m.module == "layer1.0.conv1.branches.0" and m.role == "out" for m in g.members)
    )
    assert group.size == 6 and group.n_prunable == 6  # the branch is its own group ...
    assert any(m.module == "layer1.0.bn1" for m in group.members)  # ... through the shared BN
    widths = {"layer1.0.conv1.main": 9, "layer1.0.conv1.branches.0": 2}
    plan, graph = ns.plan_pruning(big, x[:1], criterion="l1", widths=widths, graph=graph)
    small = ns.apply_plan(big, plan, x[:1], graph=graph).eval()
    reference = _masked(copy.deepcopy(big), graph, plan).eval()
    assert small.layer1[0].bn1.num_features == 11 and small.layer1[0].conv1.branches[0].out_channels == 2
    assert _max_diff(small, reference, x) <= 1e-4
    ratio = ns.prune(big, x[:1], ratio=0.5, criterion="l1").eval()  # any criterion, any allocation
    assert ratio.layer1[0].conv1.branches[0].out_channels < 6


def test_pruned_lenet_branch_equals_the_masked_model_through_the_flatten() -> None:
    import copy
    import pickle

    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(8, 1, 28, 28)
    big = grow_branch(model, x[:1], {"conv2": "1x1:6,3x3:4"}).eval()
    with torch.no_grad():  # as after training: the branches reach fc1
        big.fc1.weight[:, 800:].normal_(0, 0.05)
    widths = {"conv2.main": 7, "conv2.branches.0": 3, "conv2.branches.1": 1}
    plan, graph = ns.plan_pruning(big, x[:1], criterion="l1", widths=widths)
    small = ns.apply_plan(big, plan, x[:1], graph=graph).eval()
    assert small.fc1.in_features == 11 * 16
    assert _max_diff(small, _masked(copy.deepcopy(big), graph, plan).eval(), x) <= 1e-4
    pickle.dumps(small)  # a plain, picklable module tree: torch modules and the one ConvBranches
    kinds = {type(m).__module__ for m in small.modules()} - {"netsculpt.models.lenet"}
    assert all(k.startswith("torch.nn.") for k in kinds - {"netsculpt.gpp.branch"}), kinds


def test_branched_model_saves_loads_and_prunes_again(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    x = torch.randn(2, 1, 28, 28)
    big = grow_branch(model, x[:1], {"conv2": "3x3:6"})
    with torch.no_grad():
        big.conv2.branches[0].weight.add_(0.5)  # trained weights: loading must not re-draw them
        big.fc1.weight[:, 800:].normal_()
    ns.save(big, tmp_path / "m")
    back = ns.load(tmp_path / "m").eval()
    assert isinstance(back.conv2, ConvBranches) and back.conv2.branches[0].out_channels == 6
    assert _max_diff(big.eval(), back, x) == 0.0
    small = ns.prune(back, x[:1], widths={"conv2.main": 10}, criterion="l1")
    ns.save(small, tmp_path / "s")
    again = ns.load(tmp_path / "s").eval()
    assert _max_diff(small.eval(), again, x) == 0.0


def test_branch_refuses_what_it_cannot_grow() -> None:
    model = ns.create_model("lenet5")
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"not an nn\.Conv2d"):
        grow_branch(model, x, {"fc1": "1x1:2"})
    with pytest.raises(ConfigError, match="odd amount"):
        grow_branch(model, x, {"conv2": "2x2:2"})
    with pytest.raises(ConfigError, match="KxK:CHANNELS"):
        grow_branch(model, x, {"conv2": "1x1"})
    with pytest.raises(ConfigError, match="channels must be"):
        grow_branch(model, x, {"conv2": "1x1:0"})
    resnet = ns.create_model("resnet20_cifar")
    with pytest.raises(ConfigError, match="tied to"):
        grow_branch(resnet, torch.randn(1, 3, 32, 32), {"layer1.0.conv2": "1x1:2"})
    grown = grow_branch(model, x, {"conv2": "1x1:2"})
    with pytest.raises(ConfigError, match="in one call"):
        grow_branch(grown, x, {"conv2": "3x3:2"})


def test_a_malformed_branch_edit_is_refused_before_anything_is_built() -> None:
    from netsculpt.edits import validate_edits

    good = {"kind": "grow_branch", "branches": {"conv2": [{"kernel": [1, 1], "channels": 4}]}, "seed": 0,
            "input_shapes": [[1, 1, 28, 28]]}  # fmt: skip
    validate_edits([good], "spec")
    for bad in ({**good, "branches": {"conv2": [{"kernel": [1], "channels": 4}]}},
                {**good, "branches": {"conv2": [{"kernel": [1, 1], "channels": 0}]}},
                {**good, "branches": {}}, {**good, "branches": {"conv2": []}},
                {**good, "extra": 1}):  # fmt: skip
        with pytest.raises(CheckpointError):
            validate_edits([bad], "spec")
