"""DepthShrinker-style: learn which activations to drop, drop them, merge the now-linear convs exactly."""

from __future__ import annotations

import torch
from torch import nn

import netsculpt as ns
from netsculpt.depth.shrink import activations, drop_activations, learn_drops
from tests.depth.conftest import randomise_bn


class Bottleneckish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(8, 8, 1, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.r2 = nn.ReLU()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.r2(self.b2(self.c2(self.r1(self.b1(self.c1(x))))))
        return self.head(y.mean((2, 3)))


def test_learn_drop_merge_exact(tmp_path) -> None:
    model = randomise_bn(Bottleneckish())
    x = torch.randn(2, 3, 8, 8)
    data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))) for _ in range(2)]
    assert activations(model, x) == ["r1", "r2"]
    dropped = learn_drops(model, x, data, drop=1, steps=3)
    assert len(dropped) == 1 and dropped[0] in ("r1", "r2")
    linear = drop_activations(model, ["r1"])
    merged = ns.fold(linear, x)
    assert sum(isinstance(m, nn.Conv2d) for m in merged.modules()) == 1  # 3x3 and 1x1 became one conv
    with torch.no_grad():
        assert (merged(x) - linear.eval()(x)).abs().max() <= 1e-4
    ns.save(merged, tmp_path / "m")
    again = ns.load(tmp_path / "m", model=Bottleneckish())
    with torch.no_grad():
        assert torch.equal(again(x), merged(x))
    assert [e["kind"] for e in again.netsculpt_spec["edits"]] == ["drop_activations", "fold"]
