"""Every registered criterion, tested the day it is registered: shapes, finiteness, determinism, real
models, the prune API, and clear errors for missing data and NaN weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchvision

import netsculpt as ns
from netsculpt.errors import PruningError
from netsculpt.importance import get_criterion

from .conftest import batches, randomize_bn

CRITERIA = ns.list_criteria()
DATA_DRIVEN = [c for c in CRITERIA if get_criterion(c).needs - {"weights"}]


def test_registry_lists_the_issue_4_criteria() -> None:
    issue_4 = {"l1", "l2", "random", "bn_scale", "taylor", "fisher", "fpgm", "hrank", "chip", "hrel"}
    assert issue_4 <= set(CRITERIA)


def _check(model, graph, scores: dict) -> None:
    assert set(scores) == {g.id for g in graph.prunable_groups}
    for g in graph.prunable_groups:
        s = scores[g.id]
        assert s.shape == (g.size,), g.id
        assert np.all(np.isfinite(s)), g.id


@pytest.mark.parametrize("name", CRITERIA)
@pytest.mark.parametrize("fixture", ["lenet", "resnet20"])
def test_scores_have_group_shapes_are_finite_and_deterministic(name: str, fixture: str, request) -> None:
    model, x, data = request.getfixturevalue(fixture)
    graph = ns.trace(model, x)
    first = get_criterion(name).score(model, graph, data)
    _check(model, graph, first)
    again = get_criterion(name).score(model, graph, data)
    for gid in first:
        np.testing.assert_array_equal(first[gid], again[gid])
    spread = [np.ptp(s) for s in first.values()]
    assert max(spread) > 0, "every channel tied in every group: the criterion saw nothing"


@pytest.mark.slow
@pytest.mark.parametrize("name", CRITERIA)
def test_torchvision_mobilenet_v2(name: str) -> None:
    """Depthwise convs, linear bottlenecks and residual adds, at a small input."""
    torch.manual_seed(0)
    model = randomize_bn(torchvision.models.mobilenet_v2(num_classes=10))
    x = torch.randn(1, 3, 32, 32)
    graph = ns.trace(model, x)
    _check(model, graph, get_criterion(name).score(model, graph, batches((3, 32, 32), 1, 8)))


@pytest.mark.parametrize("name", CRITERIA)
def test_plugs_into_prune(name: str, resnet20) -> None:
    model, x, data = resnet20
    small = ns.prune(model, x, criterion=name, ratio=0.5, data=data)
    assert sum(p.numel() for p in small.parameters()) < 0.5 * sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert small(x).shape == model(x).shape


@pytest.mark.parametrize("name", DATA_DRIVEN)
def test_data_driven_criterion_without_data_names_what_it_needs(name: str, lenet) -> None:
    model, x, _ = lenet
    needs = sorted(get_criterion(name).needs - {"weights"})
    with pytest.raises(PruningError, match=f"needs {', '.join(needs)}: pass data="):
        get_criterion(name).score(model, ns.trace(model, x), None)
    with pytest.raises(PruningError, match="pass data="):
        ns.prune(model, x, criterion=name, ratio=0.5)


@pytest.mark.parametrize("name", [c for c in CRITERIA if c != "random"])  # random never reads weights
def test_nan_weights_are_reported_with_the_group(name: str, lenet) -> None:
    model, x, data = lenet
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.conv1.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(PruningError, match="NaN or inf scores for group 'conv1'"):
        get_criterion(name).score(broken, ns.trace(model, x), data)


def test_random_is_seeded(lenet) -> None:
    model, x, _ = lenet
    graph = ns.trace(model, x)
    a, b, c = (get_criterion("random", seed=s).score(model, graph) for s in (1, 1, 2))
    np.testing.assert_array_equal(a["conv2"], b["conv2"])
    assert not np.array_equal(a["conv2"], c["conv2"])
