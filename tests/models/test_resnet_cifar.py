from __future__ import annotations

import pytest
import torch
import torch.fx
from torch import nn

from netsculpt.errors import ConfigError
from netsculpt.models import ResNetCifar, ZeroPadShortcut, create_model


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def option_a_params(n: int, classes: int = 10) -> int:
    """Exact count for ResNet-(6n+2) with option A: conv 3x3 weights + 2 BN parameters per channel."""
    stem = 9 * 3 * 16 + 2 * 16
    stage1 = 2 * n * (9 * 16 * 16 + 2 * 16)
    stage2 = (9 * 16 * 32 + 2 * 32) + (2 * n - 1) * (9 * 32 * 32 + 2 * 32)
    stage3 = (9 * 32 * 64 + 2 * 64) + (2 * n - 1) * (9 * 64 * 64 + 2 * 64)
    return stem + stage1 + stage2 + stage3 + 64 * classes + classes


# He et al. 2016, Table 6 (CIFAR-10, option A): 0.27M, 0.85M, 1.7M parameters; n = (depth - 2) / 6
@pytest.mark.parametrize(
    ("depth", "published_millions", "decimals"), [(20, 0.27, 2), (56, 0.85, 2), (110, 1.7, 1)]
)
def test_option_a_matches_paper(depth: int, published_millions: float, decimals: int) -> None:
    params = count(create_model(f"resnet{depth}_cifar", shortcut="A"))
    assert params == option_a_params((depth - 2) // 6)
    assert round(params / 1e6, decimals) == published_millions


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_option_b_adds_two_projections(depth: int) -> None:
    # 1x1 conv + BN for 16→32 and for 32→64: (16*32 + 2*32) + (32*64 + 2*64) = 2,752 parameters
    extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    params_b = count(create_model(f"resnet{depth}_cifar"))  # B is the default
    assert params_b == option_a_params((depth - 2) // 6) + extra


@pytest.mark.parametrize(("depth", "blocks"), [(20, 3), (56, 9), (110, 18)])
def test_stage_layout(depth: int, blocks: int) -> None:
    model = create_model(f"resnet{depth}_cifar")
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3)] == [blocks] * 3
    assert [stage[0].conv1.out_channels for stage in (model.layer1, model.layer2, model.layer3)] == [
        16,
        32,
        64,
    ]
    convs = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert convs + 1 == depth  # 6n + 1 3x3 convs plus the fc layer make the depth


def test_zero_pad_shortcut_subsamples_and_appends_zeros() -> None:
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])  # input channel k stays channel k
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_option_a_has_no_projection_convs() -> None:
    model = create_model("resnet20_cifar", shortcut="A")
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())
    assert sum(isinstance(m, ZeroPadShortcut) for m in model.modules()) == 2


@pytest.mark.parametrize("bad", [{"depth": 21}, {"depth": 2}, {"depth": 20, "shortcut": "C"}])
def test_bad_configuration_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ResNetCifar(**bad)


def test_option_a_runs_and_traces() -> None:
    model = create_model("resnet20_cifar", shortcut="A", num_classes=100).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(torch.fx.symbolic_trace(model)(x), model(x))
        assert model(x).shape == (2, 100)
