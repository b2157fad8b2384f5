"""apply_plan_ keeps what the model was besides its widths: the memory format of every pruned tensor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netsculpt as ns


def _net(conv: type[nn.Module], norm: type[nn.Module]) -> nn.Module:
    return nn.Sequential(
        conv(3, 16, 3, padding=1), norm(16), nn.ReLU(), conv(16, 16, 3, padding=1), norm(16), nn.ReLU(),
        conv(16, 8, 3, padding=1),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("conv", "norm", "layout", "shape"),
    [
        (nn.Conv2d, nn.BatchNorm2d, torch.channels_last, (1, 3, 8, 8)),
        (nn.Conv3d, nn.BatchNorm3d, torch.channels_last_3d, (1, 3, 4, 8, 8)),
    ],
)
def test_channels_last_model_stays_channels_last(conv, norm, layout, shape) -> None:
    torch.manual_seed(0)
    model = _net(conv, norm).eval().to(memory_format=layout)
    x = torch.randn(shape).contiguous(memory_format=layout)
    contiguous = ns.prune(_net(conv, norm).eval().to(memory_format=torch.contiguous_format), x, ratio=0.5)
    small = ns.prune(model, x, ratio=0.5)
    weights = [m.weight for m in small.modules() if isinstance(m, conv)]
    assert weights[1].shape[0] < 16  # pruned
    assert all(w.is_contiguous(memory_format=layout) and not w.is_contiguous() for w in weights)
    contiguous.load_state_dict(small.state_dict())  # same widths, same function
    assert torch.allclose(small(x), contiguous(x), atol=1e-5)
