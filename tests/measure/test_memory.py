"""Peak activation memory against liveness worked out by hand.

float32 = 4 bytes. In ``nn.Sequential`` an activation dies as soon as the next module's output is
assigned, so at most one module's input and output are alive at once (plus anything a module keeps).
Each test states the theoretical peak; the measurement must land within 5% above it (and never
below: every tensor it counts really exists). On these nets it is exact.
"""

from __future__ import annotations

import torch
from torch import nn

from netsculpt.measure import peak_activation_bytes

F32 = 4


def assert_close_above(measured: int, theory: int) -> None:
    assert theory <= measured <= theory * 1.05, (measured, theory)


def test_sequential_conv_net() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 32 * 32, 10),
    )
    # Peak at the second ReLU: its input (16x32x32) and output (16x32x32) are both alive.
    # conv1 out + relu1 out = 2 * 8*32*32 is smaller; Flatten is a view; Linear's output is 10 floats.
    theory = 2 * 16 * 32 * 32 * F32  # 131,072 bytes
    assert_close_above(peak_activation_bytes(net, torch.randn(1, 3, 32, 32)), theory)


def test_inplace_activations_save_memory() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(inplace=True),
    )
    # In-place ReLU writes into its input: the peak is conv2's input and output, 8x32x32 + 16x32x32.
    theory = (8 + 16) * 32 * 32 * F32  # 98,304 bytes
    assert_close_above(peak_activation_bytes(net, torch.randn(1, 3, 32, 32)), theory)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        z = self.b(y)
        return x + y + z


def test_residual_keeps_branches_alive() -> None:
    # At the final add y, z, (x + y) and the result are alive: 4 tensors of 4x8x8 floats.
    # The input x is excluded: it exists before the forward.
    theory = 4 * 4 * 8 * 8 * F32  # 4,096 bytes
    assert_close_above(peak_activation_bytes(Residual(), torch.randn(1, 4, 8, 8)), theory)


def test_scales_with_batch_and_excludes_weights() -> None:
    net = nn.Sequential(nn.Linear(64, 1000), nn.ReLU(), nn.Linear(1000, 8))
    # Peak at the ReLU: 2 * batch * 1000 floats. The 64x1000 weight (256 KB) must not appear.
    for batch in (1, 4):
        theory = 2 * batch * 1000 * F32
        assert_close_above(peak_activation_bytes(net, torch.randn(batch, 64)), theory)


def test_views_are_not_double_counted() -> None:
    class Views(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * 2  # one new 1000-float tensor
            flat = y.view(10, 100).t().reshape(1000)  # view, view, then a copy: .t() is not contiguous
            return flat[:500].view(50, 10)  # views of the copy

    # y (4,000 B) and the reshape copy (4,000 B) are alive together; no view adds anything.
    theory = 2 * 1000 * F32
    assert_close_above(peak_activation_bytes(Views(), torch.randn(1000)), theory)
