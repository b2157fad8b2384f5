"""Small architectures, each built around one channel-coupling pattern the engine must follow."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class Residual(nn.Module):
    """Two residual blocks sharing one channel group, then flatten into Linear (index expansion)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.b1 = nn.Sequential(cbr(8, 6), nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.b2 = nn.Sequential(cbr(8, 6), nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(8 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(x + self.b1(x))
        x = torch.relu(self.b2(x) + x)
        return self.fc(torch.flatten(self.pool(x), 1))


class Concat(nn.Module):
    """DenseNet/Inception-style concatenation feeding one conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = cbr(3, 6)
        self.b = cbr(3, 4, k=1)
        self.c = cbr(10, 7)
        self.d = cbr(17, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        y = torch.cat((y, self.c(y)), 1)
        return self.head(self.d(y).mean((2, 3)))


class ShuffleBlock(nn.Module):
    """ShuffleNetV2-style: chunk, identity half, depthwise branch, concat, channel shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.branch = nn.Sequential(
            cbr(4, 6, k=1),
            nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False),
            nn.BatchNorm2d(6),
            cbr(6, 4, k=1),
        )
        self.out = nn.Conv2d(8, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat((a, self.branch(b)), 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.out(x).mean((2, 3))


class GroupedSE(nn.Module):
    """Grouped conv (groups kept), depthwise conv (groups follow), squeeze-excite gate, PReLU, hardswish."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 8)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm2d(12)
        self.act = nn.PReLU(12)
        self.dw = nn.Conv2d(12, 24, 3, padding=1, groups=12)
        self.se1 = nn.Conv2d(24, 6, 1)
        self.se2 = nn.Conv2d(6, 24, 1)
        self.proj = nn.Conv2d(24, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.grouped(self.stem(x))))
        x = F.hardswish(self.dw(x))
        s = torch.sigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(x, 1)))))
        return self.proj(x * s).flatten(1).sum(1, keepdim=True)


class ChannelsLast(nn.Module):
    """ConvNeXt-style block: depthwise conv, permute to channels-last, LayerNorm, MLP, layer scale."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8)
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 8)
        self.gamma = nn.Parameter(torch.rand(8))
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        x = x + (self.gamma * y).permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


class TransposeUp(nn.Module):
    """Encoder-decoder with ConvTranspose2d, GroupNorm and InstanceNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.gn = nn.GroupNorm(2, 6)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.gn(self.up(F.relu(self.inorm(self.down(x)))))))


class GroupedTransposeUp(nn.Module):
    """A grouped ConvTranspose2d: output channel j of every group is one channel (weight dim 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2, groups=4)
        self.bn = nn.BatchNorm2d(8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.bn(self.up(F.relu(self.down(x))))))


class PadShortcut(nn.Module):
    """CIFAR ResNet option-A shortcut: stride-2 subsample and zero-pad the channel dim."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = cbr(3, 4)
        self.branch = nn.Sequential(
            cbr(4, 8, stride=2), nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        )
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
        return self.fc(F.relu(self.branch(x) + short).mean((2, 3)))


class Attention(nn.Module):
    """Token mixer with nn.MultiheadAttention and an MLP (patchify conv, flatten, transpose)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.pos = nn.Parameter(torch.randn(1, 4, 16) * 0.1)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 16))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        x = x + self.attn(x, x, x, need_weights=False)[0]
        x = x + self.mlp(x)
        return self.head(x.mean(1))


ARCHS = {
    "residual": (Residual, (2, 3, 8, 8)),
    "concat": (Concat, (2, 3, 8, 8)),
    "shuffle": (ShuffleBlock, (2, 3, 8, 8)),
    "grouped_se": (GroupedSE, (2, 3, 8, 8)),
    "channels_last": (ChannelsLast, (2, 3, 8, 8)),
    "transpose_up": (TransposeUp, (2, 3, 8, 8)),
    "grouped_transpose_up": (GroupedTransposeUp, (2, 3, 8, 8)),
    "pad_shortcut": (PadShortcut, (2, 3, 8, 8)),
    "attention": (Attention, (2, 3, 8, 8)),
}


def randomize_(model: nn.Module) -> nn.Module:
    """Give norm layers non-trivial statistics so masking and pruning are really tested."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
            for p in m.parameters(recurse=False):
                if p.abs().sum() == 0 or (p == 1).all():
                    p.uniform_(0.5, 1.5, generator=g) if (p == 1).all() else p.normal_(0, 0.1, generator=g)
    return model.eval()
