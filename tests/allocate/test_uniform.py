"""Uniform allocation: what it says when it cannot prune."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import PruningError


def _two_convs() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 12 * 12, 10))  # fmt: skip


def test_rounding_that_keeps_every_channel_is_named_not_blamed_on_pinning() -> None:
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(PruningError, match=r"rounding kept counts up to a multiple of 8.*round_to=1"):
        ns.prune(_two_convs(), x, ratio=0.3)  # 30 % of 16 is 4, rounded back up to 16
    small = ns.prune(_two_convs(), x, ratio=0.3, round_to=1)
    assert small[0].out_channels == 12


def test_a_model_with_everything_pinned_says_so() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    with pytest.raises(PruningError, match=r"every channel group is pinned"):
        ns.prune(model, torch.randn(1, 3, 16, 16), ratio=0.5, ignored=[model[0]])


def test_min_channels_above_every_group_is_named_not_blamed_on_pinning() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3))
    with pytest.raises(PruningError, match=r"min_channels=20 is not below any group's size.*< 16") as err:
        ns.prune(model, torch.randn(1, 3, 16, 16), ratio=0.5, min_channels=20)
    assert "pinned" not in str(err.value)


def test_groups_of_one_channel_are_named_not_blamed_on_pinning() -> None:
    model = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 3, 3))
    with pytest.raises(PruningError, match=r"each holds a single channel") as err:
        ns.prune(model, torch.randn(1, 3, 16, 16), ratio=0.5)
    assert "pinned" not in str(err.value)
