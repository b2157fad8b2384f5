"""A plan applied to a model it was not made for is refused (or warned about) before any surgery."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import NetsculptWarning, PruningError
from netsculpt.surgery import PrunePlan


class Stack(nn.Module):
    """conv-bn-relu blocks, ``depth`` of them at ``width`` channels, then a classifier."""

    def __init__(self, depth: int = 2, width: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


class Renamed(Stack):
    """The same layers under another class name."""


X = torch.randn(1, 3, 8, 8)


def _plan(model: nn.Module) -> PrunePlan:
    return ns.plan_pruning(model.eval(), X, ratio=0.5, round_to=1)[0]


def test_plan_records_its_model_class() -> None:
    plan = _plan(Stack())
    assert plan.meta["model_class"].endswith("test_match.Stack")
    assert PrunePlan.from_json(plan.to_json()).meta["model_class"] == plan.meta["model_class"]


def test_deeper_model_refused_naming_the_first_unlisted_group() -> None:
    # the 2-block plan's groups all exist in the 3-block model with the same widths: before, it was
    # applied silently and the third block kept every channel
    plan = _plan(Stack(depth=2))
    with pytest.raises(PruningError, match=r"group 'body\.6'.*does not list.*make a plan for this model"):
        ns.apply_plan(Stack(depth=3).eval(), plan, X)


def test_wider_model_refused_naming_the_group_and_both_widths() -> None:
    plan = _plan(Stack(width=8))
    with pytest.raises(PruningError, match=r"group 'body\.0' has 12 channels here but 8 in the plan"):
        ns.apply_plan(Stack(width=12).eval(), plan, X)


def test_other_class_with_the_same_groups_is_warned_about_and_applied() -> None:
    plan = _plan(Stack())
    with pytest.warns(NetsculptWarning, match=r"made for a .*Stack and this model is a .*Renamed"):
        small = ns.apply_plan(Renamed().eval(), plan, X)
    assert small.body[0].out_channels == 4


def test_old_plan_file_without_model_class_still_applies(tmp_path) -> None:
    model = Stack().eval()
    data = _plan(model).to_dict()
    del data["meta"]["model_class"]  # what plans saved before the class was recorded look like
    (tmp_path / "plan.json").write_text(json.dumps(data))
    old = PrunePlan.load(tmp_path / "plan.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetsculptWarning)
        assert ns.apply_plan(model, old, X).body[0].out_channels == 4
    # on a deeper model an old plan cannot be told from a partial hand-made one: warned, not refused
    with pytest.warns(NetsculptWarning, match=r"does not list 1 of this model's channel groups \('body\.6'"):
        ns.apply_plan(Stack(depth=3).eval(), old, X)
