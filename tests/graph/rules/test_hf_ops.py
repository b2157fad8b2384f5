"""Calls the Hugging Face sweep (benchmarks/hf_sweep.py) found netsculpt crashing on: ``torch.max(a, b)``
with a tensor (T5's relative position buckets), ``baddbmm`` with keyword operands (Bloom's ALiBi),
``narrow`` at a tensor offset (Longformer) and ``cat`` with an empty piece (Phi-3's rotary)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsculpt.graph import trace
from tests.coverage._check import check_prunes_exactly


class BinaryMax(nn.Module):
    """``torch.max(h, zeros)`` / ``h.min(h2)``: element-wise, not reductions over a dim."""

    def __init__(self, method: bool) -> None:
        super().__init__()
        self.a, self.o, self.method = nn.Linear(8, 16), nn.Linear(16, 4), method
        self.b = nn.Linear(8, 16) if method else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if self.method:
            h = h.min(torch.relu(self.b(x)))
        return self.o(torch.max(h, torch.zeros_like(h)))


@pytest.mark.parametrize("method", [False, True])
def test_max_and_min_of_two_tensors_prune_exactly(method: bool) -> None:
    torch.manual_seed(0)
    result = check_prunes_exactly(BinaryMax(method), torch.randn(2, 8))
    assert result["err"] <= 1e-6


class KeywordBaddbmm(nn.Module):
    """Attention scores as Bloom computes them (``alibi.baddbmm(batch1=q, batch2=k, beta=1, alpha=s)``),
    then a feed-forward block."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (
            nn.Linear(8, 16),
            nn.Linear(8, 16),
            nn.Linear(8, 16),
            nn.Linear(16, 8),
        )
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = torch.zeros(x.shape[0], x.shape[1], x.shape[1])
        scores = bias.baddbmm(batch1=self.q(x), batch2=self.k(x).transpose(1, 2), beta=1.0, alpha=0.25)
        h = self.o(scores.softmax(-1) @ self.v(x))
        return self.fc2(torch.relu(self.fc1(h)))


def test_baddbmm_with_keyword_operands_prunes_exactly() -> None:
    torch.manual_seed(0)
    model, x = KeywordBaddbmm(), torch.randn(2, 5, 8)
    graph = trace(model, x)
    (q,) = [g for g in graph.groups if g.id == "q"]
    assert "`Tensor.baddbmm` in `<root>` contracts two activations" in q.reasons[0]  # attention: pinned
    assert check_prunes_exactly(model, x)["err"] <= 1e-6


class Logits(nn.Module):
    """A Hugging Face classifier's logits, so the coverage check compares one tensor; each sequence ends
    in ``</s>`` (T5's classifier pools there, and the check draws other ids for its second input)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        eos = torch.full_like(ids[:, :1], self.model.config.eos_token_id)
        return self.model(torch.cat([ids, eos], dim=1)).logits


@pytest.mark.parametrize("kind", ["t5", "bloom"])
def test_tiny_t5_and_bloom_classifiers_prune_exactly(kind: str) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if kind == "t5":
        config = transformers.T5Config(
            vocab_size=64, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2, decoder_start_token_id=0
        )
        model = transformers.T5ForSequenceClassification(config)
    else:
        config = transformers.BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=2, pad_token_id=0)
        model = transformers.BloomForSequenceClassification(config)
    ids = torch.randint(3, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    result = check_prunes_exactly(Logits(model.eval()), ids)
    assert result["macs_ratio"] < 0.95


class TensorNarrow(nn.Module):
    """``narrow`` with a 0-d tensor start (Longformer's chunking): along tokens it keeps the channels;
    along the channels the offset is unknown, so they are pinned."""

    def __init__(self, over_channels: bool) -> None:
        super().__init__()
        self.a, self.o, self.over_channels = (
            nn.Linear(8, 16),
            nn.Linear(16 - 4 * over_channels, 4),
            over_channels,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        start = torch.tensor(1)
        return self.o(h.narrow(2, start, 12) if self.over_channels else h.narrow(1, start, 3))


def test_narrow_at_a_tensor_offset_traces() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    assert check_prunes_exactly(TensorNarrow(False), x)["err"] <= 1e-6
    (a,) = [g for g in trace(TensorNarrow(True), x).groups if g.id == "a"]
    assert not a.prunable.any() and "selects positions at a tensor offset" in a.reasons[0]


class EmptyRotaryPass(nn.Module):
    """Phi-3's rotary ``cat((q_rot, q_pass), dim=-1)`` over (batch, tokens, heads, head_dim) when every
    position rotates: ``q_pass`` is empty. Then a feed-forward block that prunes."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.o = nn.Linear(8, 16), nn.Linear(16, 8)
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q(x).view(x.shape[0], x.shape[1], 2, -1)
        d = q.shape[-1]
        q = torch.cat((q[..., :d], q[..., d:]), dim=-1).reshape(x.shape[0], x.shape[1], -1)
        return self.fc2(torch.relu(self.fc1(self.o(q))))


def test_concatenating_an_empty_piece_prunes_exactly() -> None:
    torch.manual_seed(0)
    assert check_prunes_exactly(EmptyRotaryPass(), torch.randn(2, 5, 8))["err"] <= 1e-6


class RouteByWhere(nn.Module):
    """``torch.where(mask)`` alone (Switch Transformers' expert routing) returns index tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.o = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        rows, _ = torch.where(x > 0)  # a 2-D condition: two 1-D index tensors
        return self.o(h).index_add(0, rows, self.o(h)[rows])


def test_where_with_only_a_condition_traces() -> None:
    torch.manual_seed(0)
    x = torch.randn(6, 8)
    assert check_prunes_exactly(RouteByWhere(), x)["err"] <= 1e-6


class MaskedElements(nn.Module):
    """``h[mask]`` with a boolean mask over two dims (VITS' flows) picks elements into one flat dim."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.o = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.b(torch.relu(self.a(x)))
        picked = h[h > 0].sum()
        return self.o(h) + picked


def test_a_boolean_mask_over_several_dims_pins_what_it_picks() -> None:
    torch.manual_seed(0)
    graph = trace(MaskedElements(), torch.randn(3, 8))
    (b,) = [g for g in graph.groups if g.id == "b"]
    assert not b.prunable.any() and "gathers positions with a tensor index" in " ".join(b.reasons)
    assert check_prunes_exactly(MaskedElements(), torch.randn(3, 8))["err"] <= 1e-6  # `a` still prunes
