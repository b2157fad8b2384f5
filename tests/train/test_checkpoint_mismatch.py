"""Resuming into a model of another shape: a short error naming the tensors that differ and the settings
to check. Before, torch's whole message was passed on: every missing key of a ResNet on one line, and
a DKM run resumed with another --bits was told to use "the same architecture"."""

from __future__ import annotations

import pytest
from torch import nn

from netsculpt.errors import CheckpointError
from netsculpt.models import create_model
from netsculpt.train.checkpoint import load_model_state


def test_a_different_model_gets_a_short_account_of_the_difference() -> None:
    saved = create_model("lenet5", num_classes=10, in_channels=1).state_dict()
    other = create_model("resnet20_cifar", num_classes=10, in_channels=1)  # 130 tensors, 7 in common names
    with pytest.raises(CheckpointError) as info:
        load_model_state(other, saved, "'run/checkpoint.pt'")
    msg = str(info.value)
    assert "conv1.weight [20, 1, 5, 5] in the checkpoint vs [16, 1, 3, 3] here" in msg
    assert "127 of this model's tensors are not in the checkpoint" in msg and "and 124 more" in msg
    assert len(msg) < 800  # a handful of names, not all 127 (torch's message is ~5,000 characters)


def test_a_changed_width_names_the_setting_to_check() -> None:
    saved = nn.Linear(4, 8).state_dict()  # e.g. 8 DKM centroids (3 bits) where the new run has 4
    with pytest.raises(CheckpointError, match=r"weight \[8, 4\] in the checkpoint vs \[4, 4\] here.*--bits"):
        load_model_state(nn.Linear(4, 4), saved, "'run/checkpoint.pt'")


def test_a_fitting_state_loads() -> None:
    model, saved = nn.Linear(4, 4), nn.Linear(4, 4).state_dict()
    load_model_state(model, saved, "'run/checkpoint.pt'")
    assert all((model.state_dict()[k] == v).all() for k, v in saved.items())
