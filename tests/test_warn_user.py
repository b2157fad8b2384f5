"""Warnings point at the user's own line (netsculpt.errors.warn_user), not at netsculpt's.

Before 2026-12-07 each call site guessed a fixed ``stacklevel``: the round_to='hw' fallback pointed at
the line inside ``plan_pruning`` (``allocate/targets.py``), the shortfall at ``prune.py``."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import netsculpt as ns
from netsculpt.errors import NetsculptWarning, warn_user


def _net(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2),
    ).eval()  # fmt: skip


def _where(record: pytest.WarningsRecorder, words: str) -> tuple[str, int]:
    (found,) = [w for w in record if words in str(w.message)]
    return found.filename, found.lineno


def test_a_warning_from_ns_prune_names_the_callers_file_and_line() -> None:
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(NetsculptWarning) as record:
        line, _ = sys._getframe().f_lineno, ns.prune(_net(16), x, target=ns.Target(macs=0.04))
    assert _where(record, "round_to='hw' grid") == (__file__, line)  # from allocate/targets.py
    # four channels a layer: one is worth about an eighth of the MACs, 0.6 is out of reach within 2%
    with pytest.warns(NetsculptWarning) as record:
        line, _ = sys._getframe().f_lineno, ns.prune(_net(4), x, target=ns.Target(macs=0.6), round_to=1)
    assert _where(record, "lands at") == (__file__, line)  # from allocate/shortfall.py


def test_warn_user_called_from_outside_netsculpt_names_that_line() -> None:
    with pytest.warns(UserWarning, match="look here") as record:
        line, _ = sys._getframe().f_lineno, warn_user("look here", UserWarning)
    assert (record[0].filename, record[0].lineno, record[0].category) == (__file__, line, UserWarning)


class _Unused(nn.Module):
    """A layer forward never calls: tracing warns that it cannot see what it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.out = nn.Conv2d(8, 4, 3)
        self.spare = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x).relu())


def test_trace_warnings_name_the_callers_line() -> None:
    # graph/unrun.py's fixed stacklevel=3 was right for ns.trace only; from ns.prune it pointed into netsculpt
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning) as record:
        line, _ = sys._getframe().f_lineno, ns.trace(_Unused().eval(), x)
    assert _where(record, "never ran while tracing") == (__file__, line)
    with pytest.warns(UserWarning) as record:
        line, _ = sys._getframe().f_lineno, ns.prune(_Unused().eval(), x, ratio=0.5)
    assert _where(record, "never ran while tracing") == (__file__, line)
