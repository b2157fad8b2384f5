"""Scaled dot-product attention with grouped-query heads (``enable_gqa``), the value path past the summed
key positions, and contractions whose sizes do not pair up (docs/engine.md, "Hugging Face decoders")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsculpt.graph import trace
from netsculpt.graph.builder import GraphBuilder, Value
from netsculpt.graph.rules.contract import contract
from netsculpt.surgery.verify import pruning_error, random_plan


class Attention(nn.Module):
    """Attention with ``kv_heads`` key/value heads for 4 query heads, head sizes taken from the weights
    (``unflatten(-1, (heads, -1))``), so nothing but the attention itself decides what prunes."""

    def __init__(self, kv_heads: int) -> None:
        super().__init__()
        self.kv_heads = kv_heads
        self.q, self.k, self.v = nn.Linear(16, 32), nn.Linear(16, 8 * kv_heads), nn.Linear(16, 8 * kv_heads)
        self.o = nn.Linear(32, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q(x).unflatten(-1, (4, -1)).transpose(1, 2)
        k = self.k(x).unflatten(-1, (self.kv_heads, -1)).transpose(1, 2)
        v = self.v(x).unflatten(-1, (self.kv_heads, -1)).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, enable_gqa=self.kv_heads != 4)
        # Hugging Face's sdpa_attention_forward: the head size read from the value's shape
        out = out.reshape(out.shape[0], -1, out.shape[2], v.shape[-1])
        return self.o(out.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_value_width_prunes_exactly_with_grouped_query_heads(kv_heads: int) -> None:
    """Key/value head ``h`` serves query heads ``h*r .. h*r+r-1``: a value position removed from it leaves
    every head it serves. It used to crash (GQA) or be pinned as "a channel times a non-channel" (MHA), and
    ``v.shape[-1]`` (a count of channels that also vary by head) pinned it as spread over several dims."""
    torch.manual_seed(0)
    model, x = Attention(kv_heads).eval(), torch.randn(2, 6, 16)
    graph = trace(model, x)
    values = graph.group("v")
    assert values.n_prunable == 8 and {(m.name, m.dim) for m in values.members} >= {("o.weight", 1)}
    # query and key widths scale the logits by 1/sqrt(head_dim): exact mode keeps them, and says why
    assert graph.group("q").n_prunable == 0 and "attention-style" in graph.group("q").reasons[0]
    plan = random_plan(graph, 0.5, seed=0)
    assert pruning_error(model, graph, plan, x) < 1e-6


def test_contraction_of_unequal_sizes_is_pinned_not_a_crash() -> None:
    """Pairing 4 positions with 2 (what GQA hands SDPA) has no letter-by-letter mapping: pinned, with it."""
    ctx = GraphBuilder()

    def value(shape: tuple[int, ...]) -> Value:
        n = int(np.prod(shape))
        labels = np.arange(ctx.n_atoms, ctx.n_atoms + n).reshape(shape)
        ctx.n_atoms += n
        return Value(-1, shape, labels, np.ones(shape, bool), "an activation")

    a, b = value((1, 4, 1, 8)), value((1, 2, 1, 8))
    out = Value(-1, (1, 4, 1, 1), np.full((1,) * 4, -1), np.zeros((1,) * 4, bool), "")
    contract(ctx, [(a, "abLE"), (b, "abSE")], "abLS", out, "`attention`")
    assert (out.labels < 0).all()
    assert sum(block.atoms.size for block in ctx.blocks) == 32 + 16
    assert "pairs dims of different sizes ('b'" in ctx.blocks[0].reason


class EmptyPiece(nn.Module):
    """Phi-3's rotary code concatenates ``q[..., rotary_dim:]`` back after the rotated part: an empty
    piece when the rotation covers the whole head, here beside channels on two dims (heads, head dim)."""

    def __init__(self) -> None:
        super().__init__()
        self.pre, self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(torch.relu(self.pre(x))).unflatten(-1, (2, -1))
        h = torch.cat([h * 2, h[..., 4:]], dim=-1)
        return self.b(h.flatten(-2))


def test_concatenating_an_empty_piece_adds_nothing() -> None:
    model, x = EmptyPiece().eval(), torch.randn(2, 8)
    graph = trace(model, x)  # used to fail: the empty piece's 0-size labels broadcast with nothing
    assert graph.group("pre").n_prunable == 8
    assert pruning_error(model, graph, random_plan(graph, 0.5, seed=0), x) < 1e-6
