"""Warnings for calibration data a criterion cannot work with: too few images per class for HRel, and a
group whose channels all score the same (every filter dead), whose ties must still break the same way."""

from __future__ import annotations

import warnings

import pytest
import torch

import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.errors import NetsculptWarning
from netsculpt.importance import get_criterion

from .conftest import batches


def test_hrel_with_eight_images_says_how_many_it_needs(lenet) -> None:
    model, x, _ = lenet
    graph = ns.trace(model, x)
    with pytest.warns(
        NetsculptWarning, match=r"hrel saw 8 calibration images .* at least 20 images per class"
    ):
        get_criterion("hrel").score(model, graph, batches((1, 28, 28), n_batches=1, batch=8))


def test_hrel_with_enough_images_does_not_warn(lenet) -> None:
    model, x, _ = lenet
    graph = ns.trace(model, x)
    labels = torch.arange(10).repeat(8)  # 8 per class in one batch of 80, 24 per class over 3 batches
    data = [
        (torch.randn(80, 1, 28, 28, generator=torch.Generator().manual_seed(i)), labels) for i in range(3)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetsculptWarning)
        get_criterion("hrel").score(model, graph, data)


@pytest.mark.parametrize("criterion", ["l1", "hrank", "hrel", "chip"])
def test_a_dead_layer_warns_naming_its_group_and_keeps_the_lowest_channels(criterion) -> None:
    torch.manual_seed(0)
    model = ns.create_model("lenet5").eval()
    with torch.no_grad():  # every conv1 filter dead: zero weights, and a bias the ReLU clips to 0
        model.conv1.weight.zero_()
        model.conv1.bias.fill_(-1.0)
    x = torch.randn(1, 1, 28, 28)
    graph = ns.trace(model, x)
    labels = torch.arange(10).repeat(7)
    data = [
        (torch.randn(70, 1, 28, 28, generator=torch.Generator().manual_seed(i)), labels) for i in range(3)
    ]
    with pytest.warns(NetsculptWarning, match=rf"{criterion} gave every channel of group 'conv1' the same"):
        scores = get_criterion(criterion).score(model, graph, data)
    plans = [widths_plan(graph, scores, {"conv1": 3}).keep["conv1"] for _ in range(2)]
    assert plans[0] == plans[1] == [0, 1, 2]  # ties keep the lowest-numbered channels


def test_hrel_counts_each_image_once_in_a_residual_stage(resnet20) -> None:
    # a resnet20 stage is seen at one site per block; 12 images must not count as 12 x blocks
    model, x, data = resnet20
    crit = get_criterion("hrel")
    with pytest.warns(NetsculptWarning, match="hrel saw 12 calibration images"):
        crit.score(model, ns.trace(model, x), data)
