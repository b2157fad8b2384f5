"""Layer rules: padding modes and depthwise transposed convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.graph import trace
from netsculpt.surgery.verify import pruning_error, random_plan

TOLERANCE = 1e-5


class PaddedConvs(nn.Module):
    """CycleGAN-style: a pad layer (or a conv's own ``padding_mode``) before each conv."""

    def __init__(self, mode: str, own: bool) -> None:
        super().__init__()
        pad = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "circular": nn.CircularPad2d}
        self.pad = nn.Identity() if own else pad[mode](1)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, padding_mode=mode) if own else nn.Conv2d(8, 8, 3)
        self.o = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        return self.o(torch.relu(self.b(self.pad(y))))


@pytest.mark.parametrize("own", [False, True], ids=["pad-layer", "conv-padding-mode"])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_that_copies_a_channel_keeps_it_prunable_and_exact(mode: str, own: bool) -> None:
    model = PaddedConvs(mode, own).eval()
    x = torch.randn(2, 3, 8, 8)
    graph = trace(model, x)
    assert graph.group("a").n_prunable == 8, graph
    assert pruning_error(model, graph, random_plan(graph, 0.5), x) <= TOLERANCE


def test_nonzero_constant_padding_still_pins() -> None:
    class ConstPad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(nn.functional.pad(self.a(x), (1, 1, 1, 1), value=0.5))

    graph = trace(ConstPad().eval(), torch.randn(1, 3, 8, 8))
    assert graph.group("a").n_prunable == 0
    assert "not zero when masked" in graph.group("a").reasons[0]
