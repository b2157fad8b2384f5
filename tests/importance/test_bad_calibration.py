"""Warnings for calibration data a criterion cannot work with: too few images per class for HRel, and a
group whose channels all score the same (every filter dead), whose ties must still break the same way."""

from __future__ import annotations

import warnings

import pytest
import torch

import netsculpt as ns
from netsculpt.allocate import widths_plan
from netsculpt.errors import NetsculptWarning, PruningError
from netsculpt.importance import get_criterion

from .conftest import batches


def test_hrel_with_eight_images_says_how_many_it_needs(lenet) -> None:
    model, x, _ = lenet
    graph = ns.trace(model, x)
    with pytest.warns(
        NetsculptWarning, match=r"hrel saw 8 calibration images .* at least 20 images per class"
    ):
        get_criterion("hrel").score(model, graph, batches((1, 28, 28), n_batches=1, batch=8))


def test_hrel_with_enough_images_in_small_batches_names_the_batch_size(lenet) -> None:
    """256 images of 10 classes (25.6 per class, above the 20 it needs) in batches of 16: the warning
    said "at least 20 images per class (200 here)" though the shortfall was the batch size."""
    model, x, _ = lenet
    graph = ns.trace(model, x)
    labels = torch.arange(16) % 10
    data = [
        (torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(i)), labels) for i in range(16)
    ]
    with pytest.warns(NetsculptWarning) as caught:
        get_criterion("hrel").score(model, graph, data)
    text = " ".join(str(w.message) for w in caught if "hrel saw" in str(w.message))
    assert "batches of 16 hold 1.6 images per class" in text and "larger calibration batch size" in text
    assert "images per class in all" not in text  # 256 images are enough in all


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


class _TupleOut(torch.nn.Module):
    """Like an ultralytics classifier in eval mode: (probabilities, logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(self.conv(x).relu().mean(dim=(2, 3)))
        return logits.softmax(1), logits


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    )  # fmt: skip


X = torch.randn(1, 3, 12, 12)


ONE_HOT = torch.eye(3)[[0, 1, 2, 0]]
IMAGES = torch.randn(4, 3, 12, 12)


@pytest.mark.parametrize(
    ("criterion", "data", "message"),
    [
        ("hrank", IMAGES, r"not one tensor of shape \(4, 3, 12, 12\).*\[\(inputs, labels\)\]"),
        ("hrank", [(torch.randn(4, 1, 12, 12), torch.zeros(4).long())], r"batch \(inputs \(4, 1, 12, 12\)\)"),
        ("taylor", [(IMAGES, torch.full((4,), 7))], r"label 7 is out of range .* 3 outputs"),
        ("taylor", [(IMAGES, torch.rand(4))], r"float labels of shape \(4,\) fit neither"),
        ("hrel", [(IMAGES, ONE_HOT)], r"HRel needs one integer class index.*argmax\(1\)"),
        ("gpp", [(IMAGES, ONE_HOT)], r"needs one integer class index.*argmax\(1\)"),
    ],
)  # fmt: skip
def test_unusable_calibration_data_is_refused_with_what_to_pass(criterion, data, message) -> None:
    with pytest.raises(PruningError, match=message):
        ns.prune(_net(), X, criterion=criterion, ratio=0.5, data=data)


@pytest.mark.parametrize("task", [None, "classification"])
def test_a_model_returning_a_tuple_is_told_to_return_logits(task) -> None:
    data = [(torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 0]))]
    with pytest.raises(PruningError, match=r"must return \(batch, classes\) logits .* returned a tuple"):
        ns.prune(_TupleOut().eval(), X, criterion="taylor", ratio=0.5, data=data, task=task)


def test_soft_labels_of_the_logits_shape_are_still_accepted() -> None:
    probabilities = torch.softmax(torch.randn(4, 3), 1)  # cross-entropy takes class probabilities too
    ns.prune(_net(), X, criterion="taylor", ratio=0.5, data=[(torch.randn(4, 3, 12, 12), probabilities)])
