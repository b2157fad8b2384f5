"""An unreachable target names what pins the model and the knob that would open it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import PruningError


class Normalised(nn.Module):
    """Every hidden channel goes through a LayerNorm: pinned in exact mode, open with allow_inexact."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 256)
        self.norm = nn.LayerNorm(256)
        self.c = nn.Linear(256, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.norm(self.a(x)).relu())


class Recurrent(nn.Module):
    """The hidden channels flow into an LSTM cell, which has no channel rule: allow_inexact cannot help
    (``nn.LSTM`` has one since 2026-12-07, graph/rules/recurrent.py; the one-step cells do not)."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(16, 64)
        self.rnn = nn.LSTMCell(64, 8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(self.pre(x).relu())[0])


def test_normalised_channels_point_to_allow_inexact() -> None:
    model, x = Normalised().eval(), torch.randn(2, 16)
    with pytest.raises(PruningError, match=r"leaves macs=1\.000.*allow_inexact=True opens 1 group\(s\).*`a`"):
        ns.prune(model, x, target="macs=0.5")
    ns.prune(model, x, target="macs=0.5", allow_inexact=True)  # and it does open them


def test_an_op_without_a_channel_rule_points_to_registering_one() -> None:
    model, x = Recurrent().eval(), torch.randn(2, 16)
    with pytest.raises(PruningError) as caught:
        ns.prune(model, x, target="macs=0.3")
    message = str(caught.value)
    assert "register a channel rule for `torch.lstm_cell` (in `rnn`" in message
    assert "allow_inexact" not in message  # it would not help here
    assert "`pre` (its layers hold" in message  # the pinned layer, with its share of the MACs


def test_ignored_layers_point_to_ignored() -> None:
    model, x = ns.create_model("resnet20_cifar").eval(), torch.randn(1, 3, 32, 32)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with pytest.raises(PruningError, match=r"take layers out of ignored=\[\.\.\.\]; or ask for macs>=1\.000"):
        ns.prune(model, x, target="macs=0.5", ignored=convs, round_to=1)
