"""Small non-image networks as users write them: audio, time series, text, volumes (random weights)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class M5(nn.Module):
    """Raw-waveform audio classifier (Dai et al. 2017's M5): Conv1d + BatchNorm1d + max-pool, four times."""

    def __init__(self, n_out: int = 10, ch: int = 16) -> None:
        super().__init__()
        widths = [1, ch, ch, 2 * ch, 2 * ch]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, 80 if i == 0 else 3, stride=16 if i == 0 else 1)
            for i, (a, b) in enumerate(itertools.pairwise(widths))
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in widths[1:])
        self.fc = nn.Linear(widths[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.max_pool1d(F.relu(norm(conv(x))), 4)
        return self.fc(F.adaptive_avg_pool1d(x, 1).flatten(1))


class TemporalBlock(nn.Module):
    """Two dilated causal convs (left padding only) and a residual, 1x1-projected when widths differ."""

    def __init__(self, cin: int, cout: int, k: int, dilation: int) -> None:
        super().__init__()
        self.pad = (k - 1) * dilation
        self.conv1 = nn.Conv1d(cin, cout, k, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, k, dilation=dilation)
        self.down = nn.Conv1d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(F.pad(x, (self.pad, 0))))
        y = F.relu(self.conv2(F.pad(y, (self.pad, 0))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class TCN(nn.Module):
    """Temporal convolutional network (Bai et al. 2018) reading the last step."""

    def __init__(self, cin: int = 4, widths: tuple[int, ...] = (16, 24, 24), n_out: int = 5) -> None:
        super().__init__()
        ins = (cin, *widths[:-1])
        self.blocks = nn.Sequential(
            *(TemporalBlock(a, b, 3, 2**i) for i, (a, b) in enumerate(zip(ins, widths)))
        )
        self.head = nn.Linear(widths[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x)[:, :, -1])


class TextCNN(nn.Module):
    """Kim (2014): token ids -> embedding -> Conv1d of widths 2, 3, 4 over the sequence -> max over time."""

    def __init__(self, vocab: int = 100, emb: int = 16, ch: int = 12, n_out: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.convs = nn.ModuleList(nn.Conv1d(emb, ch, k) for k in (2, 3, 4))
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(3 * ch, n_out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids).transpose(1, 2)
        pooled = [F.relu(conv(x)).max(dim=2).values for conv in self.convs]
        return self.fc(self.drop(torch.cat(pooled, 1)))


class RecurrentClassifier(nn.Module):
    """Token ids -> embedding -> 2-layer bidirectional LSTM or GRU -> linear on the last step."""

    def __init__(self, cell: str = "lstm", vocab: int = 100, emb: int = 16, hidden: int = 12) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(emb, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(self.emb(ids))[0][:, -1])


class TextTransformer(nn.Module):
    """Token ids -> embedding -> nn.TransformerEncoder (batch_first) -> mean over tokens -> linear."""

    def __init__(self, vocab: int = 100, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=32, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.fc = nn.Linear(d, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.enc(self.emb(ids)).mean(1))


def _conv3(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class UNet3D(nn.Module):
    """A two-level 3-D UNet: Conv3d encoder, ConvTranspose3d up, the skip concatenated, per-voxel logits."""

    def __init__(self, c: int = 8, n_out: int = 2) -> None:
        super().__init__()
        self.enc1, self.enc2 = _conv3(1, c), _conv3(c, 2 * c)
        self.up = nn.ConvTranspose3d(2 * c, c, 2, stride=2)
        self.dec = _conv3(2 * c, c)
        self.out = nn.Conv3d(c, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.enc1(x)
        b = self.enc2(F.max_pool3d(a, 2))
        return self.out(self.dec(torch.cat([self.up(b), a], 1)))


TOKENS = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))  # a LongTensor
NETS: dict[str, tuple[type[nn.Module], dict, torch.Tensor]] = {
    "m5_audio": (M5, {}, torch.randn(1, 1, 8000)),  # 0.5 s at 16 kHz: the four pools need ~7,000 samples
    "tcn": (TCN, {}, torch.randn(1, 4, 20)),
    "text_cnn": (TextCNN, {}, TOKENS),
    "lstm": (RecurrentClassifier, {"cell": "lstm"}, TOKENS),
    "gru": (RecurrentClassifier, {"cell": "gru"}, TOKENS),
    "text_transformer": (TextTransformer, {}, TOKENS),
    "unet3d": (UNet3D, {}, torch.randn(1, 1, 8, 16, 16)),
}
